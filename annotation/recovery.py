"""How claim imports, data exports and model fits are recovered when their worker dies
(core/recovery.py).

All are run again from their start: an import is one transaction (a dead worker's import
left no rows), an export writes its file under a temporary name first, and a fit stores its
result only when it is complete (same seed, same draws).
"""
from __future__ import annotations

from django.conf import settings

from core.recovery import JobKind, register_job_kind


def _retry_import(job) -> None:
    from annotation.claims.services import claim_import_enqueue

    claim_import_enqueue(claim_import=job)


def _import_failed(job) -> None:
    from annotation.claims.services import claim_import_uploads_delete

    if settings.FRAMELAB_KEEP_UPLOADS_SECONDS <= 0:
        claim_import_uploads_delete(claim_import=job)


def _retry_export(job) -> None:
    from annotation.dataio.services import data_export_enqueue

    data_export_enqueue(data_export=job)


def _retry_model_fit(job) -> None:
    from annotation.analysis.model_fits import model_fit_enqueue

    model_fit_enqueue(model_fit=job)


def register() -> None:
    register_job_kind(JobKind(
        model="annotation.ClaimImport", name="claim import",
        lost="nothing was imported (an import is all or nothing); import the files again",
        retry=_retry_import, requeue={"task_id": ""}, on_fail=_import_failed))
    register_job_kind(JobKind(
        model="annotation.DataExport", name="export", lost="no file was written; start the export again",
        retry=_retry_export, requeue={"task_id": "", "rows_written": 0}))
    register_job_kind(JobKind(
        model="annotation.ModelFit", name="model fit", lost="no model was stored; fit it again",
        retry=_retry_model_fit, requeue={"task_id": "", "progress": 0.0, "stage": "waiting for a worker"}))
