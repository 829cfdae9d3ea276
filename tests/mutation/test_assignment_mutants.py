"""Handing out batches and giving slots back (annotation/studies/assignment.py), through
the services: the counters on the batch rows, the statuses and the refusals in words."""
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Batch, Participant, Study
from annotation.studies.assignment import (
    StudyUnavailable,
    participant_complete,
    participant_consent,
    participant_enter,
    participant_mark,
    sessions_reclaim_expired,
)

from .test_judgments_mutants import make_study

pytestmark = pytest.mark.django_db


def counts(study):
    return [(b.active_count, b.completed_count)
            for b in Batch.objects.filter(study=study).order_by("index")]


def consented(study, pid):
    return participant_consent(participant=participant_enter(study=study, external_id=pid))


def test_entry_creates_a_session_with_what_the_platform_sent():
    study = make_study()
    participant = participant_enter(study=study, external_id="P1", source="prolific",
                                    platform_study_id="S1", platform_session_id="X1", mturk_hit_id="H1")
    row = Participant.objects.get(pk=participant.pk)
    assert (row.study_id, row.external_id, row.source) == (study.pk, "P1", "prolific")
    assert (row.platform_study_id, row.platform_session_id, row.mturk_hit_id) == ("S1", "X1", "H1")
    assert row.status == Participant.Status.CONSENTING and row.batch_id is None
    assert len(row.token) == 32  # token_urlsafe(24): 24 random bytes
    other = participant_enter(study=study, external_id="P2")
    assert other.token != row.token and other.source == "generic"
    assert (other.platform_study_id, other.platform_session_id, other.mturk_hit_id) == ("", "", "")


def test_entry_again_resumes_the_same_session_even_once_the_study_closed():
    study = make_study()
    first = participant_enter(study=study, external_id="P1")
    Study.objects.filter(pk=study.pk).update(status=Study.Status.CLOSED)
    study.refresh_from_db()
    assert participant_enter(study=study, external_id="P1").pk == first.pk
    with pytest.raises(StudyUnavailable) as caught:
        participant_enter(study=study, external_id="P2")
    assert caught.value.reason == "This study is closed and is not taking new participants."
    assert str(caught.value) == caught.value.reason
    assert Participant.objects.count() == 1


def test_consent_takes_the_emptiest_batch_then_the_lowest_index():
    """Guards against the batch order (fill, then index) or the slot counter changing:
    raters must spread over the batches, one slot each."""
    study = make_study()
    n_batches = Batch.objects.filter(study=study).count()
    before = timezone.now()
    first = consented(study, "P1")
    assert first.status == Participant.Status.ACTIVE
    assert before <= first.consented_at <= timezone.now() and first.last_seen_at == first.consented_at
    row = Participant.objects.get(pk=first.pk)
    assert (row.batch_id, row.status, row.consented_at) == (first.batch_id, "active", first.consented_at)
    indexes = [Batch.objects.get(pk=consented(study, f"Q{i}").batch_id).index for i in range(n_batches - 1)]
    assert [Batch.objects.get(pk=first.batch_id).index] + indexes == sorted(
        Batch.objects.filter(study=study).values_list("index", flat=True))
    assert counts(study) == [(1, 0)] * n_batches
    # A completed session counts toward the fill as an active one does: with batch 0's
    # rater completed and the last batch's rater returned, the last batch is the emptiest.
    participant_complete(participant=Participant.objects.get(pk=first.pk))
    last = Participant.objects.get(external_id=f"Q{n_batches - 2}")
    participant_mark(participant=last, status="returned")
    assert Batch.objects.get(pk=consented(study, "R1").batch_id).pk == last.batch_id


def test_consent_twice_keeps_the_batch_and_the_count():
    study = make_study()
    participant = consented(study, "P1")
    again = participant_consent(participant=participant)
    assert again.batch_id == participant.batch_id
    assert sum(active for active, _ in counts(study)) == 1


def test_a_full_study_says_so_and_a_paused_one_says_its_status():
    study = make_study()
    quota = Batch.objects.filter(study=study).first().quota
    n_slots = quota * Batch.objects.filter(study=study).count()
    for i in range(n_slots):
        consented(study, f"P{i}")
    waiting = participant_enter(study=study, external_id="late")
    with pytest.raises(StudyUnavailable) as caught:
        participant_consent(participant=waiting)
    assert caught.value.reason == "This study is full: every batch has all the raters it needs."
    assert Participant.objects.get(pk=waiting.pk).batch_id is None
    Study.objects.filter(pk=study.pk).update(status=Study.Status.PAUSED)
    with pytest.raises(StudyUnavailable) as caught:
        participant_consent(participant=waiting)
    assert caught.value.reason == "This study is paused and is not taking new participants."


def test_consent_reclaims_timed_out_slots_first():
    """Guards against a full study staying full while idle sessions hold its slots."""
    study = make_study()
    quota = Batch.objects.filter(study=study).first().quota
    n_slots = quota * Batch.objects.filter(study=study).count()
    for i in range(n_slots):
        consented(study, f"P{i}")
    Participant.objects.filter(external_id="P0").update(last_seen_at=timezone.now() - timedelta(hours=2))
    late = consented(study, "late")
    assert late.batch_id == Participant.objects.get(external_id="P0").batch_id
    assert Participant.objects.get(external_id="P0").status == "timed_out"


def test_completion_moves_the_slot_and_exclusion_gives_it_back():
    study = make_study()
    done = consented(study, "P1")
    before = timezone.now()
    participant_complete(participant=done)
    row = Participant.objects.get(pk=done.pk)
    assert (row.status, row.status_note, row.status_changed_at) == ("completed", "", None)
    assert before <= row.completed_at <= timezone.now()
    excluded = consented(study, "P2")
    participant_complete(participant=excluded, excluded_note="failed an attention check")
    row = Participant.objects.get(pk=excluded.pk)
    assert (row.status, row.status_note) == ("excluded", "failed an attention check")
    assert row.status_changed_at is not None and row.completed_at == row.status_changed_at
    by_batch = {b.pk: (b.active_count, b.completed_count) for b in Batch.objects.filter(study=study)}
    assert by_batch[done.batch_id] == (0, 1)
    assert by_batch[excluded.batch_id] == (0, 0)


@pytest.mark.parametrize("status", ["returned", "timed_out", "rejected", "excluded"])
def test_marking_an_active_participant_reopens_their_slot(status):
    study = make_study()
    participant = consented(study, "P1")
    before = timezone.now()
    marked = participant_mark(participant=participant, status=status, note="by hand")
    row = Participant.objects.get(pk=participant.pk)
    assert marked.status == row.status == status and row.status_note == "by hand"
    assert before <= row.status_changed_at <= timezone.now()
    assert counts(study) == [(0, 0)] * len(counts(study))
    # Marking again changes nothing and gives back nothing twice.
    participant_mark(participant=participant, status=status, note="again")
    assert Participant.objects.get(pk=participant.pk).status_note == "by hand"
    assert counts(study) == [(0, 0)] * len(counts(study))


def test_marking_a_completed_participant_reopens_a_completed_slot():
    study = make_study()
    participant = consented(study, "P1")
    participant_complete(participant=participant)
    participant_mark(participant=participant, status="rejected")
    assert counts(study) == [(0, 0)] * len(counts(study))


def test_marking_a_participant_who_never_consented_touches_no_batch():
    study = make_study()
    holder = consented(study, "P1")
    waiting = participant_enter(study=study, external_id="P2")
    participant_mark(participant=waiting, status="returned")
    assert sum(active for active, _ in counts(study)) == 1 and holder.status == "active"


def test_an_unmarkable_status_is_refused_by_name():
    study = make_study()
    participant = consented(study, "P1")
    with pytest.raises(ValueError) as caught:
        participant_mark(participant=participant, status="completed")
    assert str(caught.value) == ("cannot mark a participant 'completed'; accepted: "
                                 "returned, timed_out, rejected, excluded")


def test_idle_sessions_time_out_after_the_studys_limit_and_no_sooner():
    """Guards against the cutoff (strictly older than the limit), the note, the count or the
    slot release changing, and against one study's limit applying to another's sessions."""
    study = make_study(time_limit_minutes=30)
    other = make_study(name="other", time_limit_minutes=90)
    now = timezone.now()
    idle = consented(study, "idle")
    edge = consented(study, "edge")
    fresh = consented(study, "fresh")
    elsewhere = consented(other, "elsewhere")
    Participant.objects.filter(pk=idle.pk).update(last_seen_at=now - timedelta(minutes=31))
    Participant.objects.filter(pk=edge.pk).update(last_seen_at=now - timedelta(minutes=30))
    Participant.objects.filter(pk=fresh.pk).update(last_seen_at=now - timedelta(minutes=29))
    Participant.objects.filter(pk=elsewhere.pk).update(last_seen_at=now - timedelta(minutes=60))
    assert sessions_reclaim_expired(study=other, now=now) == 0
    assert sessions_reclaim_expired(study=study, now=now) == 1
    row = Participant.objects.get(pk=idle.pk)
    assert (row.status, row.status_note, row.status_changed_at) == (
        "timed_out", "idle for more than 30 minutes", now)
    assert {p.external_id: p.status for p in Participant.objects.all()} == {
        "idle": "timed_out", "edge": "active", "fresh": "active", "elsewhere": "active"}
    assert sum(active for active, _ in counts(study)) == 2
    assert sessions_reclaim_expired(study=study, now=now) == 0
    assert sum(active for active, _ in counts(study)) == 2


def test_without_a_study_every_study_with_active_sessions_is_swept():
    first = make_study(time_limit_minutes=10)
    second = make_study(name="second", time_limit_minutes=20)
    now = timezone.now()
    a, b, c = consented(first, "a"), consented(second, "b"), consented(second, "c")
    Participant.objects.filter(pk=a.pk).update(last_seen_at=now - timedelta(minutes=11))
    Participant.objects.filter(pk=b.pk).update(last_seen_at=now - timedelta(minutes=21))
    Participant.objects.filter(pk=c.pk).update(last_seen_at=now - timedelta(minutes=15))
    assert sessions_reclaim_expired(now=now) == 2
    assert {p.external_id: p.status for p in Participant.objects.all()} == {
        "a": "timed_out", "b": "timed_out", "c": "active"}
    Participant.objects.filter(pk=c.pk).update(last_seen_at=timezone.now() - timedelta(minutes=21))
    assert sessions_reclaim_expired() == 1


def test_marking_without_a_note_leaves_the_note_empty():
    study = make_study()
    participant = consented(study, "P1")
    participant_mark(participant=participant, status="returned")
    assert Participant.objects.get(pk=participant.pk).status_note == ""


def test_completion_writes_only_its_own_fields():
    """Guards against completion saving the whole participant row: a copy read before the
    rater's last activity was noted would put the old last_seen_at back."""
    study = make_study()
    participant = consented(study, "P1")
    later = timezone.now() + timedelta(minutes=3)
    Participant.objects.filter(pk=participant.pk).update(last_seen_at=later, attention_failures=2)
    participant_complete(participant=participant)
    row = Participant.objects.get(pk=participant.pk)
    assert (row.status, row.last_seen_at, row.attention_failures) == ("completed", later, 2)


def test_ties_go_to_the_lowest_batch_index_not_the_oldest_row():
    """Guards against the tie-break on the batch index being dropped: batches equally full
    must fill in index order, whatever order their rows were stored in."""
    study = make_study()
    batches = list(Batch.objects.filter(study=study).order_by("pk"))
    n = len(batches)
    for offset, batch in enumerate(batches):  # reverse the indexes, through free values
        Batch.objects.filter(pk=batch.pk).update(index=1000 + offset)
    for offset, batch in enumerate(batches):
        Batch.objects.filter(pk=batch.pk).update(index=n - 1 - offset)
    first = consented(study, "P1")
    assert first.batch_id == batches[-1].pk
    assert Batch.objects.get(pk=first.batch_id).index == 0


def test_consent_times_out_only_its_own_studys_idle_sessions():
    """Guards against the sweep at consent reaching other studies (their own time limits and
    reclaim runs decide for them)."""
    study = make_study(time_limit_minutes=30)
    other = make_study(name="other", time_limit_minutes=30)
    idle_elsewhere = consented(other, "idle")
    Participant.objects.filter(pk=idle_elsewhere.pk).update(last_seen_at=timezone.now() - timedelta(hours=2))
    consented(study, "P1")
    assert Participant.objects.get(pk=idle_elsewhere.pk).status == "active"


def test_the_same_platform_id_in_two_studies_gets_two_sessions():
    """Guards against entry finding a session by the platform id alone: a Prolific id that
    took part in another study would resume that study's session here."""
    first, second = make_study(), make_study(name="second")
    one = participant_enter(study=first, external_id="P1")
    two = participant_enter(study=second, external_id="P1")
    assert one.pk != two.pk and two.study_id == second.pk
