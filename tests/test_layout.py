"""The layout guard: `platform/` is a folder on the path, never a package (a package of that
name would hide the standard library's `platform` module that Django, Celery and uuid import)."""
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_platform_is_not_a_package():
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_standard_library_platform_module_still_works():
    assert Path(platform.__file__).parent != ROOT / "platform"
    assert platform.system() in {"Linux", "Darwin", "Windows"}
    assert platform.python_version().startswith("3.")


def test_manage_py_runs_checks_in_a_fresh_process():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_celery_app_loads_from_the_config_package():
    result = subprocess.run(
        [sys.executable, "-c",
         "import config; print(config.celery_app.main, config.celery_app.conf.task_default_queue)"],
        cwd=ROOT, env={"PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["framelab", "default"]
