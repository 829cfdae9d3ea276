"""Default settings module (`config.settings`): the base settings, driven by the environment.

Use `config.settings.test` for the test suite and `config.settings.production` for a
deployment; both start from `base`.
"""
from .base import *  # noqa: F401,F403
