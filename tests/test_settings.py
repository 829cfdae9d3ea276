"""Settings come from the environment only; the defaults need no service."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PRINT_SETTINGS = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "name": str(settings.DATABASES["default"]["NAME"]),
    "host": settings.DATABASES["default"].get("HOST"),
    "broker": settings.CELERY_BROKER_URL,
    "broker_folder": getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}).get("data_folder_in"),
    "results": settings.CELERY_RESULT_BACKEND,
    "media": str(settings.MEDIA_ROOT),
    "debug": settings.DEBUG,
}))
"""


def settings_under(env_overrides: dict, module: str = "config.settings") -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "MEDIA_ROOT",
                        "FRAMELAB_VAR_DIR", "DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY"}}
    env.update(PYTHONPATH=f"{ROOT / 'platform'}:{ROOT}", DJANGO_SETTINGS_MODULE=module, **env_overrides)
    result = subprocess.run([sys.executable, "-c", PRINT_SETTINGS], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_defaults_are_embedded_under_var(tmp_path):
    values = settings_under({"FRAMELAB_VAR_DIR": str(tmp_path)})
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"] == str(tmp_path / "framelab.sqlite3")
    assert values["broker"] == "filesystem://"
    assert values["broker_folder"] == str(tmp_path / "celery" / "broker" / "queue")
    assert values["results"] == f"file://{tmp_path / 'celery' / 'results'}"
    assert values["media"] == str(tmp_path / "media")
    assert values["debug"] is False


def test_environment_switches_database_broker_and_artifact_store(tmp_path):
    values = settings_under({
        "DATABASE_URL": "postgres://framelab:secret@db.internal:5432/framelab",
        "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
        "CELERY_RESULT_BACKEND": "redis://redis.internal:6379/1",
        "MEDIA_ROOT": str(tmp_path / "artifacts"),
    })
    assert values["engine"] == "django.db.backends.postgresql"
    assert (values["name"], values["host"]) == ("framelab", "db.internal")
    assert values["broker"] == "redis://redis.internal:6379/0"
    assert values["broker_folder"] is None
    assert values["results"] == "redis://redis.internal:6379/1"
    assert values["media"] == str(tmp_path / "artifacts")


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    env.update(PYTHONPATH=f"{ROOT / 'platform'}:{ROOT}", DJANGO_SETTINGS_MODULE="config.settings.production")
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
