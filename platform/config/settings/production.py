"""Settings for a deployment: no insecure defaults, HTTPS assumed behind a proxy."""
from config.secret_key import production_secret_key

from .base import *  # noqa: F401,F403
from .base import env

# Refuses to start (ImproperlyConfigured) with a missing, short, placeholder or published key.
SECRET_KEY = production_secret_key(env("DJANGO_SECRET_KEY", default=""))
SECRET_KEY_FALLBACKS = [production_secret_key(key, "DJANGO_SECRET_KEY_FALLBACKS")
                        for key in env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])]
DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0)
SECURE_CONTENT_TYPE_NOSNIFF = True
# `check`, `migrate` and the other commands fail while an active account has a guessable password.
FRAMELAB_REFUSE_WELL_KNOWN_PASSWORDS = True
