"""Password attempts are limited per account and per client address (core/login_limits.py), on
both login forms and the API's token endpoint; the client address comes from X-Forwarded-For
only behind trusted proxies; the counts live in the shared cache, so another process sees them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from tests.integration.conftest import database_url_of_live_connection

ROOT = Path(__file__).resolve().parents[1]
LOGIN_FORMS = ["/accounts/login/", "/admin/login/"]


@pytest.fixture(autouse=True)
def limits(settings):
    settings.FRAMELAB_LOGIN_FAILURES_PER_ACCOUNT = 3
    settings.FRAMELAB_LOGIN_FAILURES_PER_ADDRESS = 5
    settings.FRAMELAB_LOGIN_LOCKOUT_SECONDS = 600
    settings.FRAMELAB_TRUSTED_PROXIES = 0
    # The DRF rate on the token endpoint apart from the lockout: high, so it does not interfere.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "token": "1000/minute"}}
    return settings


@pytest.fixture
def olivia(db):
    return get_user_model().objects.create_user("olivia", password="right-horse-battery",
                                                is_staff=True, is_superuser=True)


def login(path, username, password, address="10.0.0.1", **headers):
    client = Client(REMOTE_ADDR=address, **headers)
    response = client.post(path, {"username": username, "password": password})
    return response, client


def is_locked_page(response) -> bool:
    return response.status_code == 429 and b"Too many failed sign-in attempts" in response.content


@pytest.mark.parametrize("path", LOGIN_FORMS)
def test_an_account_is_locked_after_n_wrong_passwords_from_any_address(olivia, path):
    # Three wrong passwords from two different addresses spend the account's budget.
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.1"):
        response, _ = login(path, "olivia", "guess", address=address)
        assert response.status_code == 200  # the form again, with its error
    # Now even the right password, from a third address, is not checked.
    response, client = login(path, "olivia", "right-horse-battery", address="10.0.0.3")
    assert is_locked_page(response), response.content[:500]
    assert 0 < int(response["Retry-After"]) <= 600
    assert b"Try again after" in response.content and b"UTC" in response.content
    assert "no-store" in response["Cache-Control"]
    assert "_auth_user_id" not in client.session
    # The username as typed in another case is the same account.
    assert is_locked_page(login(path, "OLIVIA", "guess", address="10.0.0.4")[0])


@pytest.mark.parametrize("path", LOGIN_FORMS)
def test_an_address_is_locked_after_n_failures_over_any_accounts(olivia, path):
    for n in range(5):
        assert login(path, f"nobody-{n}", "guess", address="10.9.9.9")[0].status_code == 200
    assert is_locked_page(login(path, "olivia", "right-horse-battery", address="10.9.9.9")[0])
    # Another address is not affected, and signs in.
    response, client = login(path, "olivia", "right-horse-battery", address="10.9.9.10")
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(olivia.pk)


def test_x_forwarded_for_is_ignored_without_trusted_proxies(olivia):
    for n in range(5):
        response, _ = login("/accounts/login/", f"nobody-{n}", "guess", address="10.1.1.1",
                            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        assert response.status_code == 200
    spoofed = login("/accounts/login/", "olivia", "right-horse-battery", address="10.1.1.1",
                    HTTP_X_FORWARDED_FOR="198.51.100.77")[0]
    assert is_locked_page(spoofed)


def test_behind_a_trusted_proxy_the_forwarded_address_counts(olivia, settings):
    settings.FRAMELAB_TRUSTED_PROXIES = 1
    proxy = "10.0.0.254"
    for n in range(5):  # one client behind the proxy, whatever it writes in front of the header
        response, _ = login("/accounts/login/", f"nobody-{n}", "guess", address=proxy,
                            HTTP_X_FORWARDED_FOR=f"1.2.3.{n}, 203.0.113.5")
        assert response.status_code == 200
    assert is_locked_page(login("/accounts/login/", "olivia", "right-horse-battery", address=proxy,
                                HTTP_X_FORWARDED_FOR="203.0.113.5")[0])
    # Another client behind the same proxy still signs in.
    response, _ = login("/accounts/login/", "olivia", "right-horse-battery", address=proxy,
                        HTTP_X_FORWARDED_FOR="203.0.113.6")
    assert response.status_code == 302


def test_a_success_clears_the_accounts_failures(olivia):
    for _ in range(2):
        login("/accounts/login/", "olivia", "typo")
    assert login("/accounts/login/", "olivia", "right-horse-battery")[0].status_code == 302
    for _ in range(2):
        assert login("/accounts/login/", "olivia", "typo")[0].status_code == 200
    assert login("/accounts/login/", "olivia", "right-horse-battery")[0].status_code == 302


def test_a_lockout_ends_when_its_oldest_failure_is_old_enough(olivia, monkeypatch):
    import core.login_limits as limits

    now = [limits.now()]
    monkeypatch.setattr(limits, "now", lambda: now[0])
    for _ in range(3):
        login("/accounts/login/", "olivia", "guess")
    locked = login("/accounts/login/", "olivia", "right-horse-battery")[0]
    assert is_locked_page(locked) and locked["Retry-After"] == "600"
    # The cache's own expiry runs on the real clock: lift the slots by hand, as expiry would.
    now[0] += 601
    cache.delete_many(limits.account_budget("olivia").keys)
    assert login("/accounts/login/", "olivia", "right-horse-battery")[0].status_code == 302


def test_login_unlock_lifts_a_lockout(olivia, capsys):
    for _ in range(3):
        login("/accounts/login/", "olivia", "guess")
    assert is_locked_page(login("/accounts/login/", "olivia", "right-horse-battery")[0])
    call_command("login_unlock", "olivia")
    assert "forgotten" in capsys.readouterr().out
    assert login("/accounts/login/", "olivia", "right-horse-battery")[0].status_code == 302


def test_the_token_endpoint_locks_an_account_and_ignores_spoofed_addresses(olivia):
    def token(password, n):
        return APIClient(REMOTE_ADDR="10.2.2.2", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").post(
            "/api/auth/token/", {"username": "olivia", "password": password}, format="json")

    assert [token("guess", n).status_code for n in range(3)] == [400, 400, 400]
    refused = token("right-horse-battery", 99)
    assert refused.status_code == 429, refused.content
    assert 0 < int(refused["Retry-After"]) <= 600
    assert "Too many failed sign-in attempts" in refused.json()["detail"]
    assert "token" not in refused.json()
    # The account's budget is shared with the login pages.
    assert is_locked_page(login("/accounts/login/", "olivia", "right-horse-battery")[0])


def test_the_api_rate_limit_ignores_spoofed_forwarded_addresses(olivia, settings):
    settings.FRAMELAB_LOGIN_FAILURES_PER_ACCOUNT = 0  # only the DRF rate here
    settings.FRAMELAB_LOGIN_FAILURES_PER_ADDRESS = 0
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "token": "3/minute"}}
    codes = [APIClient(REMOTE_ADDR="10.3.3.3", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").post(
        "/api/auth/token/", {"username": "olivia", "password": "guess"}, format="json").status_code
        for n in range(5)]
    assert codes == [400, 400, 400, 429, 429]


LOGIN_IN_ANOTHER_PROCESS = """
import django, sys
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()  # the test client's host name, nothing else
for _ in range(int(sys.argv[1])):
    response = Client(REMOTE_ADDR=sys.argv[2]).post(
        "/accounts/login/", {"username": "olivia", "password": "guess"})
    print(response.status_code)
"""


@pytest.mark.django_db(transaction=True)
def test_failures_in_another_process_count_here(olivia):
    """Two processes on the shared cache (by default the test database's table; Redis with
    CACHE_URL): failures made by one lock the account in the other, as for two gunicorn workers."""
    assert settings_cache_is_shared()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
           "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "DATABASE_URL": database_url_of_live_connection(),
           "FRAMELAB_LOGIN_FAILURES_PER_ACCOUNT": "3", "FRAMELAB_LOGIN_FAILURES_PER_ADDRESS": "5",
           "FRAMELAB_LOGIN_LOCKOUT_SECONDS": "600"}
    try:
        result = subprocess.run([sys.executable, "-c", LOGIN_IN_ANOTHER_PROCESS, "3", "10.4.4.4"],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["200", "200", "200"]
        assert is_locked_page(login("/accounts/login/", "olivia", "right-horse-battery",
                                    address="10.5.5.5")[0])
    finally:
        cache.clear()  # the cache table is not among the tables a transactional test flushes


def settings_cache_is_shared() -> bool:
    from django.conf import settings

    return settings.CACHES["default"]["BACKEND"] != "django.core.cache.backends.locmem.LocMemCache"


def test_addresses_are_counted_by_ipv4_or_ipv6_slash_64():
    from core.client_address import address_key

    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")


def test_ipv6_clients_changing_address_within_their_slash_64_share_a_budget(olivia):
    for n in range(5):
        assert login("/accounts/login/", f"nobody-{n}", "guess",
                     address=f"2001:db8:7:7::{n + 1:x}")[0].status_code == 200
    assert is_locked_page(login("/accounts/login/", "olivia", "right-horse-battery",
                                address="2001:db8:7:7::ffff")[0])
