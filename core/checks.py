"""The platform's own system checks (Django's check framework), registered by core/apps.py.

`framelab.E001`: under the production settings (`FRAMELAB_REFUSE_WELL_KNOWN_PASSWORDS`), an
active account whose password anyone could guess (the quick start's `demo`/`demo`, or any
password equal to its username) is an error, so `manage.py check --deploy`, `migrate` and the
other commands that run the checks fail until it is changed or the account deactivated
(`manage.py changepassword USERNAME` skips the checks, so it still works).

Cheap: one password hash per account at most, and each verdict is kept in the default cache
under a digest of the stored hash, so a later run recomputes only the accounts whose password
changed since. Nothing is written to the accounts (no hash upgrade on check).
"""
from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.db import DatabaseError

# Username -> passwords that FrameLab itself has published for it (besides the username).
PUBLISHED_PASSWORDS = {"demo": ("demo",)}
VERDICT_PREFIX = "framelab-check-password:v1:"


def _guesses(username: str) -> set[str]:
    return {username, username.lower(), *PUBLISHED_PASSWORDS.get(username.lower(), ())}


def _has_guessable_password(username: str, encoded: str) -> bool:
    from django.contrib.auth.hashers import check_password

    # Without a setter, check_password never rewrites the stored hash.
    return any(check_password(guess, encoded) for guess in _guesses(username) if guess)


def accounts_with_well_known_passwords() -> list[str]:
    """Usernames of active accounts whose password is their username or a published one."""
    from django.contrib.auth import get_user_model
    from django.core.cache import cache

    user_model = get_user_model()
    rows = list(user_model._default_manager.filter(is_active=True)
                .exclude(password="").exclude(password__startswith="!")  # unusable passwords
                .values_list(user_model.USERNAME_FIELD, "password"))
    keys = {username: VERDICT_PREFIX + hashlib.sha256(f"{username}\0{encoded}".encode()).hexdigest()
            for username, encoded in rows}
    try:
        known = cache.get_many(list(keys.values()))
    except Exception:  # noqa: BLE001  (no cache table yet, Redis away: check without it)
        known = {}
    found, fresh = [], {}
    for username, encoded in rows:
        verdict = known.get(keys[username])
        if verdict is None:
            verdict = fresh[keys[username]] = _has_guessable_password(username, encoded)
        if verdict:
            found.append(username)
    if fresh:
        try:
            cache.set_many(fresh, timeout=None)
        except Exception:  # noqa: BLE001
            pass
    return sorted(found)


@register(Tags.security)
def check_well_known_passwords(app_configs=None, **kwargs):
    if not getattr(settings, "FRAMELAB_REFUSE_WELL_KNOWN_PASSWORDS", False):
        return []
    try:
        usernames = accounts_with_well_known_passwords()
    except DatabaseError:
        return []  # no database or no tables yet (before the first migrate): nothing to check
    if not usernames:
        return []
    named = ", ".join(repr(name) for name in usernames[:10])
    more = f" and {len(usernames) - 10} more" if len(usernames) > 10 else ""
    return [Error(
        f"Active account(s) {named}{more} have a password anyone can guess (the quick start's "
        f"demo/demo, or the username itself).",
        hint="Give each a strong password (manage.py changepassword USERNAME) or deactivate it "
             "in the admin, before serving this instance.",
        id="framelab.E001",
    )]
