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
from pathlib import Path

import pytest

# The same live gunicorn as the integration tests: two workers, so that two submissions of
# one form really run side by side.
from tests.integration.conftest import gunicorn_server  # noqa: F401  (a fixture)

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
def chromium(browser_paths, gunicorn_server, tmp_path):  # noqa: F811  (the imported fixture)
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
    # The console, for csp_violations(): Chromium reports every refused script or style there.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=driver_path, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def csp_violations(driver) -> list[str]:
    """Console messages since the last call in which the browser refused something because of
    the Content-Security-Policy (core/security_headers.py)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if "Content Security Policy" in entry["message"]]
