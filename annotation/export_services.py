"""Services that move a study's data out and in: tidy-table export jobs, Prolific imports.

Small exports stream straight to the browser, the API or the command; a `DataExport` row
tracks a large one that a Celery worker writes to a file under MEDIA_ROOT/exports/, with
its progress, so the page can show a bar and then a download link.
"""
from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .judgment_export import (
    ProgressCallback,
    clean_filters,
    export_file_name,
    export_to_file,
    judgment_export_queryset,
)
from .models import DataExport, Study

EXPORTS_FOLDER = "exports"
# Rows between two progress writes to the job row: often enough for a moving bar, rarely
# enough that the writes cost nothing beside the export.
_PROGRESS_EVERY_SECONDS = 1.0


def data_export_create(*, study: Study, fmt: str, options: dict | None = None, user=None) -> DataExport:
    """Records an export of `study` in `fmt` with `options` (filters) and queues it.

    The options are checked here, so a bad filter is refused at once rather than failing
    in the worker. The job is queued when the transaction commits, so the worker never
    looks for a row that is not there yet.
    """
    options = dict(options or {})
    filters = clean_filters(**options)
    if fmt not in DataExport.Format.values:
        raise ValueError(f"unknown export format '{fmt}'; accepted: {', '.join(DataExport.Format.values)}")
    with transaction.atomic():
        job = DataExport.objects.create(
            study=study,
            format=fmt,
            options=filters,
            rows_total=judgment_export_queryset(study=study, **filters).count(),
            created_by=user if user is not None and user.is_authenticated else None,
        )
        transaction.on_commit(lambda: data_export_enqueue(data_export=job))
    return job


def data_export_enqueue(*, data_export: DataExport) -> None:
    from .tasks import run_data_export

    result = run_data_export.apply_async(args=[data_export.pk])
    DataExport.objects.filter(pk=data_export.pk, task_id="").update(task_id=result.id or "")


def data_export_path(data_export: DataExport) -> Path:
    """Where the job's file lives: MEDIA_ROOT/exports/<job id>/<file name>."""
    return Path(settings.MEDIA_ROOT) / data_export.file


def data_export_run(*, data_export: DataExport, progress: ProgressCallback | None = None) -> None:
    """Writes the export file and records the outcome on the job row.

    The file appears under its final name only when it is complete (see
    `export_to_file`); rows_written moves as the rows are written.
    """
    job = data_export
    relative = Path(EXPORTS_FOLDER) / str(job.pk) / export_file_name(job.study, job.format)
    written = 0
    last_saved = time.monotonic()

    def report(rows: int) -> None:
        nonlocal written, last_saved
        written += rows
        if progress is not None:
            progress(rows)
        now = time.monotonic()
        if now - last_saved >= _PROGRESS_EVERY_SECONDS:
            last_saved = now
            DataExport.objects.filter(pk=job.pk).update(rows_written=written)

    try:
        rows = export_to_file(study=job.study, fmt=job.format,
                              path=Path(settings.MEDIA_ROOT) / relative, progress=report,
                              **clean_filters(**job.options))
    except Exception as exc:
        DataExport.objects.filter(pk=job.pk).update(
            status=DataExport.Status.FAILED, error=f"{type(exc).__name__}: {exc}",
            rows_written=written, finished=timezone.now(),
        )
        raise
    DataExport.objects.filter(pk=job.pk).update(
        status=DataExport.Status.SUCCEEDED, file=str(relative), rows_written=rows,
        rows_total=rows, finished=timezone.now(),
    )
