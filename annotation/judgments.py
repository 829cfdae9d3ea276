"""Recording a participant's answers: validated, idempotent per submission, history kept."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .assignment import participant_complete
from .models import BatchItem, Judgment, JudgmentRevision, Participant, Study
from .selectors import batch_items


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


def judgment_record(*, participant: Participant, item: BatchItem, answer: Answer) -> Recorded:
    """Stores `answer` to `item` for `participant`.

    One transaction, holding the participant's row, so that two submissions of one
    participant never interleave. The same submission key twice stores one judgment; a new
    key for an answered item (the participant went back with "Previous") keeps the old
    answer as a `JudgmentRevision`. The last answer completes the session.
    """
    for field, value in (("confidence", answer.confidence), ("familiarity", answer.familiarity)):
        if not 1 <= value <= 5:
            raise JudgmentRefused(f"{field} must be between 1 and 5, not {value}")
    now = timezone.now()
    with transaction.atomic():
        participant = Participant.objects.select_for_update(no_key=True, of=("self",)).select_related("study").get(
            pk=participant.pk)
        if item.batch_id != participant.batch_id:
            raise JudgmentRefused("This item is not part of your session.")
        existing = Judgment.objects.filter(participant=participant, item=item).first()
        if existing is not None and existing.submission_key == answer.submission_key:
            answered = frozenset(
                Judgment.objects.filter(participant=participant).values_list("position", flat=True))
            return Recorded(existing, created=False,
                            finished=participant.status != Participant.Status.ACTIVE,
                            answered_positions=answered)
        if participant.status != Participant.Status.ACTIVE:
            raise JudgmentRefused(closed_reason(participant))
        attention_passed = None
        if item.attention_check_id is not None:
            attention_passed = answer.accept == item.attention_check.expected_accept
        if existing is None:
            judgment = Judgment.objects.create(
                participant=participant, item=item, accept=answer.accept,
                confidence=answer.confidence, familiarity=answer.familiarity,
                position=item.position, shown_at=answer.shown_at, answered_at=now,
                response_time_ms=answer.response_time_ms, attention_passed=attention_passed,
                submission_key=answer.submission_key,
            )
        else:
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
            judgment = existing
        participant.last_seen_at = now
        update = ["last_seen_at"]
        if attention_passed is False and existing is None:
            participant.attention_failures += 1
            update.append("attention_failures")
        participant.save(update_fields=update)
        policy = participant.study.attention_fail_policy
        if attention_passed is False and policy == Study.AttentionFailPolicy.END:
            participant_complete(participant=participant,
                                 excluded_note="failed an attention check (session ended)")
            return Recorded(judgment, created=True, finished=True)
        answered = frozenset(
            Judgment.objects.filter(participant=participant).values_list("position", flat=True))
        finished = len(answered) >= len(batch_items(participant.batch_id))
        if finished:
            excluded = (policy == Study.AttentionFailPolicy.EXCLUDE
                        and participant.attention_failures > 0)
            participant_complete(
                participant=participant,
                excluded_note="failed an attention check" if excluded else "",
            )
        return Recorded(judgment, created=True, finished=finished, answered_positions=answered)


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
