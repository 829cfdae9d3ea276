"""Login limits on a real gunicorn with two worker processes: a burst of parallel wrong passwords
gets exactly the account's budget checked, whichever worker serves each, and the right password
is refused afterwards (core/login_limits.py on the embedded default cache)."""
from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from tests.integration.conftest import gunicorn_start

pytestmark = pytest.mark.django_db(transaction=True)
BUDGET = 5


@pytest.fixture
def server(transactional_db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    get_user_model().objects.create_user("olivia", password="right-horse-battery")
    started = gunicorn_start(log_path=tmp_path / "gunicorn.log", workers=2, threads=4, extra_env={
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "FRAMELAB_LOGIN_FAILURES_PER_ACCOUNT": str(BUDGET),
        "FRAMELAB_LOGIN_FAILURES_PER_ADDRESS": "100",
        "FRAMELAB_LOGIN_LOCKOUT_SECONDS": "600",
    })
    try:
        yield started
    finally:
        started.stop()
        cache.clear()  # the cache table is not among the tables a transactional test flushes


def test_parallel_guesses_on_two_workers_get_exactly_the_budget(server):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{server.url}/accounts/login/", timeout=30).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    def attempt(password: str) -> int:
        data = urllib.parse.urlencode({"username": "olivia", "password": password,
                                       "csrfmiddlewaretoken": csrf}).encode()
        try:
            return opener.open(urllib.request.Request(f"{server.url}/accounts/login/", data=data),
                               timeout=60).status
        except urllib.error.HTTPError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(attempt, [f"guess-{n}" for n in range(16)]))
    assert sorted(codes) == [200] * BUDGET + [429] * (16 - BUDGET), (codes, server.log_tail())
    assert attempt("right-horse-battery") == 429
