"""Handing out batches to participants, safely under concurrency, and giving slots back.

A batch's slots are `quota`; a participant holds one from consent until they finish (it
then counts as completed) or until their session times out or is marked returned,
rejected or excluded (it is then given back). The counters live on the batch row, so the
choice of batch reads one row per batch and claims it with a row lock on PostgreSQL
(`select_for_update(skip_locked=True)`: two participants entering at once take different
batches instead of queueing) and with a compare-and-set update on SQLite, where row locks
do not exist. The database's check constraint keeps completed sessions within the quota.

Row locks are FOR NO KEY UPDATE, and only of the row meant: a plain FOR UPDATE would also
block every foreign-key check against that row (a participant joining the batch, a
judgment of the participant) until the locking transaction ends.
"""
from __future__ import annotations

import secrets
from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from annotation.models import Batch, Participant, Study
from annotation.studies.participant_ids import (
    BadEntryLink,
    EntryProof,
    claim_entry_slot,
    generic_id_problem,
    may_resume,
)


class StudyUnavailable(Exception):
    """The study does not accept this participant now; `reason` says why, for the page."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResumeRefused(Exception):
    """A session with this participant id exists, and the entry did not show it is theirs
    (annotation.studies.participant_ids.may_resume)."""


def participant_enter(
    *,
    study: Study,
    external_id: str,
    source: str = Participant.Source.GENERIC,
    platform_study_id: str = "",
    platform_session_id: str = "",
    mturk_hit_id: str = "",
    proof: EntryProof | None = None,
    entry_address: str | None = None,
) -> Participant:
    """The participant's session in `study`, created on first entry and resumed after.

    With `proof` (what the entry pages pass), an existing session is resumed only when the
    proof matches it, else `ResumeRefused`; and with `entry_address`, a new session counts
    against that address's entries (`TooManyEntries` when they are spent). Without them (the
    platform's own code and tests), the id alone resumes. Ids must be safe
    (`generic_id_problem`), else `BadEntryLink`. The unique (study, external id) constraint
    makes two simultaneous first entries of the same person end with one session.
    """
    existing = Participant.objects.filter(study=study, external_id=external_id).first()
    if existing is not None:
        return _resumed(existing, proof)
    if not study.accepts_participants:
        raise StudyUnavailable(f"This study is {study.status} and is not taking new participants.")
    problem = generic_id_problem(external_id)
    if problem is not None:
        raise BadEntryLink("participant id", problem, source)
    if entry_address is not None:
        claim_entry_slot(study.pk, entry_address)
    try:
        with transaction.atomic():
            return Participant.objects.create(
                study=study,
                external_id=external_id,
                source=source,
                platform_study_id=platform_study_id,
                platform_session_id=platform_session_id,
                mturk_hit_id=mturk_hit_id,
                token=secrets.token_urlsafe(24),
            )
    except IntegrityError:
        return _resumed(Participant.objects.get(study=study, external_id=external_id), proof)


def _resumed(participant: Participant, proof: EntryProof | None) -> Participant:
    if proof is not None and not may_resume(participant, proof):
        raise ResumeRefused()
    return participant


def participant_consent(*, participant: Participant) -> Participant:
    """Records consent and assigns the open batch with the fewest completed plus active
    sessions. Raises `StudyUnavailable` when the study is closed, paused or full."""
    with transaction.atomic():
        participant = Participant.objects.select_for_update(no_key=True).get(pk=participant.pk)
        if participant.batch_id is not None:
            return participant  # a double click, or a second tab
        study = participant.study
        if not study.accepts_participants:
            raise StudyUnavailable(f"This study is {study.status} and is not taking new participants.")
        sessions_reclaim_expired(study=study)
        batch = _claim_batch_slot(study)
        if batch is None:
            raise StudyUnavailable("This study is full: every batch has all the raters it needs.")
        now = timezone.now()
        participant.batch = batch
        participant.status = Participant.Status.ACTIVE
        participant.consented_at = now
        participant.last_seen_at = now
        participant.save(update_fields=["batch", "status", "consented_at", "last_seen_at"])
        return participant


def _claim_batch_slot(study: Study) -> Batch | None:
    open_batches = (
        Batch.objects.filter(study=study)
        .annotate(fill=F("active_count") + F("completed_count"))
        .filter(fill__lt=F("quota"))
        .order_by("fill", "index")
    )
    if connection.features.has_select_for_update_skip_locked:
        # PostgreSQL only: left out of mutation testing, which runs on SQLite (docs/testing.md);
        # tests/integration/test_concurrency.py exercises it on PostgreSQL.
        # pragma: no mutate start
        batch = open_batches.select_for_update(skip_locked=True, no_key=True, of=("self",)).first()
        if batch is None:
            # Every batch with room may be locked by other consents in flight, and some of
            # those may still leave a slot: wait for the locks before saying "full".
            batch = open_batches.select_for_update(no_key=True, of=("self",)).first()
        if batch is not None:
            Batch.objects.filter(pk=batch.pk).update(active_count=F("active_count") + 1)
        return batch
        # pragma: no mutate end
    for _ in range(20):
        candidates = list(open_batches[:8])
        if not candidates:
            return None
        for batch in candidates:
            claimed = Batch.objects.filter(
                pk=batch.pk, active_count=batch.active_count, completed_count=batch.completed_count
            ).update(active_count=F("active_count") + 1)
            if claimed:
                return batch
    return None


def _release_slot(participant: Participant) -> None:
    """Gives back the slot a participant held (active) or filled (completed)."""
    if participant.status == Participant.Status.ACTIVE:
        Batch.objects.filter(pk=participant.batch_id).update(active_count=F("active_count") - 1)
    elif participant.status == Participant.Status.COMPLETED:
        Batch.objects.filter(pk=participant.batch_id).update(completed_count=F("completed_count") - 1)


def participant_complete(*, participant: Participant, excluded_note: str = "") -> None:
    """Moves an active participant's slot from active to completed; call inside a transaction
    that holds the participant's row. With `excluded_note` the participant finishes but is
    excluded (their slot reopens for another rater)."""
    now = timezone.now()
    if excluded_note:
        _release_slot(participant)
        participant.status = Participant.Status.EXCLUDED
        participant.status_note = excluded_note
        participant.status_changed_at = now
    else:
        Batch.objects.filter(pk=participant.batch_id).update(
            active_count=F("active_count") - 1, completed_count=F("completed_count") + 1
        )
        participant.status = Participant.Status.COMPLETED
    participant.completed_at = now
    participant.save(update_fields=["status", "status_note", "status_changed_at", "completed_at"])


MARKABLE = (Participant.Status.RETURNED, Participant.Status.TIMED_OUT,
            Participant.Status.REJECTED, Participant.Status.EXCLUDED)


def participant_mark(*, participant: Participant, status: str, note: str = "") -> Participant:
    """Marks a participant returned, timed out, rejected or excluded: their slot reopens and
    their judgments leave the analysis (they are kept)."""
    if status not in MARKABLE:
        raise ValueError(f"cannot mark a participant '{status}'; accepted: {', '.join(MARKABLE)}")
    with transaction.atomic():
        participant = Participant.objects.select_for_update(no_key=True).get(pk=participant.pk)
        if participant.status == status:
            return participant
        _release_slot(participant)
        participant.status = status
        participant.status_note = note
        participant.status_changed_at = timezone.now()
        participant.save(update_fields=["status", "status_note", "status_changed_at"])
        return participant


def sessions_reclaim_expired(*, study: Study | None = None, now=None) -> int:
    """Times out active sessions idle longer than their study's time limit; returns how many.

    Each session is moved with a conditional update, so a participant who answers at the
    same moment either keeps the session (their answer updated last_seen_at first) or
    finds it timed out; never both.
    """
    now = now or timezone.now()
    studies = [study] if study is not None else Study.objects.filter(
        participants__status=Participant.Status.ACTIVE).distinct()
    reclaimed = 0
    for each in studies:
        cutoff = now - timedelta(minutes=each.time_limit_minutes)
        stale = Participant.objects.filter(study=each, status=Participant.Status.ACTIVE,
                                           last_seen_at__lt=cutoff).values_list("pk", "batch_id")
        for pk, batch_id in list(stale):
            with transaction.atomic():
                moved = Participant.objects.filter(
                    pk=pk, status=Participant.Status.ACTIVE, last_seen_at__lt=cutoff
                ).update(status=Participant.Status.TIMED_OUT, status_changed_at=now,
                         status_note=f"idle for more than {each.time_limit_minutes} minutes")
                if moved:
                    Batch.objects.filter(pk=batch_id).update(active_count=F("active_count") - 1)
                    reclaimed += moved
    return reclaimed
