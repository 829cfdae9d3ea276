"""The secret key: a random one generated once per embedded install (var/secret_key, mode 0600),
none that anyone else knows; the production settings refuse a missing, short or published key;
what the old published key signed is worth nothing (issue 12, finding 5)."""
from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.urls import reverse

from annotation.models import Dataset, Judgment, Participant, Study
from annotation.studies.participant_views import TICKET_SALT
from annotation.studies.services import study_create

ROOT = Path(__file__).resolve().parents[1]
OLD_FALLBACK = "framelab-insecure-development-key-change-me"
STRONG = "k7Qm2vX9pL4tR8wZ1nB6cF3hJ5yD0sG-aE_uK2xV9qM4oT7rW1iN8bC3fH6jL0pS"

PRINT_KEY = """
import hashlib, django
from django.conf import settings
django.setup()
print(hashlib.sha256(settings.SECRET_KEY.encode()).hexdigest(), len(settings.SECRET_KEY))
"""


def run_settings(module: str, code: str = PRINT_KEY, **env_overrides):
    env = {k: v for k, v in os.environ.items()
           if k not in {"DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY_FALLBACKS", "FRAMELAB_VAR_DIR",
                        "DJANGO_SETTINGS_MODULE"}}
    env.update(PYTHONPATH=f"{ROOT / 'platform'}:{ROOT}", DJANGO_SETTINGS_MODULE=module, **env_overrides)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_the_embedded_setup_generates_its_own_key_once(tmp_path):
    first = run_settings("config.settings", FRAMELAB_VAR_DIR=str(tmp_path / "a"))
    again = run_settings("config.settings", FRAMELAB_VAR_DIR=str(tmp_path / "a"))
    other = run_settings("config.settings", FRAMELAB_VAR_DIR=str(tmp_path / "b"))
    assert first.returncode == 0, first.stderr
    digest, length = first.stdout.split()
    assert int(length) >= 50
    assert again.stdout == first.stdout  # the same install keeps its key
    assert other.stdout.split()[0] != digest  # another install has another one
    assert digest != hashlib.sha256(OLD_FALLBACK.encode()).hexdigest()
    key_file = tmp_path / "a" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert hashlib.sha256(key_file.read_text().strip().encode()).hexdigest() == digest


def test_an_explicit_key_wins_and_no_file_is_written(tmp_path):
    result = run_settings("config.settings", FRAMELAB_VAR_DIR=str(tmp_path), DJANGO_SECRET_KEY=STRONG)
    assert result.stdout.split()[0] == hashlib.sha256(STRONG.encode()).hexdigest()
    assert not (tmp_path / "secret_key").exists()


def test_processes_starting_together_agree_on_one_key(tmp_path):
    from config.secret_key import embedded_secret_key

    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: embedded_secret_key(tmp_path / "secret_key"), range(16)))
    assert len(keys) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no candidates left behind


def test_a_key_file_readable_by_others_is_narrowed_and_an_empty_one_refused(tmp_path):
    from config.secret_key import embedded_secret_key

    path = tmp_path / "secret_key"
    path.write_text(STRONG)
    path.chmod(0o644)
    assert embedded_secret_key(path) == STRONG
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("short")
    with pytest.raises(ImproperlyConfigured, match="Delete the file"):
        embedded_secret_key(path)


@pytest.mark.parametrize("key, reason", [
    ("", "is not set"),
    ("x", "too short"),
    (OLD_FALLBACK, "publicly known"),
    ("change-me-to-a-long-random-string", "publicly known"),
    ("django-insecure-" + "a1b2c3d4e5" * 5, "publicly known"),
    ("please-change-me-" + "q" * 50, "placeholder"),
    ("ab" * 40, "different characters"),
])
def test_production_refuses_unusable_keys(key, reason):
    from config.secret_key import production_secret_key

    with pytest.raises(ImproperlyConfigured, match=reason):
        production_secret_key(key)
    assert production_secret_key(STRONG) == STRONG


@pytest.mark.parametrize("key", ["x", OLD_FALLBACK])
def test_production_settings_do_not_start_with_a_short_or_known_key(key, tmp_path):
    result = run_settings("config.settings.production", "import django; django.setup()",
                          DJANGO_SECRET_KEY=key, FRAMELAB_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "DJANGO_SECRET_KEY" in result.stderr
    assert not (tmp_path / "secret_key").exists()  # production never writes a key


def test_production_settings_check_the_rotation_fallbacks_too(tmp_path):
    result = run_settings("config.settings.production", "import django; django.setup()",
                          DJANGO_SECRET_KEY=STRONG, DJANGO_SECRET_KEY_FALLBACKS=OLD_FALLBACK,
                          FRAMELAB_VAR_DIR=str(tmp_path))
    assert result.returncode != 0 and "DJANGO_SECRET_KEY_FALLBACKS" in result.stderr
    ok = run_settings("config.settings.production", PRINT_KEY, DJANGO_SECRET_KEY=STRONG,
                      FRAMELAB_VAR_DIR=str(tmp_path))
    assert ok.returncode == 0, ok.stderr


@pytest.fixture
def study(db):
    call_command("load_demo", no_user=True)
    return study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name="keys",
                        base_claims=8, batch_size=6, raters_per_batch=2, seed=7,
                        status=Study.Status.OPEN, completion_code="DONE", completion_url="")


def test_a_ticket_forged_with_the_old_published_key_is_refused(client, study):
    """The report's forgery: a ticket signed with the old fallback key, shown in 1999."""
    entry = client.get(f"/s/{study.pk}/", {"PROLIFIC_PID": "P1", "STUDY_ID": "S", "SESSION_ID": "X"})
    consent = client.get(entry["Location"], follow=True)
    client.post(consent.redirect_chain[-1][0], {"consent": "yes"})
    participant = Participant.objects.get(study=study, external_id="P1")
    url = reverse("annotation:participant-item", args=[study.pk, participant.token, 1])
    page = client.get(url)
    assert page.status_code == 200
    item = page.context["item"]
    shown_at = datetime(1999, 1, 1, tzinfo=timezone.utc).isoformat()
    forged = signing.dumps([participant.pk, item.pk, shown_at, "0" * 32], key=OLD_FALLBACK,
                           salt=TICKET_SALT, compress=False)
    answer = {"accurate": "yes", "confidence": 4, "familiarity": 2, "response_time_ms": 1000}
    assert client.post(url, {**answer, "ticket": forged}).status_code == 400
    assert not Judgment.objects.filter(participant=participant).exists()
    # The page's own ticket, signed with this install's key, still works.
    genuine = page.context["ticket"]
    assert client.post(url, {**answer, "ticket": genuine}).status_code == 302
    assert Judgment.objects.filter(participant=participant).count() == 1


def test_sessions_still_work(client, django_user_model):
    django_user_model.objects.create_user("rita", password="a-long-pass-phrase")
    response = client.post("/accounts/login/", {"username": "rita", "password": "a-long-pass-phrase"})
    assert response.status_code == 302
    assert client.get(reverse("annotation:dataset-list")).status_code == 200
