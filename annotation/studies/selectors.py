"""Reads of studies that pages, the API, commands and tests share: a batch's items, the studies
a researcher may see, the right answers a truthful bot gives."""
from __future__ import annotations

from functools import lru_cache

from django.db.models import Count, Prefetch, Q, QuerySet

from annotation.models import (
    AttentionCheck,
    BatchItem,
    FramedClaim,
    Judgment,
    Participant,
    Study,
    TruthLabel,
)


@lru_cache(maxsize=4096)
def batch_items(batch_id: int) -> dict[int, BatchItem]:
    """A batch's items by position, with their texts.

    A batch's items never change once its study exists and ids are never reused, so each
    process keeps them rather than asking the database on every participant page.
    """
    items = BatchItem.objects.filter(batch_id=batch_id).select_related("framed_claim", "attention_check")
    return {item.position: item for item in items}


def studies_visible_to(user) -> QuerySet[Study]:
    """The studies `user` may see and manage: their own and those shared with them.

    Superusers see every study. Pages, the API and the report all filter through this, so
    that a researcher never sees another researcher's study.
    """
    studies = Study.objects.select_related("dataset", "owner")
    if not user.is_authenticated:
        return studies.none()
    if user.is_superuser:
        return studies
    # A subquery, not a join on collaborators: a join would repeat rows and inflate any
    # count annotated on the result.
    shared = Study.collaborators.through.objects.filter(user=user).values("study_id")
    return studies.filter(Q(owner=user) | Q(pk__in=shared))


def studies_with_batch_counts_visible_to(user) -> QuerySet[Study]:
    """The studies `user` may see, newest first, with their batch counts and attention checks."""
    return studies_visible_to(user).annotate(batch_count=Count("batches")).prefetch_related(
        Prefetch("attention_checks", queryset=AttentionCheck.objects.order_by("position"))
    ).order_by("-created", "-id")


def participants_with_answer_counts(study):
    return study.participants.select_related("batch").annotate(answered=Count("judgments"))


TRUTH_WORDS = {"SUPPORTS": TruthLabel.SUPPORTS, "true": TruthLabel.SUPPORTS,
               "REFUTES": TruthLabel.REFUTES, "false": TruthLabel.REFUTES}


def filter_judgments(judgments, filters: dict):
    """Applies `JudgmentFilters` as the export does (annotation.dataio.judgment_table)."""
    if not filters["include_attention_checks"]:
        judgments = judgments.filter(item__attention_check__isnull=True)
    if "framing" in filters:
        judgments = judgments.filter(item__framed_claim__framing__in=filters["framing"])
    if "truth" in filters:
        judgments = judgments.filter(item__framed_claim__base_claim__true_label__in=[
            TRUTH_WORDS[word] for word in filters["truth"]])
    if "participant_status" in filters:
        judgments = judgments.filter(participant__status__in=filters["participant_status"])
    if not filters["include_excluded"]:
        judgments = judgments.exclude(participant__status__in=Participant.EXCLUDED_FROM_ANALYSIS)
    return judgments


def judgments_visible_to(user) -> QuerySet[Judgment]:
    """The current judgments of the studies `user` may see, with what the tables show."""
    return Judgment.objects.filter(
        participant__study__in=studies_visible_to(user).values("pk")
    ).select_related(
        "participant", "item__batch", "item__framed_claim__base_claim", "item__attention_check",
    )


def study_truth_table(study: Study) -> dict[str, bool]:
    """Each text a participant of `study` can be shown, mapped to its right answer (True
    for a true claim, an attention check's expected answer): TruthfulPolicy's table."""
    truth = {
        text: label == TruthLabel.SUPPORTS
        for text, label in FramedClaim.objects.filter(batch_items__batch__study=study)
        .values_list("text", "base_claim__true_label").distinct()
    }
    truth.update(AttentionCheck.objects.filter(study=study).values_list("text", "expected_accept"))
    return truth
