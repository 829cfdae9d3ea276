"""Celery tasks of the annotation app: thin wrappers that load a row by id and call a service."""
from __future__ import annotations

from celery import shared_task

from annotation.claims.services import claim_import_run, claim_uploads_delete_expired
from annotation.models import ClaimImport
from core.jobs import job_claim, job_heartbeat
from core.progress import Throttle


@shared_task(bind=True, name="annotation.run_claim_import")
def run_claim_import(self, claim_import_id: int) -> dict:
    """Runs a queued `ClaimImport`; a retried or duplicated message does nothing twice.

    A message redelivered after its worker died takes the job over once its lease has expired
    (before that it does nothing, and beat's recover-jobs queues it again later)."""
    claimed = job_claim(ClaimImport.objects, claim_import_id, take_expired=True)
    job = ClaimImport.objects.filter(pk=claim_import_id).first()
    if job is None:
        return {"status": "missing", "skipped": True}
    if not claimed:
        return {"status": job.status, "skipped": True}
    throttle = Throttle()
    state = {"bytes": 0, "rows": 0}

    def report(byte_count: int, rows: int) -> None:
        state["bytes"] += byte_count
        state["rows"] = rows
        if self.request.id and not self.request.is_eager and throttle.due():
            self.update_state(state="PROGRESS", meta=dict(state))

    with job_heartbeat(ClaimImport.objects, job.pk, owner=job.lease_owner):
        claim_import_run(claim_import=job, progress=report)
    job.refresh_from_db()
    return {"status": job.status, "rows_imported": job.rows_imported}


@shared_task(name="annotation.delete_expired_uploads")
def delete_expired_uploads() -> int:
    """Deletes uploaded claim files nothing needs any more (run by beat)."""
    return claim_uploads_delete_expired()


@shared_task(name="annotation.reclaim_expired_sessions")
def reclaim_expired_sessions() -> int:
    """Times out idle sessions of every study and reopens their slots (run by beat)."""
    from annotation.studies.assignment import sessions_reclaim_expired

    return sessions_reclaim_expired()


def _run_study_job(model, job_id: int, run, summary) -> dict:
    """Claims a queued job of a study (or takes over one whose lease expired), runs it with
    its lease renewed, and says how it ended; a retried or duplicated message does nothing
    twice."""
    claimed = job_claim(model.objects, job_id, take_expired=True)
    job = model.objects.select_related("study").filter(pk=job_id).first()
    if job is None:
        return {"status": "missing", "skipped": True}
    if not claimed:
        return {"status": job.status, "skipped": True}
    with job_heartbeat(model.objects, job.pk, owner=job.lease_owner):
        run(job)
    job.refresh_from_db()
    return summary(job)


@shared_task(name="annotation.run_data_export")
def run_data_export(export_id: int) -> dict:
    """Writes a queued `DataExport`'s file (as `run_claim_import`, a redelivered message takes
    over a job whose lease expired)."""
    from annotation.dataio.services import data_export_run
    from annotation.models import DataExport

    return _run_study_job(
        DataExport, export_id, lambda job: data_export_run(data_export=job),
        lambda job: {"status": job.status, "rows_written": job.rows_written, "file": job.file})


@shared_task(name="annotation.run_model_fit")
def run_model_fit(model_fit_id: int) -> dict:
    """Fits a queued `ModelFit` (the report's mixed model)."""
    from annotation.analysis.model_fits import model_fit_run
    from annotation.models import ModelFit

    return _run_study_job(ModelFit, model_fit_id, lambda job: model_fit_run(model_fit=job),
                          lambda job: {"status": job.status})
