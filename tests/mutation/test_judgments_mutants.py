"""Recording answers (annotation/studies/judgments.py) through the service, on the demo
study: what is stored, what is refused and why, and how the session ends."""
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from annotation.models import (
    Batch,
    BatchItem,
    Dataset,
    Judgment,
    JudgmentRevision,
    Participant,
    Study,
)
from annotation.studies.assignment import (
    participant_consent,
    participant_enter,
    participant_mark,
)
from annotation.studies.judgments import (
    Answer,
    JudgmentOutOfOrder,
    JudgmentRefused,
    closed_reason,
    judgment_record,
)
from annotation.studies.services import study_create

pytestmark = pytest.mark.django_db


def make_study(name="pilot", **extra):
    if not Dataset.objects.filter(name="FrameLab demo").exists():
        call_command("load_demo", no_user=True)
    return study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name=name,
                        base_claims=8, batch_size=6, raters_per_batch=2, seed=7,
                        status=Study.Status.OPEN, **extra)


def started(study, pid="P1"):
    return participant_consent(participant=participant_enter(study=study, external_id=pid))


def items_of(participant):
    return list(BatchItem.objects.filter(batch_id=participant.batch_id).order_by("position"))


def answer(accept=True, confidence=4, familiarity=2, key=None, response_time_ms=1500):
    return Answer(accept=accept, confidence=confidence, familiarity=familiarity,
                  shown_at=timezone.now() - timedelta(seconds=5),
                  submission_key=key or uuid.uuid4(), response_time_ms=response_time_ms)


@pytest.fixture
def study():
    return make_study()


@pytest.mark.parametrize("field, value", [("confidence", 0), ("confidence", 6),
                                          ("familiarity", 0), ("familiarity", 6)])
def test_scale_values_outside_1_to_5_are_refused_by_name(study, field, value):
    participant = started(study)
    with pytest.raises(JudgmentRefused) as caught:
        judgment_record(participant=participant, item=items_of(participant)[0],
                        answer=answer(**{field: value}))
    assert caught.value.reason == f"{field} must be between 1 and 5, not {value}"
    assert str(caught.value) == caught.value.reason
    assert not Judgment.objects.exists()


def test_the_first_answer_is_stored_as_given(study):
    """Guards against any answer field being dropped or swapped on the way to the row, and
    against the participant's activity not being noted (the time-out reads it)."""
    participant = started(study)
    Participant.objects.filter(pk=participant.pk).update(last_seen_at=timezone.now() - timedelta(minutes=30))
    first = items_of(participant)[0]
    given = answer(accept=False, confidence=5, familiarity=1, response_time_ms=2345)
    before = timezone.now()
    recorded = judgment_record(participant=participant, item=first, answer=given)
    assert recorded.created and not recorded.finished
    assert recorded.answered_positions == frozenset({first.position})
    row = Judgment.objects.get()
    assert recorded.judgment.pk == row.pk
    assert (row.participant_id, row.item_id, row.position) == (participant.pk, first.pk, first.position)
    assert (row.accept, row.confidence, row.familiarity) == (False, 5, 1)
    assert (row.shown_at, row.submission_key, row.response_time_ms) == (
        given.shown_at, given.submission_key, 2345)
    assert before <= row.answered_at <= timezone.now()
    assert row.attention_passed is None and row.revisions == 0
    assert recorded.judgment.attention_passed is None  # the object returned, as stored
    assert Participant.objects.get(pk=participant.pk).last_seen_at >= before


@pytest.mark.parametrize("accept", [True, False])
def test_the_accept_answer_is_stored_both_ways(study, accept):
    participant = started(study)
    judgment_record(participant=participant, item=items_of(participant)[0], answer=answer(accept=accept))
    assert Judgment.objects.get().accept is accept


def test_the_same_submission_twice_stores_one_judgment(study):
    participant = started(study)
    first = items_of(participant)[0]
    given = answer()
    judgment_record(participant=participant, item=first, answer=given)
    again = judgment_record(participant=participant, item=first, answer=given)
    assert again.created is False and again.finished is False
    assert again.judgment.pk == Judgment.objects.get().pk
    assert again.answered_positions == frozenset({first.position})
    assert not JudgmentRevision.objects.exists()


def test_an_item_of_another_batch_is_refused(study):
    participant = started(study)
    other = BatchItem.objects.exclude(batch_id=participant.batch_id).first()
    with pytest.raises(JudgmentRefused) as caught:
        judgment_record(participant=participant, item=other, answer=answer())
    assert caught.value.reason == "This item is not part of your session."
    assert not Judgment.objects.exists()


def test_items_are_answered_in_order(study):
    """Guards against skipping ahead: answering item 3 before item 1 names item 1."""
    participant = started(study)
    items = items_of(participant)
    with pytest.raises(JudgmentOutOfOrder) as caught:
        judgment_record(participant=participant, item=items[2], answer=answer())
    assert caught.value.next_position == items[0].position
    assert caught.value.reason == f"Please answer item {items[0].position} first."
    judgment_record(participant=participant, item=items[0], answer=answer())
    with pytest.raises(JudgmentOutOfOrder) as caught:
        judgment_record(participant=participant, item=items[2], answer=answer())
    assert caught.value.next_position == items[1].position
    recorded = judgment_record(participant=participant, item=items[1], answer=answer())
    assert recorded.answered_positions == frozenset({items[0].position, items[1].position})


@pytest.mark.parametrize("status", ["timed_out", "returned", "rejected", "excluded"])
def test_no_answer_is_stored_once_the_session_is_closed(study, status):
    """Guards against answers from a participant who is no longer active being stored (the
    time-out races the answer: the session is either kept or timed out, never both). The
    participant object the view holds still says active; the row says otherwise."""
    participant = started(study)
    stale_view_copy = Participant.objects.get(pk=participant.pk)
    participant_mark(participant=participant, status=status)
    with pytest.raises(JudgmentRefused) as caught:
        judgment_record(participant=stale_view_copy, item=items_of(participant)[0], answer=answer())
    assert caught.value.reason == closed_reason(Participant.objects.get(pk=participant.pk))
    assert not Judgment.objects.exists()


def test_a_retry_after_the_session_closed_returns_the_stored_answer(study):
    participant = started(study)
    first = items_of(participant)[0]
    given = answer()
    judgment_record(participant=participant, item=first, answer=given)
    participant_mark(participant=participant, status="timed_out")
    again = judgment_record(participant=participant, item=first, answer=given)
    assert not again.created and again.finished


def test_a_deleted_session_is_refused(study):
    participant = started(study)
    item = items_of(participant)[0]
    Participant.objects.filter(pk=participant.pk).delete()
    with pytest.raises(JudgmentRefused) as caught:
        judgment_record(participant=participant, item=item, answer=answer())
    assert caught.value.reason == "Your session no longer exists."


def test_a_changed_answer_keeps_the_old_one_as_a_revision(study):
    """Guards against "Previous" overwriting an answer without history, or keeping the new
    values in the revision instead of the old ones."""
    participant = started(study)
    first = items_of(participant)[0]
    old = answer(accept=True, confidence=2, familiarity=3, response_time_ms=900)
    judgment_record(participant=participant, item=first, answer=old)
    stored = Judgment.objects.get()
    new = answer(accept=False, confidence=5, familiarity=4, response_time_ms=1200)
    recorded = judgment_record(participant=participant, item=first, answer=new)
    assert recorded.created and recorded.answered_positions == frozenset({first.position})
    row = Judgment.objects.get()
    assert (row.accept, row.confidence, row.familiarity, row.response_time_ms) == (False, 5, 4, 1200)
    assert (row.shown_at, row.submission_key, row.revisions) == (new.shown_at, new.submission_key, 1)
    assert row.answered_at > stored.answered_at
    revision = JudgmentRevision.objects.get()
    assert revision.judgment_id == row.pk
    assert (revision.accept, revision.confidence, revision.familiarity, revision.response_time_ms) == (
        True, 2, 3, 900)
    assert (revision.shown_at, revision.answered_at, revision.submission_key) == (
        stored.shown_at, stored.answered_at, old.submission_key)
    judgment_record(participant=participant, item=first, answer=answer())
    assert Judgment.objects.get().revisions == 2 and JudgmentRevision.objects.count() == 2


def answer_all(participant, accept_for=lambda item: True):
    recorded = None
    for item in items_of(participant):
        recorded = judgment_record(participant=participant, item=item, answer=answer(accept=accept_for(item)))
        if recorded.finished:
            break
    return recorded


def test_the_last_answer_completes_the_session_and_moves_the_slot(study):
    participant = started(study)
    batch = Batch.objects.get(pk=participant.batch_id)
    assert (batch.active_count, batch.completed_count) == (1, 0)
    items = items_of(participant)
    for item in items[:-1]:
        assert not judgment_record(participant=participant, item=item, answer=answer()).finished
    last = judgment_record(participant=participant, item=items[-1], answer=answer())
    assert last.finished and last.created
    assert last.answered_positions == frozenset(item.position for item in items)
    row = Participant.objects.get(pk=participant.pk)
    assert row.status == Participant.Status.COMPLETED and row.completed_at is not None
    batch.refresh_from_db()
    assert (batch.active_count, batch.completed_count) == (0, 1)


CHECK = [("This sentence is an attention check: answer No.", False, 2)]


def check_item(participant):
    return next(item for item in items_of(participant) if item.attention_check_id is not None)


@pytest.mark.parametrize("policy, status, note", [
    ("record", "completed", ""),
    ("exclude", "excluded", "failed an attention check"),
])
def test_a_failed_check_finishes_by_the_studys_policy(policy, status, note):
    study = make_study(attention_checks=CHECK, attention_fail_policy=policy)
    participant = started(study)
    check = check_item(participant)
    last = answer_all(participant, accept_for=lambda item: item.pk == check.pk)
    assert last.finished
    row = Participant.objects.get(pk=participant.pk)
    assert (row.status, row.status_note, row.attention_failures) == (status, note, 1)
    assert Judgment.objects.get(item=check).attention_passed is False
    assert Judgment.objects.exclude(item=check).filter(attention_passed__isnull=False).count() == 0


def test_a_passed_check_is_recorded_and_excludes_no_one():
    study = make_study(attention_checks=CHECK, attention_fail_policy="exclude")
    participant = started(study)
    check = check_item(participant)
    answer_all(participant, accept_for=lambda item: item.pk != check.pk)
    row = Participant.objects.get(pk=participant.pk)
    assert (row.status, row.attention_failures) == ("completed", 0)
    assert Judgment.objects.get(item=check).attention_passed is True


def test_the_end_policy_ends_the_session_at_the_failed_check():
    study = make_study(attention_checks=CHECK, attention_fail_policy="end")
    participant = started(study)
    check = check_item(participant)
    recorded = None
    for item in items_of(participant):
        recorded = judgment_record(participant=participant, item=item, answer=answer(accept=True))
        if item.pk == check.pk:
            break
    assert recorded.finished and recorded.created
    assert recorded.judgment.pk == Judgment.objects.get(item=check).pk
    assert recorded.answered_positions == frozenset(
        item.position for item in items_of(participant) if item.position <= check.position)
    row = Participant.objects.get(pk=participant.pk)
    assert (row.status, row.status_note) == ("excluded", "failed an attention check (session ended)")
    batch = Batch.objects.get(pk=participant.batch_id)
    assert (batch.active_count, batch.completed_count) == (0, 0)


def test_revising_a_failed_check_does_not_count_it_twice():
    study = make_study(attention_checks=CHECK, attention_fail_policy="record")
    participant = started(study)
    items = items_of(participant)
    check = check_item(participant)
    for item in items:
        judgment_record(participant=participant, item=item, answer=answer(accept=True))
        if item.pk == check.pk:
            break
    judgment_record(participant=participant, item=check, answer=answer(accept=True))
    assert Participant.objects.get(pk=participant.pk).attention_failures == 1
    judgment_record(participant=participant, item=check, answer=answer(accept=False))
    assert Judgment.objects.get(item=check).attention_passed is True


@pytest.mark.parametrize("status, reason", [
    ("consenting", "Please give your consent first."),
    ("completed", "You have already finished this study."),
    ("timed_out", "Your session timed out, so your place was given to someone else."),
    ("returned", "You returned this study."),
    ("rejected", "Your session was closed by the researchers."),
    ("excluded", "Your session has ended."),
    ("active", "Your session is closed."),
])
def test_closed_reason_in_words(status, reason):
    assert closed_reason(Participant(status=status)) == reason


def test_the_callers_participant_is_refreshed_with_the_noted_activity(study):
    """Guards against the participant object the view holds keeping a stale last_seen_at
    after the answer noted the activity."""
    participant = started(study)
    before = timezone.now()
    judgment_record(participant=participant, item=items_of(participant)[0], answer=answer())
    assert participant.last_seen_at is not None and participant.last_seen_at >= before
    assert participant.last_seen_at == Participant.objects.get(pk=participant.pk).last_seen_at


def test_every_failed_check_is_counted_and_only_the_count_is_written():
    """Guards against the failure count being set to 1 instead of incremented, and against
    the count being saved with the whole participant row (a stale copy would write back
    fields a researcher changed meanwhile)."""
    study = make_study(attention_checks=CHECK + [("Second check: answer No.", False, 4)],
                       attention_fail_policy="record")
    participant = started(study)
    Participant.objects.filter(pk=participant.pk).update(status_note="flagged by the researcher")
    items = items_of(participant)
    for item in items[:-1]:
        judgment_record(participant=participant, item=item, answer=answer(accept=True))
    row = Participant.objects.get(pk=participant.pk)
    assert row.attention_failures == 2 == participant.attention_failures
    assert row.status_note == "flagged by the researcher"
