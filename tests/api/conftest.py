"""Researchers, clients and a study with real answers, made through the platform's services."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import Dataset, Participant, Study
from annotation.studies.assignment import participant_consent, participant_enter
from annotation.studies.judgments import Answer, judgment_record
from annotation.studies.selectors import batch_items
from annotation.studies.services import study_create


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    # Throttle counts live in the cache, keyed by user id or address; ids come back after a
    # rolled-back test, so each test starts with none.
    cache.clear()
    yield
    cache.clear()


def make_user(username: str, **extra):
    return get_user_model().objects.create_user(username=username, password="pw-" + username, **extra)


@pytest.fixture
def owner(db):
    return make_user("olivia")


@pytest.fixture
def other(db):
    return make_user("oscar")


@pytest.fixture
def collaborator(db):
    return make_user("carla")


def token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(owner):
    """The owner's client, authenticated with a token as a script would be."""
    return token_client(owner)


@pytest.fixture
def other_api(other):
    return token_client(other)


@pytest.fixture
def collaborator_api(collaborator):
    return token_client(collaborator)


@pytest.fixture
def anonymous():
    return APIClient()


@pytest.fixture
def demo_dataset(db):
    call_command("load_demo", no_user=True, stdout=open("/dev/null", "w"))
    return Dataset.objects.get(name="FrameLab demo")


@pytest.fixture
def study(demo_dataset, owner, collaborator):
    """Open, 8 base claims x 6 framings in batches of 6 (8 batches), 2 raters each, one
    attention check at position 3; shared with `collaborator`."""
    created = study_create(dataset=demo_dataset, name="pilot", base_claims=8, batch_size=6,
                           raters_per_batch=2, seed=7, owner=owner, status=Study.Status.OPEN,
                           attention_checks=[("Water is wet.", True, 3)])
    created.collaborators.add(collaborator)
    return created


def take_part(study, external_id: str, *, accept=lambda item: True, confidence=4, familiarity=2,
              answers: int | None = None) -> Participant:
    """A participant who enters, consents and answers (all items unless `answers` is given)
    through the same services the rater pages call."""
    participant = participant_consent(participant=participant_enter(study=study, external_id=external_id))
    items = batch_items(participant.batch_id)
    shown = timezone.now() - timedelta(seconds=30)
    for position in sorted(items)[:answers]:
        item = items[position]
        judgment_record(participant=participant, item=item, answer=Answer(
            accept=accept(item), confidence=confidence, familiarity=familiarity, shown_at=shown,
            submission_key=uuid.uuid4(), response_time_ms=4000))
    participant.refresh_from_db()
    return participant


def results(response) -> list:
    assert response.status_code == 200, response.content
    return response.json()["results"]
