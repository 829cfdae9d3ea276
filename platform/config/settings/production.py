"""Settings for a deployment: no insecure defaults, HTTPS assumed behind a proxy.

`manage.py check --deploy` reports nothing with these settings and a strong DJANGO_SECRET_KEY;
what a deployment must still configure is in docs/security.md.
"""
from config.secret_key import production_secret_key

from .base import *  # noqa: F401,F403
from .base import SILENCED_SYSTEM_CHECKS, env

# Refuses to start (ImproperlyConfigured) with a missing, short, placeholder or published key.
SECRET_KEY = production_secret_key(env("DJANGO_SECRET_KEY", default=""))
SECRET_KEY_FALLBACKS = [production_secret_key(key, "DJANGO_SECRET_KEY_FALLBACKS")
                        for key in env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])]
DEBUG = False

# --- HTTPS ------------------------------------------------------------------------------------
# The TLS proxy in front says which scheme the client used; it must set X-Forwarded-Proto (and
# overwrite one sent by the client), or every request looks like plain HTTP.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Plain-HTTP requests are redirected to HTTPS; false where the proxy already does it. The health
# check stays reachable over HTTP for load balancers that probe the web processes directly.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
# HTTP Strict Transport Security: browsers use only HTTPS for this host for a year once they have
# seen it. Lower it (e.g. 300) while trying HTTPS out: a browser keeps the promise for as long as
# it was told. It covers subdomains of the platform's host name unless switched off.
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Preloading puts a whole registrable domain into browsers' built-in HTTPS list; only the owner
# of that domain can ask for it (hstspreload.org), so it is off unless they say so. Its deploy
# check (security.W021) is silenced only while it is off on purpose.
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS = [*SILENCED_SYSTEM_CHECKS, "security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True

# `check`, `migrate` and the other commands fail while an active account has a guessable password.
FRAMELAB_REFUSE_WELL_KNOWN_PASSWORDS = True
