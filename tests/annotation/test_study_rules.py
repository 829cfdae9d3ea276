"""A study's completion URL and status changes follow one rule in the service layer, whichever
entry point is used: the command, the API, the admin or the study page (issue 12, finding 9).

The bugs guarded against: `create_study --completion-url 'javascript:...'` was accepted (and
rendered as the done page's link and refresh target), the API and admin accepted `ftp:` URLs,
and the study page's status form moved an open study with participants back to draft."""
from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.models import Dataset, Participant, Study
from annotation.studies.assignment import participant_consent, participant_enter
from annotation.studies.services import (
    StudyRuleError,
    study_create,
    study_set_status,
    study_update,
)

pytestmark = pytest.mark.django_db

BAD_URLS = [
    "javascript:alert(document.cookie)",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "ftp://files.example.org/done",
    "//example.org/no-scheme",
    "https://",
    "https://example.org/a b",
    "https://example.org/\nx",
    "vbscript:msgbox(1)",
]
GOOD_URL = "https://app.prolific.com/submissions/complete?cc=ABC123"


@pytest.fixture
def dataset(db):
    call_command("load_demo", no_user=True, stdout=io.StringIO())
    return Dataset.objects.get(name="FrameLab demo")


@pytest.fixture
def researcher(db):
    return get_user_model().objects.create_user("rita", password="pw-rita-long")


def make_study(dataset, owner=None, name="rules", **extra):
    return study_create(dataset=dataset, name=name, base_claims=8, batch_size=6,
                        raters_per_batch=2, seed=1, owner=owner, status=Study.Status.OPEN, **extra)


@pytest.mark.parametrize("url", BAD_URLS)
def test_the_service_refuses_a_completion_url_that_is_not_http(dataset, url):
    with pytest.raises(StudyRuleError) as refused:
        make_study(dataset, completion_url=url)
    assert refused.value.field == "completion_url"
    assert "http" in str(refused.value)
    assert not Study.objects.exists()


def test_the_service_refuses_it_on_update_too(dataset):
    study = make_study(dataset, completion_url=GOOD_URL)
    with pytest.raises(StudyRuleError):
        study_update(study=study, changes={"completion_url": "javascript:alert(1)"})
    study.refresh_from_db()
    assert study.completion_url == GOOD_URL


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://example.org/x"])
def test_the_command_refuses_it_with_the_value(dataset, url):
    with pytest.raises(CommandError, match="completion"):
        call_command("create_study", dataset=dataset.name, name="cmd", base_claims=8,
                     batch_size=6, completion_url=url, stdout=io.StringIO())
    assert not Study.objects.exists()


def test_the_command_accepts_https(dataset):
    call_command("create_study", dataset=dataset.name, name="cmd", base_claims=8, batch_size=6,
                 completion_url=GOOD_URL, stdout=io.StringIO())
    assert Study.objects.get(name="cmd").completion_url == GOOD_URL


def _api(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.mark.parametrize("url", ["ftp://example.org/x", "javascript:alert(1)"])
def test_the_api_refuses_it_on_create_and_patch(dataset, researcher, url):
    api = _api(researcher)
    created = api.post(reverse("api:study-list"), {
        "dataset": dataset.pk, "name": "api", "base_claims": 8, "batch_size": 6,
        "completion_url": url}, format="json")
    assert created.status_code == 400, created.content
    assert "completion_url" in created.json()
    study = make_study(dataset, owner=researcher)
    patched = api.patch(reverse("api:study-detail", args=[study.pk]), {"completion_url": url},
                        format="json")
    assert patched.status_code == 400, patched.content
    assert "completion_url" in patched.json()


def test_the_admin_refuses_it(dataset):
    admin = get_user_model().objects.create_superuser("ada", password="pw-ada-long")
    study = make_study(dataset, completion_url=GOOD_URL)
    client = Client()
    client.force_login(admin)
    url = reverse("admin:annotation_study_change", args=[study.pk])
    page = client.get(url)
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None}
    data.update({"completion_url": "ftp://example.org/x", "attention_checks-TOTAL_FORMS": "0",
                 "attention_checks-INITIAL_FORMS": "0"})
    response = client.post(url, data)
    assert response.status_code == 200  # the form again, with its error
    assert b"http" in response.content
    study.refresh_from_db()
    assert study.completion_url == GOOD_URL


def test_a_bad_url_already_stored_is_never_rendered_on_the_done_page(dataset):
    """An install whose database holds such a URL from before the rule shows no link."""
    study = make_study(dataset)
    Study.objects.filter(pk=study.pk).update(completion_url="javascript:alert(1)")
    participant = participant_consent(participant=participant_enter(study=study, external_id="d1"))
    Participant.objects.filter(pk=participant.pk).update(
        status=Participant.Status.COMPLETED, completed_at=participant.consented_at)
    page = Client().get(reverse("annotation:participant-done", kwargs={
        "study_id": study.pk, "token": participant.token}))
    assert page.status_code == 200
    assert b"javascript:" not in page.content
    assert study.completion_code.encode() in page.content


# --- Status changes --------------------------------------------------------------------------

def _with_participant(study):
    participant_enter(study=study, external_id="someone")
    return study


def test_the_service_refuses_draft_once_someone_entered(dataset):
    study = _with_participant(make_study(dataset))
    with pytest.raises(StudyRuleError, match="draft"):
        study_set_status(study=study, status=Study.Status.DRAFT)
    study.refresh_from_db()
    assert study.status == Study.Status.OPEN


def test_a_study_nobody_entered_may_go_back_to_draft(dataset):
    study = make_study(dataset)
    study_set_status(study=study, status=Study.Status.DRAFT)
    assert Study.objects.get(pk=study.pk).status == Study.Status.DRAFT


def test_pausing_needs_an_open_study(dataset):
    study = make_study(dataset)
    study_set_status(study=study, status=Study.Status.CLOSED)
    with pytest.raises(StudyRuleError, match="paused"):
        study_set_status(study=study, status=Study.Status.PAUSED)
    assert Study.objects.get(pk=study.pk).status == Study.Status.CLOSED


def test_the_study_page_form_follows_the_same_rule(dataset, researcher):
    study = _with_participant(make_study(dataset, owner=researcher))
    client = Client()
    client.force_login(researcher)
    response = client.post(reverse("annotation:study-status", args=[study.pk]),
                           {"status": "draft"}, follow=True)
    assert response.status_code == 200
    assert Study.objects.get(pk=study.pk).status == Study.Status.OPEN
    assert b"cannot" in response.content
    client.post(reverse("annotation:study-status", args=[study.pk]), {"status": "paused"})
    assert Study.objects.get(pk=study.pk).status == Study.Status.PAUSED


def test_the_admin_follows_the_same_rule(dataset):
    admin = get_user_model().objects.create_superuser("ada", password="pw-ada-long")
    study = _with_participant(make_study(dataset))
    client = Client()
    client.force_login(admin)
    url = reverse("admin:annotation_study_change", args=[study.pk])
    form = client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None}
    data.update({"status": "draft", "attention_checks-TOTAL_FORMS": "0",
                 "attention_checks-INITIAL_FORMS": "0"})
    response = client.post(url, data)
    assert response.status_code == 200
    assert Study.objects.get(pk=study.pk).status == Study.Status.OPEN


def test_the_api_answers_409_from_the_service_rule(dataset, researcher):
    study = make_study(dataset, owner=researcher)
    study_set_status(study=study, status=Study.Status.CLOSED)
    response = _api(researcher).post(reverse("api:study-pause", args=[study.pk]))
    assert response.status_code == 409
    assert "paused" in response.json()["detail"]
