"""Everything that writes claims and datasets: keyword-only functions, each one transaction."""
from __future__ import annotations

import os
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePath, PurePosixPath

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from annotation.claims.files import (
    FORMATS,
    ClaimFileError,
    ReadLimits,
    discover_claim_files,
)
from annotation.claims.importer import ClaimImporter, ImportSummary, ProgressCallback
from annotation.claims.selectors import claim_import_file_names
from annotation.claims.uploads import read_limits, uploads_check
from annotation.models import ClaimImport, Dataset
from core.vocabulary import NO_SPLIT

# Uploads are stored under MEDIA_ROOT/imports/<random folder>/<position>/<uploaded name>.
UPLOADS_FOLDER = "imports"
# A folder of uploads that belongs to no job yet is left alone this long: it may be an upload
# being stored right now, whose job is created once its files are.
ORPHAN_UPLOAD_GRACE = timedelta(hours=1)


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
    names: list[str] | None = None,
    limits: ReadLimits | None = None,
) -> ImportSummary:
    """Imports claim files into the dataset `dataset_name`, creating it if needed.

    All or nothing: a `ClaimFileError` from any row leaves the database as it was,
    including a dataset this call would have created. `names` name the files in messages
    (uploads: as the researcher uploaded them); `limits` default to the settings'.
    """
    started = time.perf_counter()
    claim_files = discover_claim_files(paths, names=names)
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
                path=", ".join(claim_file.display for claim_file in claim_files), line=None,
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
    (`UploadTooLarge` for the latter). Each file gets a folder of its own, so two files of
    the same name are both kept and both imported; if the job cannot be created, what was
    stored is deleted again.
    """
    uploads_check(files)
    folder = PurePosixPath(UPLOADS_FOLDER) / uuid.uuid4().hex
    media = Path(settings.MEDIA_ROOT)
    stored = []
    try:
        for position, upload in enumerate(files, 1):
            # Keep the uploaded name: it carries the split (train-0000.jsonl) and names the
            # file in error messages.
            relative = folder / str(position) / _stored_name(upload.name)
            target = media / relative
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
    except BaseException:
        shutil.rmtree(media / folder, ignore_errors=True)
        raise
    return job


def _stored_name(name: str) -> str:
    """The uploaded name as a file name the store can hold (Django keeps only its last part);
    a name too long for a file system loses the end of its stem, never its type."""
    name = PurePath(name.replace("\x00", "")).name
    if len(os.fsencode(name)) <= 200:  # most file systems take 255 bytes
        return name
    known = [s for s in FORMATS if name.lower().endswith(s)]
    suffix = name[len(name) - max(map(len, known)):] if known else ""
    stem = name[: len(name) - len(suffix)]
    while stem and len(os.fsencode(stem + suffix)) > 200:
        stem = stem[:-1]
    return stem + suffix


def claim_import_enqueue(*, claim_import: ClaimImport) -> None:
    from annotation.tasks import run_claim_import

    result = run_claim_import.apply_async(args=[claim_import.pk])
    ClaimImport.objects.filter(pk=claim_import.pk, task_id="").update(task_id=result.id or "")


def claim_import_run(*, claim_import: ClaimImport, progress: ProgressCallback | None = None) -> None:
    """Runs an import job and records its outcome on the job row (never half an import).

    However it ends, its uploaded files are deleted, unless FRAMELAB_KEEP_UPLOADS_SECONDS
    keeps them for a while (beat's sweep, `claim_uploads_delete_expired`, deletes them then).
    """
    media = Path(settings.MEDIA_ROOT)
    try:
        summary = claims_import(
            paths=[media / name for name in claim_import.files],
            names=claim_import_file_names(claim_import.files),
            dataset_name=claim_import.dataset_name,
            skip_existing=claim_import.skip_existing,
            default_split=claim_import.options.get("default_split", NO_SPLIT),
            verification=claim_import.options.get("verification", "unverified"),
            progress=progress,
        )
    except ClaimFileError as exc:
        ClaimImport.objects.filter(pk=claim_import.pk).update(
            status=ClaimImport.Status.FAILED, error=str(exc), finished=timezone.now()
        )
        return
    except Exception as exc:
        # Never the store's folders in a message a researcher reads.
        message = f"internal error: {type(exc).__name__}: {exc}".replace(str(media) + "/", "")
        ClaimImport.objects.filter(pk=claim_import.pk).update(
            status=ClaimImport.Status.FAILED, error=message, finished=timezone.now()
        )
        raise
    finally:
        if settings.FRAMELAB_KEEP_UPLOADS_SECONDS <= 0:
            claim_import_uploads_delete(claim_import=claim_import)
    ClaimImport.objects.filter(pk=claim_import.pk).update(
        status=ClaimImport.Status.SUCCEEDED,
        dataset=Dataset.objects.get(name=summary.dataset),
        rows_imported=summary.rows_imported,
        rows_skipped=summary.rows_skipped,
        finished=timezone.now(),
    )


def _upload_folders(files: list[str]) -> set[str]:
    """The folders under MEDIA_ROOT/imports that hold a job's files."""
    folders = set()
    for name in files:
        parts = PurePosixPath(name).parts
        if len(parts) >= 3 and parts[0] == UPLOADS_FOLDER and parts[1] not in ("", ".", ".."):
            folders.add(parts[1])
    return folders


def claim_import_uploads_delete(*, claim_import: ClaimImport) -> None:
    """Deletes a job's uploaded files (the job keeps their names)."""
    root = Path(settings.MEDIA_ROOT) / UPLOADS_FOLDER
    for folder in _upload_folders(claim_import.files):
        shutil.rmtree(root / folder, ignore_errors=True)


def claim_uploads_delete_expired(*, now: datetime | None = None) -> int:
    """Deletes the upload folders nothing needs any more; returns how many (beat runs it).

    A folder is kept while its job is queued or running, and FRAMELAB_KEEP_UPLOADS_SECONDS
    after the job finished (however it ended: succeeded, failed, or ended by anything else
    that is neither queued nor running). A folder that belongs to no job is deleted once it
    is ORPHAN_UPLOAD_GRACE old.
    """
    root = Path(settings.MEDIA_ROOT) / UPLOADS_FOLDER
    if not root.is_dir():
        return 0
    now = now or timezone.now()
    keep = timedelta(seconds=max(settings.FRAMELAB_KEEP_UPLOADS_SECONDS, 0))
    active = (ClaimImport.Status.QUEUED, ClaimImport.Status.RUNNING)
    removed = 0
    for folder in root.iterdir():
        try:
            modified = datetime.fromtimestamp(folder.stat().st_mtime, tz=UTC)
        except FileNotFoundError:
            continue
        job = (ClaimImport.objects.filter(files__0__startswith=f"{UPLOADS_FOLDER}/{folder.name}/")
               .only("status", "finished").first())
        if job is None:
            expired = now - modified >= ORPHAN_UPLOAD_GRACE
        elif job.status in active:
            expired = False
        else:
            expired = (job.finished or modified) + keep <= now
        if expired:
            if folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder, ignore_errors=True)
            else:
                folder.unlink(missing_ok=True)
            removed += 1
    return removed
