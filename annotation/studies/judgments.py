"""Recording a participant's answers: validated, idempotent per submission, history kept."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from annotation.models import BatchItem, Judgment, JudgmentRevision, Participant, Study
from annotation.studies.assignment import participant_complete
from annotation.studies.selectors import batch_items


class JudgmentRefused(Exception):
    """The submission cannot be stored; `reason` is shown to the participant."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Answer:
    accept: bool
    confidence: int
    familiarity: int
    shown_at: datetime
    submission_key: uuid.UUID
    response_time_ms: int | None = None


@dataclass(frozen=True)
class Recorded:
    judgment: Judgment
    created: bool  # False when the same submission arrived before (a retry or double click)
    finished: bool  # the participant has now answered every item
    answered_positions: frozenset[int] = frozenset()


class JudgmentOutOfOrder(JudgmentRefused):
    """Items are answered in order: this one comes after `next_position`, still open."""

    def __init__(self, next_position: int) -> None:
        super().__init__(f"Please answer item {next_position} first.")
        self.next_position = next_position


def judgment_record(*, participant: Participant, item: BatchItem, answer: Answer) -> Recorded:
    """Stores `answer` to `item` for `participant`.

    One transaction, holding the participant's row, so that two submissions of one
    participant never interleave. The same submission key twice stores one judgment; a new
    key for an answered item (the participant went back with "Previous") keeps the old
    answer as a `JudgmentRevision`. The last answer completes the session.

    This runs once per answer of every rater, so it keeps to three statements in the usual
    case (bench/raters.py): one update that takes the participant's row lock and notes the
    activity, one read of the participant's judgments so far, one insert.
    """
    for field, value in (("confidence", answer.confidence), ("familiarity", answer.familiarity)):
        if not 1 <= value <= 5:
            raise JudgmentRefused(f"{field} must be between 1 and 5, not {value}")
    now = timezone.now()
    with transaction.atomic():
        _lock_and_touch(participant, now)
        if item.batch_id != participant.batch_id:
            raise JudgmentRefused("This item is not part of your session.")
        earlier = list(Judgment.objects.filter(participant_id=participant.pk)
                       .values_list("pk", "item_id", "position", "submission_key"))
        answered = frozenset(position for _, _, position, _ in earlier)
        existing_pk, existing_key = next(
            ((pk, key) for pk, item_id, _, key in earlier if item_id == item.pk), (None, None))
        if existing_pk is not None and existing_key == answer.submission_key:
            return Recorded(Judgment.objects.get(pk=existing_pk), created=False,
                            finished=participant.status != Participant.Status.ACTIVE,
                            answered_positions=answered)
        if participant.status != Participant.Status.ACTIVE:
            raise JudgmentRefused(closed_reason(participant))
        first_open = next((position for position in sorted(batch_items(participant.batch_id))
                           if position not in answered), None)
        if existing_pk is None and first_open is not None and item.position > first_open:
            raise JudgmentOutOfOrder(first_open)
        attention_passed = None
        if item.attention_check_id is not None:
            attention_passed = answer.accept == item.attention_check.expected_accept
        if existing_pk is None:
            judgment = Judgment.objects.create(
                participant_id=participant.pk, item=item, accept=answer.accept,
                confidence=answer.confidence, familiarity=answer.familiarity,
                position=item.position, shown_at=answer.shown_at, answered_at=now,
                response_time_ms=answer.response_time_ms, attention_passed=attention_passed,
                submission_key=answer.submission_key,
            )
            answered = answered | {item.position}
        else:
            judgment = _revise(Judgment.objects.get(pk=existing_pk), answer, now, attention_passed)
        if attention_passed is False and existing_pk is None:
            participant.attention_failures += 1
            participant.save(update_fields=["attention_failures"])
        finished = len(answered) >= len(batch_items(participant.batch_id))
        policy = None
        if attention_passed is False or finished:
            policy = Study.objects.values_list("attention_fail_policy", flat=True).get(
                pk=participant.study_id)
        if attention_passed is False and policy == Study.AttentionFailPolicy.END:
            participant_complete(participant=participant,
                                 excluded_note="failed an attention check (session ended)")
            return Recorded(judgment, created=True, finished=True, answered_positions=answered)
        if finished:
            excluded = (policy == Study.AttentionFailPolicy.EXCLUDE
                        and participant.attention_failures > 0)
            participant_complete(
                participant=participant,
                excluded_note="failed an attention check" if excluded else "",
            )
        return Recorded(judgment, created=True, finished=finished, answered_positions=answered)


def _lock_and_touch(participant: Participant, now) -> None:
    """Takes the participant's row lock and records their activity, in one statement.

    An UPDATE locks the row on PostgreSQL as SELECT ... FOR NO KEY UPDATE would (SQLite
    serialises writing transactions anyway), and RETURNING gives the row as it is once the
    lock is held, so `participant` is refreshed with what another request may have changed.
    """
    table = Participant._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_seen_at = %s WHERE id = %s "
            "RETURNING status, batch_id, attention_failures, study_id",
            [connection.ops.adapt_datetimefield_value(now), participant.pk],
        )
        row = cursor.fetchone()
    if row is None:
        raise JudgmentRefused("Your session no longer exists.")
    (participant.status, participant.batch_id, participant.attention_failures,
     participant.study_id) = row
    participant.last_seen_at = now


def _revise(existing: Judgment, answer: Answer, now, attention_passed) -> Judgment:
    """Replaces an answer given before, keeping the old one as a revision."""
    JudgmentRevision.objects.create(
        judgment=existing, accept=existing.accept, confidence=existing.confidence,
        familiarity=existing.familiarity, shown_at=existing.shown_at,
        answered_at=existing.answered_at, response_time_ms=existing.response_time_ms,
        submission_key=existing.submission_key,
    )
    for field, value in (("accept", answer.accept), ("confidence", answer.confidence),
                         ("familiarity", answer.familiarity), ("shown_at", answer.shown_at),
                         ("answered_at", now), ("response_time_ms", answer.response_time_ms),
                         ("attention_passed", attention_passed),
                         ("submission_key", answer.submission_key)):
        setattr(existing, field, value)
    existing.revisions += 1
    existing.save()
    return existing


def closed_reason(participant: Participant) -> str:
    """Why a participant can no longer answer, in words for their page."""
    return {
        Participant.Status.CONSENTING: "Please give your consent first.",
        Participant.Status.COMPLETED: "You have already finished this study.",
        Participant.Status.TIMED_OUT: "Your session timed out, so your place was given to someone else.",
        Participant.Status.RETURNED: "You returned this study.",
        Participant.Status.REJECTED: "Your session was closed by the researchers.",
        Participant.Status.EXCLUDED: "Your session has ended.",
    }.get(participant.status, "Your session is closed.")
