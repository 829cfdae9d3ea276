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


# --- management commands are thin: they call services, never one another ------------------

SOURCE_FOLDERS = ("annotation", "core", "modeling", "simulation", "bench", "scripts", "tests",
                  "platform")


def _python_files():
    yield ROOT / "manage.py"
    for folder in SOURCE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield path


def _module_name(path: Path) -> str:
    relative = path.relative_to(ROOT / "platform" if path.is_relative_to(ROOT / "platform") else ROOT)
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, relative imports resolved; `from X import y` counts as
    importing X and X.y (y may be a module)."""
    import ast

    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return found


def _command_modules() -> set[str]:
    return {_module_name(path) for path in _python_files()
            if path.parent.name == "commands" and path.parent.parent.name == "management"
            and path.name != "__init__.py"}


def test_the_import_scan_sees_commands_and_relative_imports():
    commands = _command_modules()
    assert {"annotation.management.commands.load_demo", "modeling.management.commands.train_persona",
            "simulation.management.commands.simulate"} <= commands
    sweep = ROOT / "modeling" / "management" / "commands" / "sweep_alpha.py"
    assert "modeling.cli" in _imported_modules(sweep)
    assert _module_name(ROOT / "platform" / "config" / "settings" / "base.py") == "config.settings.base"


def test_no_module_imports_a_management_command():
    """A command's shared pieces belong in a service, selector or module of its app; other
    code runs a command through call_command, never by importing it."""
    commands = _command_modules()
    offenders = sorted(
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _python_files()
        for name in _imported_modules(path) & commands
    )
    assert offenders == []
