"""The rater's flow through the real views: entry, consent, items, completion, resumption,
idempotent submissions, edits with history, and every kind of bad input."""
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from annotation.models import (
    Batch,
    Dataset,
    Judgment,
    JudgmentRevision,
    Participant,
    Study,
)
from annotation.studies.assignment import sessions_reclaim_expired
from annotation.studies.services import study_create

pytestmark = pytest.mark.django_db


def enter(client, study, pid="P1", **extra):
    response = client.get(f"/s/{study.pk}/", {"PROLIFIC_PID": pid, "STUDY_ID": "S", "SESSION_ID": "X", **extra})
    return response


def start(client, study, pid="P1"):
    """Enters and consents; returns the participant."""
    response = enter(client, study, pid)
    assert response.status_code == 302
    consent = client.get(response["Location"], follow=True)
    assert b"agree to take part" in consent.content
    client.post(consent.redirect_chain[-1][0], {"consent": "yes"})
    return Participant.objects.get(study=study, external_id=pid)


def item_url(participant, position):
    return reverse("annotation:participant-item", args=[participant.study_id, participant.token, position])


def ticket_of(response):
    return re.search(rb'name="ticket" value="([^"]+)"', response.content).group(1).decode()


class _CheckedRadios(HTMLParser):
    def __init__(self):
        super().__init__()
        self.checked = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("type") == "radio" and "checked" in attrs:
            assert attrs["name"] not in self.checked, f"two {attrs['name']} radios checked"
            self.checked[attrs["name"]] = attrs["value"]


def checked_radios(response) -> dict[str, str]:
    """{radio group name: value} of every checked radio on the page."""
    parser = _CheckedRadios()
    parser.feed(response.content.decode())
    return parser.checked


def answer(client, participant, position, accurate="yes", confidence=4, familiarity=2, ticket=None):
    if ticket is None:
        ticket = ticket_of(client.get(item_url(participant, position)))
    return client.post(item_url(participant, position), {
        "accurate": accurate, "confidence": confidence, "familiarity": familiarity,
        "ticket": ticket, "response_time_ms": 1234})


def test_a_full_session_from_prolific_to_completion_code(client, study):
    participant = start(client, study)
    assert participant.status == "active" and participant.batch is not None
    assert (participant.platform_study_id, participant.platform_session_id) == ("S", "X")
    first = client.get(item_url(participant, 1))
    assert b"Claim 1 of 6" in first.content
    assert b"<legend>Is this accurate?" in first.content
    for position in range(1, 7):
        response = answer(client, participant, position)
    assert response.status_code == 302 and response["Location"].endswith("/done/")
    done = client.get(response["Location"])
    assert b"DONE123" in done.content and b"app.prolific.com" in done.content

    participant.refresh_from_db()
    assert participant.status == "completed"
    judgments = list(Judgment.objects.filter(participant=participant).order_by("position"))
    assert [j.position for j in judgments] == [1, 2, 3, 4, 5, 6]
    assert all(j.accept and j.confidence == 4 and j.familiarity == 2 and j.response_time_ms == 1234
               for j in judgments)
    assert all(j.answered_at >= j.shown_at for j in judgments)
    batch = Batch.objects.get(pk=participant.batch_id)
    assert (batch.active_count, batch.completed_count) == (0, 1)
    # Coming back shows the completion page again, never a second session.
    again = enter(client, study)
    assert client.get(again["Location"], follow=True).redirect_chain[-1][0].endswith("/done/")
    assert Participant.objects.filter(study=study).count() == 1


def test_returning_participant_resumes_where_they_left(client, study):
    participant = start(client, study)
    answer(client, participant, 1)
    answer(client, participant, 2)
    resumed = client.get(enter(client, study)["Location"])
    assert resumed["Location"] == item_url(participant, 3)
    # A later position typed by hand goes back to the first unanswered one.
    assert client.get(item_url(participant, 6))["Location"] == item_url(participant, 3)


def test_an_answer_to_a_later_item_is_not_stored(client, study):
    """Items are answered in order, also when a submission skips ahead with a valid ticket."""
    from annotation.studies.participant_views import _new_ticket
    from annotation.studies.selectors import batch_items

    participant = start(client, study)
    answer(client, participant, 1)
    later = batch_items(participant.batch_id)[5]
    response = answer(client, participant, 5, ticket=_new_ticket(participant, later))
    assert response.status_code == 302 and response["Location"] == item_url(participant, 2)
    assert list(Judgment.objects.filter(participant=participant).values_list("position", flat=True)) == [1]


def test_a_double_submit_stores_one_judgment(client, study):
    participant = start(client, study)
    ticket = ticket_of(client.get(item_url(participant, 1)))
    first = answer(client, participant, 1, ticket=ticket)
    second = answer(client, participant, 1, ticket=ticket, accurate="no")
    assert first.status_code == second.status_code == 302
    # The retry goes on to the next item, like the first submission did.
    assert first["Location"] == second["Location"] == item_url(participant, 2)
    judgment = Judgment.objects.get(participant=participant)
    assert judgment.accept is True and judgment.revisions == 0


def test_previous_edits_keep_the_earlier_answer(client, study):
    participant = start(client, study)
    answer(client, participant, 1, accurate="yes", confidence=2)
    page = client.get(item_url(participant, 1))
    # Exactly the stored answer, not merely some checked radio (issue 20: a "Previous" that
    # pre-filled the opposite answer passed the old `b"checked" in page` check).
    assert checked_radios(page) == {"accurate": "yes", "confidence": "2", "familiarity": "2"}
    answer(client, participant, 1, accurate="no", confidence=5, ticket=ticket_of(page))
    judgment = Judgment.objects.get(participant=participant)
    assert (judgment.accept, judgment.confidence, judgment.revisions) == (False, 5, 1)
    old = JudgmentRevision.objects.get(judgment=judgment)
    assert (old.accept, old.confidence) == (True, 2)


@pytest.mark.parametrize("data, field, message", [
    ({"confidence": 7}, "confidence", b"Select a valid choice"),
    ({"familiarity": ""}, "familiarity", b"Please choose 1 to 5"),
    ({"accurate": "maybe"}, "accurate", b"Select a valid choice"),
    ({"accurate": None}, "accurate", b"Please answer Yes or No"),
])
def test_invalid_answers_are_refused_per_field(client, study, data, field, message):
    participant = start(client, study)
    form = {"accurate": "yes", "confidence": 3, "familiarity": 3,
            "ticket": ticket_of(client.get(item_url(participant, 1)))}
    form.update(data)
    form = {k: v for k, v in form.items() if v is not None}
    response = client.post(item_url(participant, 1), form)
    assert response.status_code == 400
    assert message in response.content
    assert f'id="e-{field}"'.encode() in response.content
    assert not Judgment.objects.exists()


def test_tampered_ticket_and_other_sessions_are_refused(client, study):
    alice, bob = start(client, study, "alice"), start(client, study, "bob")
    ticket = ticket_of(client.get(item_url(alice, 1)))
    tampered = ticket[:-3] + ("AAA" if not ticket.endswith("AAA") else "BBB")
    assert answer(client, alice, 1, ticket=tampered).status_code == 400
    # Alice's ticket on Bob's page, and Alice's item in Bob's session.
    assert answer(client, bob, 1, ticket=ticket).status_code == 400
    stranger = reverse("annotation:participant-item", args=[study.pk, "not-a-token", 1])
    assert client.get(stranger).status_code == 404
    assert not Judgment.objects.exists()


def test_closed_and_paused_studies_turn_new_participants_away(client, study):
    participant = start(client, study, "early")
    study.status = Study.Status.PAUSED
    study.save()
    response = enter(client, study, "late")
    assert response.status_code == 403 and b"paused" in response.content
    # Someone already in a paused study may finish.
    assert answer(client, participant, 1).status_code == 302
    study.status = Study.Status.CLOSED
    study.save()
    assert b"closed" in enter(client, study, "later").content
    assert not Participant.objects.filter(external_id__in=["late", "later"]).exists()


def test_batches_fill_evenly_and_a_full_study_says_so(client, study):
    batches = study.batches.count()
    participants = [start(client, study, f"p{i}") for i in range(batches * 2)]
    fills = sorted(Batch.objects.filter(study=study).values_list("active_count", flat=True))
    assert fills == [2] * batches
    assert len({p.batch_id for p in participants[:batches]}) == batches
    response = enter(client, study, "one-too-many")
    consent = client.get(response["Location"], follow=True).redirect_chain[-1][0]
    full = client.post(consent, {"consent": "yes"})
    assert full.status_code == 403 and b"full" in full.content


def test_idle_sessions_are_reclaimed_and_their_slot_reopens(client, study):
    participant = start(client, study)
    Participant.objects.filter(pk=participant.pk).update(
        last_seen_at=timezone.now() - timedelta(minutes=61))
    assert sessions_reclaim_expired() == 1
    participant.refresh_from_db()
    assert participant.status == "timed_out"
    assert Batch.objects.get(pk=participant.batch_id).active_count == 0
    page = client.get(reverse("annotation:participant-home", args=[study.pk, participant.token]))
    assert page.status_code == 403 and b"timed out" in page.content


def test_mark_participants_reopens_slots(client, study, capsys):
    participant = start(client, study, "gone")
    call_command("mark_participants", study.name, "gone", status="returned")
    participant.refresh_from_db()
    assert participant.status == "returned"
    assert Batch.objects.get(pk=participant.batch_id).active_count == 0
    with pytest.raises(CommandError, match="has no participant"):
        call_command("mark_participants", str(study.pk), "nobody", status="rejected")


def test_attention_check_with_end_policy(client):
    call_command("load_demo", no_user=True)
    study = study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name="checked",
                         base_claims=8, batch_size=6, raters_per_batch=1, seed=1,
                         status=Study.Status.OPEN,
                         attention_checks=[("Please answer No to this statement.", False, 2)],
                         attention_fail_policy=Study.AttentionFailPolicy.END)
    participant = start(client, study)
    answer(client, participant, 1)
    response = answer(client, participant, 2, accurate="yes")
    assert response["Location"].endswith("/done/")
    participant.refresh_from_db()
    assert participant.status == "excluded" and participant.attention_failures == 1
    assert Batch.objects.get(pk=participant.batch_id).active_count == 0
    assert Judgment.objects.get(participant=participant, position=2).attention_passed is False


def test_create_study_command_prints_the_urls(capsys):
    call_command("load_demo", no_user=True)
    call_command("create_study", dataset="FrameLab demo", name="FrameRef replication",
                 base_claims=40, batch_size=20, raters_per_batch=3)
    out = capsys.readouterr().out
    study = Study.objects.get(name="FrameRef replication")
    assert f"created study {study.pk} 'FrameRef replication' (open): 40 base claims x 6 framings " \
           f"in 12 batches of 20, 3 raters each (36 sessions)" in out
    assert f"/s/{study.pk}/?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}" in out
    with pytest.raises(CommandError, match="batch"):
        call_command("create_study", dataset="FrameLab demo", name="impossible",
                     base_claims=40, batch_size=41)


def test_mturk_preview_and_generic_entry(client, study):
    preview = client.get(f"/s/{study.pk}/", {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "H"})
    assert preview.status_code == 200 and b"preview" in preview.content
    assert not Participant.objects.exists()
    ask = client.get(f"/s/{study.pk}/")
    assert b'name="participant"' in ask.content
    client.get(f"/s/{study.pk}/", {"workerId": "W1", "assignmentId": "A1", "hitId": "H"})
    client.get(f"/s/{study.pk}/", {"participant": "lab-7"})
    assert dict(Participant.objects.values_list("external_id", "source")) == {"W1": "mturk", "lab-7": "generic"}


def test_researcher_study_page_shows_progress(client, study, django_user_model):
    start(client, study, "someone")
    client.force_login(django_user_model.objects.create_superuser("r", password="x"))
    page = client.get(reverse("annotation:study-detail", args=[study.pk]))
    assert page.status_code == 200
    assert b"someone" in page.content and b"0 of 16 sessions completed, 1 in progress" in page.content
    client.post(reverse("annotation:study-status", args=[study.pk]), {"status": "paused"})
    study.refresh_from_db()
    assert study.status == "paused"
