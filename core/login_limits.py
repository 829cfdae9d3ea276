"""Limits on password attempts: per account and per client address, shared by every process.

What is limited: POSTs to `/accounts/login/` and `/admin/login/` (views wrapped with
`login_limited` in config/urls.py) and to the API's token endpoint (`TokenView`). Every attempt
counts against two budgets, the account's (the username as typed, case-folded, whether or not
it exists) and the client address's (core/client_address.py: `X-Forwarded-For` only behind
`FRAMELAB_TRUSTED_PROXIES` proxies; IPv6 by /64). A budget allows
`FRAMELAB_LOGIN_FAILURES_PER_ACCOUNT` (5) or `FRAMELAB_LOGIN_FAILURES_PER_ADDRESS` (20) failures
within `FRAMELAB_LOGIN_LOCKOUT_SECONDS` (900); once it is spent, no password is checked for that
account or from that address until the oldest of those failures is that old. A successful
login clears its account's failures and does not count against its address. Locked-out pages
answer 429 with `Retry-After` (registration/locked_out.html); the API answers 429 in its JSON
shape. `manage.py login_unlock` lifts a lockout.

Why our own code on Django's cache rather than django-axes: the counts must hold across gunicorn
workers and machines, and a burst of parallel guesses must not slip through between "is it
locked?" and "count this failure" (axes checks first and counts after the password check, so N
parallel requests all pass the check). Here an attempt *claims* one of the budget's slots
before the password is checked, with `cache.add`, which is atomic in the caches the platform
uses (the embedded `DatabaseCache`: a unique key and a transaction; Redis: `SET NX`; the local
memory cache of a single process: a lock). A success gives its slot back. The state is a few
cache keys per account and address that expire on their own; nothing else to migrate, reset
or administer. Any cache that may evict live keys under memory pressure (a small Redis with an
eviction policy, a cache with a small MAX_ENTRIES) can forget a lockout: size it accordingly
(docs/security.md). The file-based cache's `add` is not atomic: do not use it for this.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import wraps

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers

from core.client_address import address_key, client_address

logger = logging.getLogger("framelab.security")

KEY_PREFIX = "framelab-login"


def now() -> float:
    """The clock failures are stamped with (a function, so tests can move it)."""
    return time.time()


@dataclass
class LockedOut(Exception):
    """No password is checked: `scope` ("account" or "address") has spent its budget."""

    scope: str
    until: float  # seconds since the epoch

    @property
    def retry_after(self) -> int:
        """Whole seconds until the next attempt is allowed (at least 1)."""
        return max(1, math.ceil(self.until - now()))

    @property
    def until_datetime(self) -> datetime:
        return datetime.fromtimestamp(math.ceil(self.until), tz=timezone.utc)

    def message(self) -> str:
        who = "this account" if self.scope == "account" else "your network address"
        return (f"Too many failed sign-in attempts for {who}. Try again after "
                f"{self.until_datetime:%H:%M:%S} UTC.")


class Budget:
    """`limit` slots in the cache, one per failure, each expiring `seconds` after it was taken."""

    def __init__(self, scope: str, value: str, limit: int, seconds: int) -> None:
        digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        self.scope, self.limit, self.seconds = scope, limit, seconds
        self.keys = [f"{KEY_PREFIX}:{scope}:{digest}:{slot}" for slot in range(limit)]

    def claim(self) -> str:
        """Takes a free slot and returns its key, or raises LockedOut when none is free."""
        stamp = now()
        taken = cache.get_many(self.keys)
        for key in self.keys:
            # `add` fails when another process took the slot first: try the next one.
            if key not in taken and cache.add(key, stamp, timeout=self.seconds):
                return key
        taken = cache.get_many(self.keys) or taken
        oldest = min(taken.values(), default=stamp)
        raise LockedOut(self.scope, oldest + self.seconds)

    def clear(self) -> None:
        cache.delete_many(self.keys)


def account_budget(username: str) -> Budget | None:
    limit = settings.FRAMELAB_LOGIN_FAILURES_PER_ACCOUNT
    name = str(username or "").strip().casefold()
    if limit <= 0 or not name:
        return None
    return Budget("account", name, limit, settings.FRAMELAB_LOGIN_LOCKOUT_SECONDS)


def address_budget(address: str) -> Budget | None:
    limit = settings.FRAMELAB_LOGIN_FAILURES_PER_ADDRESS
    if limit <= 0:
        return None
    return Budget("address", address_key(address), limit, settings.FRAMELAB_LOGIN_LOCKOUT_SECONDS)


class LoginAttempt:
    """One password attempt: `begin()` before checking the password (raises LockedOut), then
    `succeeded()` or `failed()`."""

    def __init__(self, request, username) -> None:
        self.username = str(username or "")
        self.address = client_address(request)
        self.budgets = [b for b in (account_budget(self.username), address_budget(self.address)) if b]
        self.claimed: dict[str, str] = {}

    def begin(self) -> None:
        for budget in self.budgets:
            try:
                self.claimed[budget.scope] = budget.claim()
            except LockedOut as locked:
                # Nothing was checked, so nothing counts: give back what this attempt took.
                cache.delete_many(list(self.claimed.values()))
                self.claimed = {}
                logger.warning("login refused: %s locked until %s (username %r, address %s)",
                               locked.scope, locked.until_datetime.isoformat(),
                               self.username[:150], self.address)
                raise

    def succeeded(self) -> None:
        for budget in self.budgets:
            if budget.scope == "account":
                budget.clear()
        cache.delete_many(list(self.claimed.values()))
        self.claimed = {}

    def failed(self) -> None:
        # The claimed slots stay taken until they expire: that is the count.
        logger.info("login failed (username %r, address %s)", self.username[:150], self.address)
        self.claimed = {}


def lockout_page(request, locked: LockedOut):
    """What a locked-out login form shows: what happened and when to try again (429)."""
    response = render(request, "registration/locked_out.html", {
        "scope": locked.scope, "until": locked.until_datetime, "retry_after": locked.retry_after,
        "minutes": math.ceil(locked.retry_after / 60), "title": "Too many attempts",
    }, status=429)
    response["Retry-After"] = str(locked.retry_after)
    add_never_cache_headers(response)
    return response


def login_limited(view):
    """Wraps a login view (Django's LoginView, the admin's login) with the limits above.

    Those views redirect after a successful login and answer the form again otherwise, so a
    redirect with a signed-in user is a success and anything else a failure.
    """
    @wraps(view)
    def limited(request, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        attempt = LoginAttempt(request, request.POST.get(get_user_model().USERNAME_FIELD, ""))
        try:
            attempt.begin()
        except LockedOut as locked:
            return lockout_page(request, locked)
        response = view(request, *args, **kwargs)
        if response.status_code in (301, 302, 303) and request.user.is_authenticated:
            attempt.succeeded()
        else:
            attempt.failed()
        return response

    return limited


def unlock(*, username: str | None = None, address: str | None = None) -> None:
    """Forgets the failures of an account and/or an address (`manage.py login_unlock`)."""
    for budget in (account_budget(username or ""), address_budget(address) if address else None):
        if budget:
            budget.clear()
