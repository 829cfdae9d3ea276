"""Inputs that used to end in a server error (issue 12, finding 4) give a clear 400 or 404.

Each test names the crash it guards against. "²" is a digit to `str.isdigit()` but not to
`int()`; 99999999999999999999 is past the largest id a database column can hold."""
from __future__ import annotations

import io

import pytest
from django.core import signing
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from annotation.models import Participant
from annotation.studies.assignment import participant_consent, participant_enter
from annotation.studies.participant_views import TICKET_SALT
from annotation.studies.selectors import batch_items

from .conftest import take_part

pytestmark = pytest.mark.django_db

HUGE = "99999999999999999999"

PAGINATED = ["api:dataset-list", "api:import-list", "api:study-list", "api:judgment-list"]
PAGINATED_IN_STUDY = ["api:participant-list", "api:study-exports"]


def test_create_study_api_with_an_unknown_base_claim_id_is_a_400(api, demo_dataset):
    """Guards against `DesignError` raised with one argument (a TypeError, so a 500)."""
    response = api.post(reverse("api:study-list"), {
        "dataset": demo_dataset.pk, "name": "unknown ids", "base_claim_ids": ["no-such-claim"],
        "batch_size": 6, "raters_per_batch": 1}, format="json")
    assert response.status_code == 400, response.content
    assert "no-such-claim" in str(response.json())


def test_create_study_command_with_an_unknown_base_claim_id_names_it(demo_dataset):
    """The command's side of the same crash: a CommandError naming the id, not a TypeError."""
    with pytest.raises(CommandError, match="no-such-claim"):
        call_command("create_study", dataset=demo_dataset.name, name="unknown ids",
                     base_claim_ids=["no-such-claim"], batch_size=6, stdout=io.StringIO())


@pytest.mark.parametrize("value", [HUGE, "-" + HUGE, "²"])
def test_study_list_with_an_id_past_any_column_is_a_400(api, value):
    """Guards against an out-of-range id reaching the database (OverflowError / DataError)."""
    response = api.get(reverse("api:study-list"), {"dataset": value})
    assert response.status_code == 400, response.content
    assert "dataset" in response.json()


@pytest.mark.parametrize("value", [HUGE, "²"])
def test_judgment_list_with_an_id_past_any_column_is_a_400(api, value):
    response = api.get(reverse("api:judgment-list"), {"study": value})
    assert response.status_code == 400, response.content


@pytest.mark.parametrize("name", PAGINATED + PAGINATED_IN_STUDY)
@pytest.mark.parametrize("value", ["²", "１２", HUGE, "9" * 5000])
def test_every_paginated_list_refuses_a_page_size_that_is_not_a_number(api, study, name, value):
    """Guards against `"²".isdigit()` being true while `int("²")` raises (a 500)."""
    kwargs = {"pk": study.pk} if name in PAGINATED_IN_STUDY else {}
    response = api.get(reverse(name, kwargs=kwargs), {"page_size": value})
    if value.isascii():
        # A huge page size is the largest page, as the schema says.
        assert response.status_code == 200, response.content
    else:
        assert response.status_code == 400, response.content
        assert value in response.json()["page_size"][0]


@pytest.mark.parametrize("name", PAGINATED)
@pytest.mark.parametrize("value", ["²", HUGE])
def test_every_paginated_list_answers_a_page_that_is_not_a_number(api, study, name, value):
    response = api.get(reverse(name), {"page": value})
    assert response.status_code == 404, response.content


@pytest.fixture
def researcher_client(owner):
    client = Client()
    client.force_login(owner)
    return client


@pytest.mark.parametrize("value", ["²", HUGE, "#" + HUGE, "no such dataset"])
def test_persona_comparison_with_a_bad_dataset_is_not_a_server_error(researcher_client, demo_dataset,
                                                                     value):
    """Guards against `int("²")` and out-of-range ids in `/personas/compare/?dataset=`."""
    response = researcher_client.get(reverse("modeling:persona-compare"),
                                     {"dataset": value, "persona": ["²", HUGE]})
    assert response.status_code == 404, response.content
    assert value.encode() in response.content


def test_persona_comparison_by_id_still_works(researcher_client, demo_dataset):
    response = researcher_client.get(reverse("modeling:persona-compare"),
                                     {"dataset": str(demo_dataset.pk)})
    assert response.status_code == 200
    assert response.context["dataset"] == demo_dataset


def _item_post(client, participant, position, ticket):
    url = reverse("annotation:participant-item", kwargs={
        "study_id": participant.study_id, "token": participant.token, "position": position})
    return client.post(url, {"accurate": "yes", "confidence": "4", "familiarity": "2",
                             "ticket": ticket})


@pytest.mark.parametrize("shown_at, key", [
    ("not a time", "0" * 32),
    (12345, "0" * 32),
    (None, "0" * 32),
    ("2026-01-01T00:00:00+00:00", "not a uuid"),
    ("2026-01-01T00:00:00+00:00", 7),
    ("2026-01-01T00:00:00", "0" * 32),  # a time without its zone
])
def test_a_signed_ticket_with_a_malformed_time_or_key_is_refused_with_the_page(study, shown_at, key):
    """Guards against the ticket's time and key being parsed outside the `try` (a 500).

    The tickets are signed with the platform's key, as only a bug or a leaked key would
    make them; the answer is the participant's "page out of date" page, and nothing is stored."""
    participant = participant_consent(participant=participant_enter(study=study, external_id="t1"))
    item = batch_items(participant.batch_id)[1]
    ticket = signing.dumps([participant.pk, item.pk, shown_at, key], salt=TICKET_SALT, compress=False)
    response = _item_post(Client(), participant, 1, ticket)
    assert response.status_code == 400
    assert b"out of date" in response.content
    assert not participant.judgments.exists()


@pytest.mark.parametrize("payload", [[], [1, 2], "text", {"a": 1}, [None, None, None, None]])
def test_a_signed_ticket_of_the_wrong_shape_is_refused(study, payload):
    participant = participant_consent(participant=participant_enter(study=study, external_id="t2"))
    ticket = signing.dumps(payload, salt=TICKET_SALT, compress=False)
    response = _item_post(Client(), participant, 1, ticket)
    assert response.status_code == 400
    assert Participant.objects.get(pk=participant.pk).judgments.count() == 0


def test_judgment_detail_and_export_with_huge_ids_are_404(api, study):
    take_part(study, "p1", answers=2)
    assert api.get(f"/api/judgments/{HUGE}/").status_code == 404
    assert api.get(f"/api/studies/{HUGE}/").status_code == 404
    assert api.get(f"/api/exports/{HUGE}/").status_code == 404


@pytest.mark.parametrize("field, value", [("dataset", int(HUGE)), ("seed", int(HUGE)),
                                          ("seed", -int(HUGE))])
def test_create_study_with_numbers_past_any_column_is_a_400(api, demo_dataset, field, value):
    """Guards against a seed or dataset id too large for its column reaching the database."""
    body = {"dataset": demo_dataset.pk, "name": "huge", "base_claims": 8, "batch_size": 6,
            "raters_per_batch": 1, field: value}
    response = api.post(reverse("api:study-list"), body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
