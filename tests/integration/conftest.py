"""A real Celery worker process for tests whose behaviour is asynchronous.

The worker runs the test settings against the test database (the URL is built from the
live connection) and the same broker as this process: kombu's filesystem transport by
default, Redis or RabbitMQ when CELERY_BROKER_URL says so (as in CI's PostgreSQL run).
"""
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url_of_live_connection() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    if connection.vendor == "postgresql":
        user = quote(settings.get("USER") or "")
        password = f":{quote(settings['PASSWORD'])}" if settings.get("PASSWORD") else ""
        host = settings.get("HOST") or "localhost"
        port = f":{settings['PORT']}" if settings.get("PORT") else ""
        return f"postgres://{user}{password}@{host}{port}/{settings['NAME']}"
    raise NotImplementedError(connection.vendor)


@pytest.fixture
def celery_worker_process(transactional_db, settings, tmp_path):
    from config import celery_app

    settings.MEDIA_ROOT = tmp_path / "media"
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url_of_live_connection(),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    celery_app.control.purge()
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "--app", "config", "worker", "--loglevel", "INFO",
         "--pool", "solo", "--queues", "default,models", "--without-gossip", "--without-mingle",
         "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield worker
    finally:
        celery_app.conf.task_always_eager = eager
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
        print((tmp_path / "worker.log").read_text()[-3000:])


class GunicornServer:
    """A real gunicorn serving the platform on the test database; `url` has no trailing slash."""

    def __init__(self, process: subprocess.Popen, url: str, log_path: Path, workers: int) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path
        self.workers = workers

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def gunicorn_start(*, log_path: Path, workers: int = 2, threads: int = 4,
                   extra_env: dict | None = None, timeout: float = 60.0) -> GunicornServer:
    """Starts gunicorn with the platform's config on the live test database and waits until
    /healthz answers. Requests are logged (gunicorn's access log) to `log_path`."""
    from annotation.studies.bots import free_port, wait_until_serving

    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url_of_live_connection(),
        **(extra_env or {}),
    }
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "platform" / "gunicorn.conf.py"),
             "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
             # No control socket: its default path in $HOME would be shared with any other gunicorn.
             "--no-control-socket", "config.wsgi"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    server = GunicornServer(process, f"http://127.0.0.1:{port}", log_path, workers)
    try:
        wait_until_serving(server.url, timeout=timeout, alive=lambda: process.poll() is None)
    except Exception:  # noqa: BLE001  (any failure to start: stop it and show its log)
        server.stop()
        raise RuntimeError(f"gunicorn did not start:\n{server.log_tail()}") from None
    return server


@pytest.fixture
def gunicorn_server(transactional_db, settings, tmp_path):
    """The platform served by a real gunicorn (2 workers) over HTTP, on the test database.

    `transactional_db`, so that the rows a test writes are committed and the server sees
    them (and the rows the server writes are flushed after the test)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    server = gunicorn_start(log_path=tmp_path / "gunicorn.log", workers=2,
                            extra_env={"MEDIA_ROOT": str(settings.MEDIA_ROOT)})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def gunicorn_servers(transactional_db, settings, tmp_path):
    """Starts servers on demand: `gunicorn_servers(workers=4)`; all are stopped afterwards."""
    settings.MEDIA_ROOT = tmp_path / "media"
    started: list[GunicornServer] = []

    def start(workers: int = 2, threads: int = 4) -> GunicornServer:
        server = gunicorn_start(log_path=tmp_path / f"gunicorn-{len(started)}.log", workers=workers,
                                threads=threads, extra_env={"MEDIA_ROOT": str(settings.MEDIA_ROOT)})
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
