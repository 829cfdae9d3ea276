"""The system check framelab.E001 (core/checks.py): under the production settings an active
account with a guessable password (the quick start's demo/demo, password = username) is an
error; the embedded settings, whose demo login is meant to be guessed, say nothing."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import SystemCheckError

pytestmark = pytest.mark.django_db


@pytest.fixture
def production(settings):
    settings.FRAMELAB_REFUSE_WELL_KNOWN_PASSWORDS = True
    return settings


def errors():
    return [m for m in checks.run_checks(tags=[checks.Tags.security]) if m.id == "framelab.E001"]


def test_the_demo_login_fails_the_check_under_production_settings(production):
    call_command("load_demo", demo_user=True)
    found = errors()
    assert len(found) == 1 and found[0].level == checks.ERROR
    assert "'demo'" in found[0].msg and "changepassword" in found[0].hint
    with pytest.raises(SystemCheckError, match="framelab.E001"):
        call_command("check")


def test_a_password_equal_to_the_username_fails_and_a_fix_clears_it(production):
    user = get_user_model().objects.create_user("Rita", password="Rita")
    assert "'Rita'" in errors()[0].msg
    user.set_password("a-long-and-private-phrase")
    user.save()
    assert errors() == []


def test_inactive_accounts_and_strong_passwords_pass(production):
    get_user_model().objects.create_user("demo", password="demo", is_active=False)
    get_user_model().objects.create_user("olivia", password="correct-horse-battery-staple")
    get_user_model().objects.create_user("nopass")  # an unusable password
    assert errors() == []
    call_command("check")  # no SystemCheckError


def test_the_embedded_settings_do_not_check(settings):
    settings.FRAMELAB_REFUSE_WELL_KNOWN_PASSWORDS = False
    call_command("load_demo", demo_user=True)
    assert errors() == []


def test_verdicts_are_cached_so_a_second_run_hashes_nothing(production, monkeypatch):
    import core.checks as module
    from core.checks import check_well_known_passwords

    cache.clear()
    get_user_model().objects.create_user("demo", password="demo")
    get_user_model().objects.create_user("olivia", password="correct-horse-battery-staple")
    hashed = []
    real = module._has_guessable_password
    monkeypatch.setattr(module, "_has_guessable_password",
                        lambda *args: hashed.append(args[0]) or real(*args))
    assert len(check_well_known_passwords()) == 1
    assert sorted(hashed) == ["demo", "olivia"]
    hashed.clear()
    assert len(check_well_known_passwords()) == 1
    assert hashed == []
    # A changed password is checked again.
    user = get_user_model().objects.get(username="demo")
    user.set_password("now-long-and-private")
    user.save()
    assert check_well_known_passwords() == [] and hashed == ["demo"]
