"""Jobs whose worker died: found by their expired lease, then started again or failed.

Every job table registers its kind here (in its app's `ready`) with what recovery needs to
know: whether a job of that kind can be run again from its start without harm, how to queue
it again, and what a failure message says was lost. `jobs_recover` (beat's `recover-jobs`,
the `recover_jobs` command) looks at every running job whose lease has expired
(`core.jobs.lease_expired`) and, per job, in one conditional UPDATE that only one recoverer
can win:

- retries it: back to queued and a new task message, when its kind is retryable, a worker
  (not a foreground command) ran it, and it has attempts left (FRAMELAB_JOB_MAX_ATTEMPTS);
- otherwise fails it, with a message that says the process running it stopped and what
  that means for the job's results.

docs/jobs.md describes the policy per kind.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.apps import apps
from django.db import transaction
from django.utils import timezone

from core.jobs import (
    WORKER_STOPPED,
    JobStatus,
    lease_expired,
    lease_timeout,
    max_attempts,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobKind:
    """How jobs of one table are recovered.

    model: "app_label.Model"; name: how a message names the job ("claim import");
    lost: what a failure means for its results ("nothing was imported");
    retry: queues the job again (called after the row went back to queued), None for a kind
    that cannot be run twice; requeue: further columns to reset when it goes back to queued;
    ran_on_worker: whether a worker (not a foreground command, which nothing can start again)
    ran the job; on_fail: cleanup after a job failed (e.g. delete its uploads); waiting: whether
    a job whose lease expired is only waiting for a worker between two of its tasks (a
    simulation's queued shards), not abandoned.
    """

    model: str
    name: str
    lost: str | Callable
    retry: Callable | None = None
    requeue: dict = field(default_factory=dict)
    ran_on_worker: Callable = lambda job: ran_on_worker(job)
    on_fail: Callable | None = None
    waiting: Callable | None = None


def ran_on_worker(job) -> bool:
    """Whether a Celery worker (not a command in the foreground) ran the job: its lease owner
    says so; a job claimed before leases existed has only its task id to tell."""
    if job.lease_owner:
        return job.lease_owner.startswith("worker ")
    return bool(getattr(job, "task_id", "") or getattr(job, "task_ids", None))


_KINDS: dict[str, JobKind] = {}


def register_job_kind(kind: JobKind) -> None:
    _KINDS[kind.model] = kind


def job_kinds() -> list[JobKind]:
    return list(_KINDS.values())


def worker_died_message(job, kind: JobKind, *, now: datetime | None = None) -> str:
    """The message a job failed by recovery carries, in plain words."""
    who = job.lease_owner or "the process that started it"
    silent = lease_timeout().total_seconds()
    tries = (f" after {job.attempts} attempts" if job.attempts > 1 else "")
    lost = kind.lost(job) if callable(kind.lost) else kind.lost
    return (f"{WORKER_STOPPED}{kind.name} stopped ({who}; no sign of life for over "
            f"{silent:g} s){tries}; {lost}.")


@dataclass
class Recovered:
    retried: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{len(self.retried)} job(s) queued again"
                + (f" ({', '.join(self.retried)})" if self.retried else "")
                + f", {len(self.failed)} failed"
                + (f" ({', '.join(self.failed)})" if self.failed else ""))


def jobs_recover(*, now: datetime | None = None) -> Recovered:
    """Retries or fails every running job whose lease has expired; says which."""
    now = now or timezone.now()
    outcome = Recovered()
    for kind in job_kinds():
        model = apps.get_model(kind.model)
        for job in model.objects.filter(lease_expired(now)).order_by("pk"):
            label = f"{kind.name} #{job.pk}"
            if kind.waiting is not None and kind.waiting(job):
                continue
            # Only the rows still as read (same attempt, still expired) change: a worker that
            # came back to life, or another recoverer, wins the row instead.
            same = model.objects.filter(lease_expired(now), pk=job.pk, attempts=job.attempts)
            if getattr(job, "cancel_requested", False):
                # Asked to stop, and stopped: what the researcher wanted, minus the tidy end.
                if same.update(status=JobStatus.CANCELLED, finished=now,
                               error="cancelled on request; its worker stopped before it could "
                                     "say so"):
                    outcome.failed.append(label)
                continue
            retry = (kind.retry is not None and job.attempts < max_attempts()
                     and kind.ran_on_worker(job))
            if retry:
                if same.update(status=JobStatus.QUEUED, heartbeat=None, lease_owner="",
                               error="", **kind.requeue):
                    logger.warning("%s: its worker (%s) stopped; queued again (attempt %d of %d)",
                                   label, job.lease_owner or "unknown", job.attempts + 1,
                                   max_attempts())
                    job.refresh_from_db()
                    transaction.on_commit(lambda job=job, retry=kind.retry: retry(job))
                    outcome.retried.append(label)
                continue
            message = worker_died_message(job, kind, now=now)
            if same.update(status=JobStatus.FAILED, finished=now, error=message):
                logger.warning("%s failed: %s", label, message)
                job.refresh_from_db()
                if kind.on_fail is not None:
                    try:
                        kind.on_fail(job)
                    except Exception:  # cleanup only; the job has failed
                        logger.exception("%s: cleanup after failure", label)
                outcome.failed.append(label)
    return outcome
