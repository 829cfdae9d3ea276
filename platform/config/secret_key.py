"""The secret key: generated once per install for the embedded setup, checked for a deployment.

Django signs sessions, CSRF tokens, password reset links and the participants' item tickets
(annotation/studies/participant_views.py) with SECRET_KEY: whoever knows it can forge them. So
there is no fixed fallback key anywhere. The embedded setup (`config.settings`, the test
settings) uses DJANGO_SECRET_KEY when it is set, else a random key that the first process to
start writes to `var/secret_key` (mode 0600) and every later one reads. The production settings
take DJANGO_SECRET_KEY only, and refuse to start with a missing, short or publicly known one.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

MIN_LENGTH = 50  # as Django's own deployment check (security.W009)
MIN_UNIQUE_CHARACTERS = 5
# Keys that have been published: FrameLab's former fallback, the placeholder of
# platform/env.example before it was emptied, and Django's marker for generated development keys.
WELL_KNOWN_KEYS = frozenset({
    "framelab-insecure-development-key-change-me",
    "change-me-to-a-long-random-string",
})
WELL_KNOWN_PREFIXES = ("django-insecure-",)
PLACEHOLDER_WORDS = ("change-me", "changeme", "change_me", "insecure", "your-secret", "secret-key")
HOW_TO_MAKE_ONE = ('generate one with: python3 -c "import secrets; print(secrets.token_urlsafe(64))"')


def new_secret_key() -> str:
    return secrets.token_urlsafe(64)  # 86 characters, 512 bits


def embedded_secret_key(path: Path) -> str:
    """The install's own key from `path`, written there first if the file does not exist.

    Several processes may start at once (gunicorn workers, the Celery worker, a command): each
    writes a candidate to a private temporary file and links it into place, which succeeds for
    exactly one of them; all then read the same file.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(new_secret_key() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(candidate, path)
        except FileExistsError:
            pass  # another process was first: use its key
        finally:
            candidate.unlink()
    elif path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)  # readable by others: narrow it to the owner
    key = path.read_text().strip()
    if len(key) < MIN_LENGTH:
        raise ImproperlyConfigured(
            f"{path} holds no usable secret key (fewer than {MIN_LENGTH} characters). Delete the "
            f"file to have a new key generated (signed-in users must then sign in again), or set "
            f"DJANGO_SECRET_KEY.")
    return key


def why_unusable(key: str) -> str | None:
    """Why a deployment must not use `key`, or None when it may."""
    if not key:
        return "is not set"
    if key in WELL_KNOWN_KEYS or key.startswith(WELL_KNOWN_PREFIXES):
        return "is a publicly known key"
    if any(word in key.lower() for word in PLACEHOLDER_WORDS):
        return "looks like a placeholder"
    if len(key) < MIN_LENGTH:
        return f"is too short ({len(key)} characters; at least {MIN_LENGTH} random ones)"
    if len(set(key)) < MIN_UNIQUE_CHARACTERS:
        return "has too few different characters to be random"
    return None


def production_secret_key(key: str, variable: str = "DJANGO_SECRET_KEY") -> str:
    """`key`, or ImproperlyConfigured saying what is wrong with it and how to make a good one."""
    problem = why_unusable(key.strip())
    if problem:
        raise ImproperlyConfigured(
            f"{variable} {problem}. The production settings need a secret key of at least "
            f"{MIN_LENGTH} random characters that nobody else knows; {HOW_TO_MAKE_ONE}")
    return key.strip()
