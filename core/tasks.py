"""Celery tasks of the platform itself."""
from __future__ import annotations

from celery import shared_task


@shared_task(name="core.recover_jobs")
def recover_jobs() -> str:
    """Retries or fails the running jobs whose worker died (run by beat; docs/jobs.md)."""
    from core.recovery import jobs_recover

    return str(jobs_recover())
