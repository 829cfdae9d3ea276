"""A real web server and a real headless Chromium for end-to-end tests of the participant pages.

The server is gunicorn in a subprocess, with the test settings, on a free port of 127.0.0.1,
reading and writing the pytest test database (its URL is built from the live connection, as
for the Celery worker in tests/integration/). The browser is Debian's `chromium`, driven by
Selenium through Debian's `chromedriver`, with a fresh profile and nothing that talks to the
network on its own. Without Chromium or chromedriver these tests are skipped with a hint on
how to install them, except where the environment variable CI (or FRAMELAB_REQUIRE_BROWSER,
which .ci/run sets) is set: there they fail.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection

from tests.integration.conftest import database_url_of_live_connection

ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = ("install them with: apt-get install -y --no-install-recommends chromium chromium-driver "
                "(Debian/Ubuntu), and the test requirements with scripts/setup.sh")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
    # Containers often give /dev/shm only 64 MiB, too little for Chromium.
    "--disable-dev-shm-usage",
)
DESKTOP = (1280, 900)


def browser_required() -> bool:
    return any(os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")
               for name in ("CI", "FRAMELAB_REQUIRE_BROWSER"))


def browser_unavailable(reason: str):
    """Fails in CI, where the browser must be there; skips elsewhere, saying how to get it."""
    if browser_required():
        pytest.fail(f"{reason}; CI must run the browser tests, not skip them ({INSTALL_HINT})",
                    pytrace=False)
    pytest.skip(f"{reason}; {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def gunicorn_server(transactional_db, tmp_path):
    """gunicorn serving FrameLab on 127.0.0.1:<free port> against the test database."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url_of_live_connection(),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_DEBUG": "false",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        # Two processes, so that two submissions of one form can really run side by side.
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "2",
        "GUNICORN_TIMEOUT": "60",
    }
    log_path = tmp_path / "gunicorn.log"
    log = open(log_path, "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "platform" / "gunicorn.conf.py"),
         # No control socket: its default path in $HOME would be shared with any other gunicorn.
         "--no-control-socket", "config.wsgi:application"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    live = LiveServer(url=f"http://127.0.0.1:{port}", log_path=log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"gunicorn exited with status {server.returncode}:\n{live.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{live.url}/healthz", timeout=2) as response:
                    body = response.read().decode()
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not answer on {live.url} in 60 s:\n{live.log()[-3000:]}")
                time.sleep(0.2)
        assert f'"database": "{connection.vendor}"' in body, body
        yield live
    finally:
        # Stopped before the test database is flushed or dropped, which its connections would block.
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        print(live.log()[-3000:])


@pytest.fixture(scope="session")
def browser_paths() -> tuple[str, str]:
    """Chromium and chromedriver, or a skip (a failure in CI) saying how to install them."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        browser_unavailable("the Python package selenium is not installed")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        missing = " and ".join(name for name, path in (("chromium", binary),
                                                       ("chromedriver", driver_path)) if not path)
        browser_unavailable(f"{missing} not found on PATH")
    return binary, driver_path


@pytest.fixture
def chromium(browser_paths, gunicorn_server, tmp_path):
    """Headless Chromium (Debian's package) under Selenium, with a fresh profile.

    It depends on the server so that a missing browser is noticed before the server starts,
    and so that the browser quits (closing its connections) before the server stops.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = browser_paths
    options = webdriver.ChromeOptions()
    options.binary_location = binary  # with both paths given, Selenium Manager never downloads
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    service = Service(executable_path=driver_path, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
