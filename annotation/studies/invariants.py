"""Checks of a study's stored state against the promises of assignment and recording.

`study_invariant_violations(study)` only reads; it returns one readable sentence per
violation and an empty list for a sound study. Tests, the rater benchmark and a
researcher page can all call it, at any moment (sessions in progress are fine).
"""
from __future__ import annotations

from collections import defaultdict

from django.db.models import Count, F, Q

from annotation.models import Batch, BatchItem, Judgment, Participant, Study

# How many participants or items a sentence names before it says "and N more".
NAMED = 5


def _names(values, limit: int = NAMED) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def study_invariant_violations(study: Study) -> list[str]:
    """Every broken invariant of `study`, as sentences:

    - no batch with more completed sessions than its quota, nor more sessions in progress
      and completed together than its quota;
    - each batch's counters equal its actual number of active and of completed participants;
    - no participant shown (through their batch's items) or answering two framings of one
      base claim;
    - no participant with two judgments of one item;
    - every completed participant has a judgment for every item of their batch;
    - no judgment of an item outside the participant's batch.
    """
    violations: list[str] = []
    batches = list(
        Batch.objects.filter(study=study).order_by("index").annotate(
            actual_active=Count("participants", distinct=True,
                                filter=Q(participants__status=Participant.Status.ACTIVE)),
            actual_completed=Count("participants", distinct=True,
                                   filter=Q(participants__status=Participant.Status.COMPLETED)),
        )
    )
    label = {batch.pk: f"batch {batch.index + 1}" for batch in batches}
    for batch in batches:
        name = label[batch.pk]
        if batch.actual_completed > batch.quota:
            violations.append(f"{name} has {batch.actual_completed} completed sessions, more than "
                              f"its quota of {batch.quota}.")
        elif batch.actual_active + batch.actual_completed > batch.quota:
            violations.append(f"{name} has {batch.actual_active} sessions in progress and "
                              f"{batch.actual_completed} completed, more than its quota of "
                              f"{batch.quota}.")
        if batch.active_count != batch.actual_active:
            violations.append(f"{name} counts {batch.active_count} active sessions but has "
                              f"{batch.actual_active} active participants.")
        if batch.completed_count != batch.actual_completed:
            violations.append(f"{name} counts {batch.completed_count} completed sessions but has "
                              f"{batch.actual_completed} completed participants.")

    # Two framings of one base claim in a batch: everyone assigned to it sees both.
    repeated = (BatchItem.objects.filter(batch__study=study, framed_claim__isnull=False)
                .values("batch_id", "framed_claim__base_claim__external_id")
                .annotate(n=Count("pk")).filter(n__gt=1))
    for row in repeated:
        assigned = list(Participant.objects.filter(batch_id=row["batch_id"])
                        .order_by("pk").values_list("external_id", flat=True))
        who = f"participants {_names(assigned)} were" if assigned else "no participant was yet"
        violations.append(f"{label.get(row['batch_id'], row['batch_id'])} holds {row['n']} framings "
                          f"of base claim {row['framed_claim__base_claim__external_id']}: "
                          f"{who} shown more than one.")
    # ... and, whatever the batches hold, what participants actually answered.
    answered_twice = (Judgment.objects.filter(participant__study=study, item__framed_claim__isnull=False)
                      .values("participant__external_id", "item__framed_claim__base_claim__external_id")
                      .annotate(items=Count("item", distinct=True)).filter(items__gt=1)
                      .order_by("participant__external_id"))
    for row in answered_twice:
        violations.append(f"participant {row['participant__external_id']} judged {row['items']} "
                          f"framings of base claim {row['item__framed_claim__base_claim__external_id']}.")

    duplicates = (Judgment.objects.filter(participant__study=study)
                  .values("participant__external_id", "item__position", "item__batch__index")
                  .annotate(n=Count("pk")).filter(n__gt=1).order_by("participant__external_id"))
    for row in duplicates:
        violations.append(f"participant {row['participant__external_id']} has {row['n']} judgments "
                          f"of item {row['item__position']} of batch {row['item__batch__index'] + 1}.")

    outside = (Judgment.objects.filter(participant__study=study)
               .filter(Q(participant__batch__isnull=True) | ~Q(item__batch_id=F("participant__batch_id")))
               .values("participant__external_id", "item__position", "item__batch__index")
               .order_by("participant__external_id", "item__position"))
    outside_by_participant: dict[str, list[str]] = defaultdict(list)
    for row in outside:
        outside_by_participant[row["participant__external_id"]].append(
            f"item {row['item__position']} of batch {row['item__batch__index'] + 1}")
    for external_id, items in outside_by_participant.items():
        violations.append(f"participant {external_id} has judgments of items outside their batch: "
                          f"{_names(items)}.")

    positions: dict[int, set[int]] = defaultdict(set)
    for batch_id, position in BatchItem.objects.filter(batch__study=study).values_list("batch_id", "position"):
        positions[batch_id].add(position)
    completed = (Participant.objects.filter(study=study, status=Participant.Status.COMPLETED)
                 .annotate(answered=Count("judgments", filter=Q(judgments__item__batch_id=F("batch_id"))))
                 .order_by("pk"))
    for participant in completed:
        expected = positions.get(participant.batch_id, set())
        if participant.answered == len(expected):
            continue
        answered = set(Judgment.objects.filter(participant=participant, item__batch_id=participant.batch_id)
                       .values_list("item__position", flat=True))
        missing = sorted(expected - answered)
        violations.append(f"participant {participant.external_id} completed "
                          f"{label.get(participant.batch_id, 'their batch')} but has no judgment "
                          f"of item(s) {_names(missing, 10)} ({len(answered)} of {len(expected)} answered).")
    return violations
