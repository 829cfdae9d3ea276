"""Default settings module (`config.settings`): the base settings, driven by the environment.

Use `config.settings.test` for the test suite and `config.settings.production` for a
deployment; both start from `base`.
"""
import os

from config.secret_key import embedded_secret_key

from .base import *  # noqa: F401,F403
from .base import SECRET_KEY, VAR_DIR

# Without DJANGO_SECRET_KEY, this install's own random key from var/secret_key (written on
# first start). Only when this module is the settings module: Python runs it first also for
# `config.settings.production` and `.test` (it is their package), and a deployment must never
# write or use such a key.
if not SECRET_KEY and os.environ.get("DJANGO_SETTINGS_MODULE", __name__) == __name__:
    SECRET_KEY = embedded_secret_key(VAR_DIR / "secret_key")
