"""Creating a study: its design dealt into batches, attention checks placed, all in one transaction."""
from __future__ import annotations

import secrets
from collections import defaultdict
from typing import Sequence

from django.db import transaction

from annotation.models import (
    AttentionCheck,
    BaseClaim,
    Batch,
    BatchItem,
    Dataset,
    FramedClaim,
    Study,
)
from annotation.studies.design import (
    CandidateClaim,
    DesignError,
    design_study,
    insert_attention_checks,
)
from annotation.validators import completion_url_problem
from core.lookup import lookup_by_id_or_name
from core.vocabulary import FRAMINGS


class StudyRuleError(ValueError):
    """A change the study rules refuse, whichever page, API call or command asked for it:
    `field` is what was wrong (for a form or a 400 body), the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _check_completion_url(url: str) -> None:
    problem = completion_url_problem(url)
    if problem:
        raise StudyRuleError("completion_url", problem)


def study_candidates(*, dataset: Dataset, split: str = "") -> list[CandidateClaim]:
    """Every base claim of `dataset` (of `split`, if given) with the framings it has."""
    claims = FramedClaim.objects.filter(base_claim__dataset=dataset)
    if split:
        claims = claims.filter(base_claim__split=split)
    framed: dict[int, dict[str, int]] = defaultdict(dict)
    labels: dict[int, str] = {}
    rows = claims.values_list("base_claim_id", "base_claim__true_label", "framing", "pk")
    for base_id, label, framing, framed_id in rows.iterator(chunk_size=20_000):
        framed[base_id][framing] = framed_id
        labels[base_id] = label
    return [CandidateClaim(base_claim_id=base_id, true_label=labels[base_id],
                           framed_claim_ids=framings) for base_id, framings in framed.items()]


def study_create(
    *,
    dataset: Dataset,
    name: str,
    batch_size: int,
    raters_per_batch: int,
    seed: int,
    base_claims: int | None = None,
    base_claim_external_ids: Sequence[str] | None = None,
    framings: Sequence[str] = FRAMINGS,
    split: str = "",
    owner=None,
    status: str = Study.Status.DRAFT,
    completion_code: str | None = None,
    completion_url: str = "",
    time_limit_minutes: int = 60,
    attention_checks: Sequence[tuple[str, bool, int]] = (),
    attention_fail_policy: str = Study.AttentionFailPolicy.RECORD,
    **texts,
) -> Study:
    """Designs a study and stores it with its batches and items.

    `attention_checks` are (text, expected_accept, position) triples, placed at the same
    1-based position in every batch. Raises `DesignError` for an infeasible design.
    """
    _check_completion_url(completion_url)
    if status not in (Study.Status.DRAFT, Study.Status.OPEN):
        raise StudyRuleError("status", f"a new study is draft or open, not '{status}'")
    base_claim_ids = None
    if base_claim_external_ids:
        found = dict(BaseClaim.objects.filter(dataset=dataset, external_id__in=base_claim_external_ids)
                     .values_list("external_id", "pk"))
        missing = [external_id for external_id in base_claim_external_ids if external_id not in found]
        if missing:
            shown = ", ".join(missing[:12]) + (f" and {len(missing) - 12} more" if len(missing) > 12 else "")
            raise DesignError(f"dataset '{dataset.name}' has no base claim(s) {shown}",
                              "give the external ids of base claims in this dataset (as in its "
                              "claim file's claim_id before the ':'), or base_claims for a random draw")
        base_claim_ids = [found[external_id] for external_id in base_claim_external_ids]
    design = design_study(
        candidates=study_candidates(dataset=dataset, split=split),
        framings=list(framings),
        base_claims=base_claims,
        batch_size=batch_size,
        seed=seed,
        base_claim_ids=base_claim_ids,
    )
    with transaction.atomic():
        study = Study.objects.create(
            dataset=dataset,
            name=name,
            owner=owner,
            status=status,
            base_claim_count=len(design.base_claim_ids),
            base_claim_ids=list(base_claim_external_ids or []),
            framings=list(design.framings),
            split=split,
            batch_size=batch_size,
            raters_per_batch=raters_per_batch,
            seed=seed,
            completion_code=completion_code or f"FL{secrets.token_hex(4).upper()}",
            completion_url=completion_url,
            time_limit_minutes=time_limit_minutes,
            attention_fail_policy=attention_fail_policy,
            **texts,
        )
        checks = [AttentionCheck.objects.create(study=study, text=text, expected_accept=expected,
                                                position=position)
                  for text, expected, position in attention_checks]
        items = []
        for index, batch_items in enumerate(design.batches):
            batch = Batch.objects.create(study=study, index=index, quota=raters_per_batch)
            sequence = insert_attention_checks(list(batch_items), checks,
                                               [check.position for check in checks])
            for position, entry in enumerate(sequence, start=1):
                if isinstance(entry, AttentionCheck):
                    items.append(BatchItem(batch=batch, position=position, attention_check=entry))
                else:
                    items.append(BatchItem(batch=batch, position=position,
                                           framed_claim_id=entry.framed_claim_id))
        BatchItem.objects.bulk_create(items, batch_size=2_000)
    return study


# Which statuses a study may move to each status from; the same status again is a no-op.
# Draft is for a study nobody has entered yet (see `study_set_status`).
STATUS_ALLOWED_FROM = {
    Study.Status.OPEN: (Study.Status.DRAFT, Study.Status.PAUSED, Study.Status.CLOSED),
    Study.Status.PAUSED: (Study.Status.OPEN,),
    Study.Status.CLOSED: (Study.Status.DRAFT, Study.Status.OPEN, Study.Status.PAUSED),
    Study.Status.DRAFT: (Study.Status.OPEN, Study.Status.PAUSED, Study.Status.CLOSED),
}


def study_status_problem(study: Study, status: str) -> str | None:
    """Why `study` cannot move to `status` now, or None when it can. The one rule for the
    study page, the admin, the API and the commands."""
    if status not in Study.Status.values:
        return f"unknown study status '{status}'; accepted: {', '.join(Study.Status.values)}"
    if status == study.status:
        return None
    allowed_from = STATUS_ALLOWED_FROM[status]
    if study.status not in allowed_from:
        return (f"a {study.status} study cannot be {status}; this needs a study that is "
                f"{' or '.join(allowed_from)}")
    if status == Study.Status.DRAFT and study.participants.exists():
        return (f"a {study.status} study cannot go back to draft once participants have "
                f"entered it; pause or close it instead")
    return None


def study_set_status(*, study: Study, status: str) -> Study:
    """Moves `study` to `status` if the rule allows it; raises `StudyRuleError` if not.

    The check and the change happen under the study's row lock, so two changes at once (or a
    participant entering a draft being reopened) are decided one after the other."""
    with transaction.atomic():
        locked = Study.objects.select_for_update().get(pk=study.pk)
        problem = study_status_problem(locked, status)
        if problem:
            raise StudyRuleError("status", problem)
        if locked.status != status:
            Study.objects.filter(pk=study.pk).update(status=status)
    study.status = status
    return study


def study_update(*, study: Study, changes: dict) -> Study:
    """Saves the editable fields in `changes`, already validated (the API validates them with
    `StudyUpdateSerializer`: the design never changes, participant texts only before anyone
    enters)."""
    if "completion_url" in changes:
        _check_completion_url(changes["completion_url"])
    if "status" in changes:
        raise StudyRuleError("status", "a study's status changes with study_set_status")
    with transaction.atomic():
        for field, value in changes.items():
            setattr(study, field, value)
        study.save(update_fields=list(changes))
    return study


def study_lookup(reference: str | int) -> Study:
    """A study by its name or its id, as every command accepts it, by core.lookup's rule
    (an exact name wins; `#3` forces the id); Study.DoesNotExist lists the known names."""
    return lookup_by_id_or_name(Study.objects, reference, kind="study")
