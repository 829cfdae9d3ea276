"""Everything that writes claims and datasets: keyword-only functions, each one transaction."""
from __future__ import annotations

import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from annotation.claims.files import ClaimFileError, ReadLimits, discover_claim_files
from annotation.claims.importer import ClaimImporter, ImportSummary, ProgressCallback
from annotation.claims.uploads import read_limits, uploads_check
from annotation.models import ClaimImport, Dataset
from core.vocabulary import NO_SPLIT


def claims_import(
    *,
    paths: list[str | Path],
    dataset_name: str,
    skip_existing: bool = False,
    default_split: str = NO_SPLIT,
    verification: str = "unverified",
    generator: str = "",
    description: str | None = None,
    source: str | None = None,
    licence: str | None = None,
    progress: ProgressCallback | None = None,
    limits: ReadLimits | None = None,
) -> ImportSummary:
    """Imports claim files into the dataset `dataset_name`, creating it if needed.

    All or nothing: a `ClaimFileError` from any row leaves the database as it was,
    including a dataset this call would have created. `limits` default to the settings'.
    """
    started = time.perf_counter()
    claim_files = discover_claim_files(paths)
    with transaction.atomic():
        dataset, created = Dataset.objects.get_or_create(name=dataset_name)
        metadata = {"description": description, "source": source, "licence": licence}
        changed = [
            field for field, value in metadata.items()
            if value is not None and getattr(dataset, field) != value
        ]
        for field in changed:
            setattr(dataset, field, metadata[field])
        if changed:
            dataset.save(update_fields=changed)
        importer = ClaimImporter(
            dataset=dataset,
            claim_files=claim_files,
            skip_existing=skip_existing,
            default_split=default_split,
            verification=verification,
            generator=generator,
            progress=progress,
            limits=limits or read_limits(),
        )
        rows_read, rows_imported, rows_skipped, base_claims_created = importer.run()
        if rows_read == 0:
            raise ClaimFileError(
                path=", ".join(str(p) for p in paths), line=None,
                problem="the files hold no claims",
            )
    return ImportSummary(
        dataset=dataset.name,
        dataset_created=created,
        files=len(claim_files),
        rows_read=rows_read,
        rows_imported=rows_imported,
        rows_skipped=rows_skipped,
        base_claims_created=base_claims_created,
        seconds=time.perf_counter() - started,
    )


def claim_import_create(
    *,
    dataset_name: str,
    files: list[UploadedFile],
    skip_existing: bool = False,
    default_split: str = NO_SPLIT,
    verification: str = "unverified",
    created_by=None,
) -> ClaimImport:
    """Stores uploaded claim files in the artifact store and queues their import.

    Files of an unknown type or over the size limits are refused before anything is stored
    (`UploadTooLarge` for the latter).
    """
    uploads_check(files)
    folder = Path("imports") / uuid.uuid4().hex
    stored = []
    for upload in files:
        # Keep the uploaded name: it carries the split (train-0000.jsonl) and names the
        # file in error messages.
        relative = folder / Path(upload.name).name
        target = Path(settings.MEDIA_ROOT) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as handle:
            for chunk in upload.chunks():
                handle.write(chunk)
        stored.append(str(relative))
    with transaction.atomic():
        job = ClaimImport.objects.create(
            dataset_name=dataset_name,
            files=stored,
            skip_existing=skip_existing,
            bytes_total=sum(upload.size for upload in files),
            options={"default_split": default_split, "verification": verification},
            created_by=created_by,
        )
        transaction.on_commit(lambda: claim_import_enqueue(claim_import=job))
    return job


def claim_import_enqueue(*, claim_import: ClaimImport) -> None:
    from annotation.tasks import run_claim_import

    result = run_claim_import.apply_async(args=[claim_import.pk])
    ClaimImport.objects.filter(pk=claim_import.pk, task_id="").update(task_id=result.id or "")


def claim_import_run(*, claim_import: ClaimImport, progress: ProgressCallback | None = None) -> None:
    """Runs an import job and records its outcome on the job row (never half an import)."""
    media = Path(settings.MEDIA_ROOT)
    try:
        summary = claims_import(
            paths=[media / name for name in claim_import.files],
            dataset_name=claim_import.dataset_name,
            skip_existing=claim_import.skip_existing,
            default_split=claim_import.options.get("default_split", NO_SPLIT),
            verification=claim_import.options.get("verification", "unverified"),
            progress=progress,
        )
    except ClaimFileError as exc:
        # Name the file as the researcher uploaded it, not by its path in the store.
        message = str(exc).replace(str(media / "imports") + "/", "")
        ClaimImport.objects.filter(pk=claim_import.pk).update(
            status=ClaimImport.Status.FAILED, error=message, finished=timezone.now()
        )
        return
    except Exception as exc:
        ClaimImport.objects.filter(pk=claim_import.pk).update(
            status=ClaimImport.Status.FAILED,
            error=f"internal error: {type(exc).__name__}: {exc}",
            finished=timezone.now(),
        )
        raise
    ClaimImport.objects.filter(pk=claim_import.pk).update(
        status=ClaimImport.Status.SUCCEEDED,
        dataset=Dataset.objects.get(name=summary.dataset),
        rows_imported=summary.rows_imported,
        rows_skipped=summary.rows_skipped,
        finished=timezone.now(),
    )
