"""`core` as a Django app: the platform-wide system checks (core/checks.py), the migration
that creates the embedded cache's table (core/migrations/), and the pages of core's own views
(core/templates/)."""
from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Platform"

    def ready(self):
        from core import checks  # noqa: F401  (registers the checks)
