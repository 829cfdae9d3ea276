"""Settings for the test suite: the same environment-driven base, made fast and isolated.

A Celery worker started by a test runs with these settings too (see
tests/integration/conftest.py), so everything it must share with the test process, the
database, the broker and the artifact store, is set here or passed in the environment.
"""
import os

# Tests build tiny model folders under the system's temporary folder.
import tempfile  # noqa: E402
from pathlib import Path

from config.secret_key import embedded_secret_key

from .base import *  # noqa: F401,F403
from .base import (
    CELERY_BROKER_URL,
    CELERY_FILESYSTEM_BROKER_DIR,
    DATABASES,
    SECRET_KEY,
    VAR_DIR,
    env,
    filesystem_broker_options,
)

LOCAL_MODEL_DIRS = [VAR_DIR / "models", Path(tempfile.gettempdir())]
# The install's key, as in the embedded setup: the servers and workers that tests start read
# the same file, so what one process signs (participants' tickets, sessions) the others accept.
SECRET_KEY = SECRET_KEY or embedded_secret_key(VAR_DIR / "secret_key")

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The suite's hand-made entry links (`?PROLIFIC_PID=P1&SESSION_ID=X`) and its bots (hundreds of
# sessions from 127.0.0.1) are not real Prolific participants: ids need only be safe, and new
# sessions per address are not limited, unless a test turns these on (the defaults are
# tested in tests/annotation/test_participant_ids.py). The servers tests start read the
# environment, so a test can start one with the defaults.
FRAMELAB_CHECK_PLATFORM_IDS = env.bool("FRAMELAB_CHECK_PLATFORM_IDS", default=False)
FRAMELAB_PARTICIPANT_ENTRIES_PER_ADDRESS = env.int("FRAMELAB_PARTICIPANT_ENTRIES_PER_ADDRESS",
                                                   default=0)
# Tests call tasks eagerly unless they start a real worker (tests/integration/), which may
# send its own tasks to the broker as a deployment does (CELERY_TASK_ALWAYS_EAGER=false).
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
# An eager task stores its state and result as a worker's would, so that the pages and the job
# recovery that read them (AsyncResult) see in tests what they see in a deployment; without it
# Celery warns that nothing is stored, and the suite turns RuntimeWarnings into errors.
CELERY_TASK_STORE_EAGER_RESULT = True
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "test-media" / str(os.getpid()))))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that a worker process started by a test sees the same rows.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-framelab.sqlite3")}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Apart from the folders a development worker on this machine reads, so that neither
    # takes the other's messages.
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(
        CELERY_FILESYSTEM_BROKER_DIR.parent / "test-broker"
    )
    CELERY_RESULT_BACKEND = env(
        "CELERY_RESULT_BACKEND", default=f"file://{VAR_DIR / 'celery' / 'test-results'}"
    )
# Serve static files from the app folders without a collectstatic step.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
