"""Settings for the test suite: the same environment-driven base, made fast and isolated."""
import os

from .base import *  # noqa: F401,F403
from .base import DATABASES, VAR_DIR

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests call tasks eagerly unless they start a real worker (tests/integration/).
CELERY_TASK_ALWAYS_EAGER = True
MEDIA_ROOT = VAR_DIR / "test-media" / str(os.getpid())
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that a worker process started by a test sees the same rows.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-framelab.sqlite3")}
