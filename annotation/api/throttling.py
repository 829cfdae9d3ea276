"""Request rate limits of the API, read from settings at request time.

DRF's own throttles copy `DEFAULT_THROTTLE_RATES` into a class attribute when
`rest_framework.throttling` is first imported, so a rate set later (a test's settings
override, a settings module loaded after DRF) would be ignored. These read the current
rates on every request; the rates come from the environment (`API_THROTTLE_ANON`,
`API_THROTTLE_USER`, `API_THROTTLE_TOKEN`, e.g. `60/minute`). Counts live in Django's
default cache, shared by all web processes (a database table, or Redis with CACHE_URL).

Clients are told apart by `core.client_address.client_address`: `X-Forwarded-For` counts only
behind `FRAMELAB_TRUSTED_PROXIES` proxies, so a client cannot get a fresh count per request by
sending a new header each time.
"""
from __future__ import annotations

from rest_framework import throttling
from rest_framework.settings import api_settings

from core.client_address import address_key, client_address


class _RatesFromSettings:
    def get_rate(self):
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        return rates.get(self.scope) or None  # an empty rate switches the limit off

    def get_ident(self, request):
        return address_key(client_address(request))


class AnonRateThrottle(_RatesFromSettings, throttling.AnonRateThrottle):
    """Clients without a login, by IP address: the token endpoint and the schema pages."""


class UserRateThrottle(_RatesFromSettings, throttling.UserRateThrottle):
    """Signed-in researchers, by user."""


class TokenRateThrottle(_RatesFromSettings, throttling.AnonRateThrottle):
    """Password attempts at POST /api/auth/token/, by IP address, tighter than `anon`."""

    scope = "token"
