"""Reads of datasets and claims that pages, commands and tests share."""
from __future__ import annotations

from pathlib import PurePosixPath

from celery.result import AsyncResult
from django.db.models import Count, Q, QuerySet

from annotation.models import (
    BaseClaim,
    ClaimImport,
    Dataset,
    FramedClaim,
    Framing,
    Split,
    TruthLabel,
)


def dataset_lookup(name: str) -> Dataset:
    """The dataset called `name`; the error lists the datasets there are."""
    try:
        return Dataset.objects.get(name=name)
    except Dataset.DoesNotExist:
        known = ", ".join(Dataset.objects.values_list("name", flat=True)) or "none yet"
        raise Dataset.DoesNotExist(f"no dataset named '{name}' (datasets: {known})") from None


def dataset_list_with_counts() -> QuerySet[Dataset]:
    return Dataset.objects.annotate(
        base_claim_count=Count("base_claims", distinct=True),
    ).order_by("name")


def dataset_composition(*, dataset: Dataset) -> dict:
    """Counts a researcher checks first: base claims by split and truth, rows by framing."""
    by_split = {
        (row["split"], row["true_label"]): row["n"]
        for row in BaseClaim.objects.filter(dataset=dataset)
        .values("split", "true_label").annotate(n=Count("id"))
    }
    by_framing = {
        row["framing"]: row["n"]
        for row in FramedClaim.objects.filter(base_claim__dataset=dataset)
        .values("framing").annotate(n=Count("id"))
    }
    splits = [
        {
            "split": split,
            "true": by_split.get((split, TruthLabel.SUPPORTS), 0),
            "false": by_split.get((split, TruthLabel.REFUTES), 0),
        }
        for split in Split.values
        if by_split.get((split, TruthLabel.SUPPORTS)) or by_split.get((split, TruthLabel.REFUTES))
    ]
    return {
        "splits": splits,
        "base_claims": sum(by_split.values()),
        "framed_claims": sum(by_framing.values()),
        "framings": [(framing, by_framing.get(framing, 0)) for framing in Framing.values],
    }


def framed_claims_filtered(
    *, dataset: Dataset, framing: str = "", split: str = "", true_label: str = "", search: str = ""
) -> QuerySet[FramedClaim]:
    claims = FramedClaim.objects.filter(base_claim__dataset=dataset).select_related("base_claim")
    if framing in Framing.values:
        claims = claims.filter(framing=framing)
    if split in Split.values:
        claims = claims.filter(base_claim__split=split)
    if true_label in TruthLabel.values:
        claims = claims.filter(base_claim__true_label=true_label)
    if search:
        claims = claims.filter(Q(text__icontains=search) | Q(base_claim__external_id=search))
    return claims.order_by("id")


def claim_imports_visible_to(user):
    """A researcher sees the imports they started; a superuser sees all."""
    imports = ClaimImport.objects.all()
    imports = imports if user.is_superuser else imports.filter(created_by=user)
    return imports.order_by("-created", "-id")


def claim_import_progress(jobs) -> dict[int, dict]:
    """What running imports' workers last reported (bytes and rows read)."""
    progress = {}
    for job in jobs:
        if job.status == ClaimImport.Status.RUNNING and job.task_id:
            result = AsyncResult(job.task_id)
            if result.state == "PROGRESS" and isinstance(result.info, dict):
                progress[job.pk] = result.info
    return progress


def claim_import_file_names(files: list[str]) -> list[str]:
    """How messages and pages name a job's files: as uploaded, and by their place in the
    upload where two files share a name."""
    names = [PurePosixPath(name).name for name in files]
    return [f"{name} (file {position} of the upload)" if names.count(name) > 1 else name
            for position, name in enumerate(names, 1)]
