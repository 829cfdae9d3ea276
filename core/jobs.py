"""Jobs: rows that a worker (or a command) runs, in one vocabulary and one life cycle.

Claim imports, data exports, personas, score tables and simulation runs are all jobs:

    queued -> running -> succeeded | failed | cancelled

A job is created queued; whoever runs it first *claims* it with `job_claim`, a single
compare-and-set UPDATE, so that a duplicated or redelivered task message never runs a job
twice; the runner then records the outcome and the time it finished.

A running job holds a *lease* (docs/jobs.md): `heartbeat` is the last time the process running
it showed a sign of life, `lease_owner` says which process that is, and `attempts` counts its
starts. `job_heartbeat` renews the lease every few seconds from a thread beside the work; a
running job whose heartbeat is older than FRAMELAB_JOB_LEASE_SECONDS has lost its worker
(killed, out of memory, machine gone), and `core.recovery` (beat's `recover-jobs`) either starts
it again or fails it with a message that says so. Never "running" forever.

`Job` is an abstract model (it needs no app of its own): every job table inherits its
columns, which keep the names and types the tables always had.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, models
from django.db.models import F, Manager, Q, QuerySet
from django.utils import timezone

logger = logging.getLogger(__name__)


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # Only personas, score tables and simulation runs can be cancelled today; the status
    # is part of the one vocabulary all the same.
    CANCELLED = "cancelled"


FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
#: How the message of a job failed by recovery begins (core/recovery.py).
WORKER_STOPPED = "The worker running this "


class Job(models.Model):
    """What every job row records: its status, its Celery task, why it failed, when it was
    made, started and finished, and how far it has got (0..1).

    A table without one of these columns removes it the way Django allows for abstract
    parents (`progress = None`), and says why.
    """

    Status = JobStatus

    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    task_id = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    progress = models.FloatField(default=0.0)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    # The lease of a running job (job_claim sets it, job_heartbeat renews it).
    heartbeat = models.DateTimeField(
        null=True, blank=True,
        help_text="Last sign of life of the process running the job; older than the lease "
                  "timeout means that process died.")
    lease_owner = models.CharField(
        max_length=200, blank=True,
        help_text="The process holding the job's lease: worker or host, and pid.")
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="How many times a process has started the job.")

    class Meta:
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def worker_stopped(self) -> bool:
        """Failed because the process running it died (core/recovery.py), not by its input."""
        return self.status == JobStatus.FAILED and self.error.startswith(WORKER_STOPPED)


# --- the lease ------------------------------------------------------------------------------

def lease_timeout() -> timedelta:
    """How long a running job may stay silent before it counts as abandoned
    (FRAMELAB_JOB_LEASE_SECONDS)."""
    return timedelta(seconds=float(settings.FRAMELAB_JOB_LEASE_SECONDS))


def heartbeat_interval() -> float:
    """Seconds between two renewals of a lease: a quarter of the timeout, at most 10 s, so that
    a few lost renewals (a busy database) never expire a live job."""
    return max(0.2, min(10.0, float(settings.FRAMELAB_JOB_LEASE_SECONDS) / 4))


def max_attempts() -> int:
    """How many times a job is started in all before a dead worker fails it
    (FRAMELAB_JOB_MAX_ATTEMPTS)."""
    return max(1, int(settings.FRAMELAB_JOB_MAX_ATTEMPTS))


def lease_owner_here() -> str:
    """Names this process for a job's `lease_owner`: the Celery worker's name when a task
    runs here, else the host, and the pid either way (the pid a test or an operator kills)."""
    from celery import current_task

    request = getattr(current_task, "request", None)
    hostname = getattr(request, "hostname", None) if request is not None else None
    if hostname and not getattr(request, "is_eager", False):
        return f"worker {hostname} pid {os.getpid()}"[:200]
    return f"process on {socket.gethostname()} pid {os.getpid()}"[:200]


def lease_expired(now: datetime | None = None) -> Q:
    """The running jobs whose lease has expired: silent past the timeout (or, with no
    heartbeat at all, started that long ago or never)."""
    cutoff = (now or timezone.now()) - lease_timeout()
    return Q(status=JobStatus.RUNNING) & (
        Q(heartbeat__lt=cutoff)
        | Q(heartbeat__isnull=True, started__lt=cutoff)
        | Q(heartbeat__isnull=True, started__isnull=True))


def job_claim(jobs: Manager | QuerySet, pk: int, *, also: Q | None = None,
              take_expired: bool = False, **updates) -> bool:
    """Moves job `pk` of `jobs` from queued to running (`started` now) if no one else has;
    True if this caller won the row and may run it.

    One UPDATE with the expected status in its WHERE clause (compare and set): of two
    workers given the same job, exactly one sees True. `jobs` is the table's manager, or a
    queryset that narrows the rows further (e.g.
    `SimulationRun.objects.filter(cancel_requested=False)`); `also` admits rows in
    another state as well (a redelivered task's own running row, a resumable failed one);
    `updates` are further columns to set in the same statement, and may override `started`
    (e.g. `Coalesce("started", Value(now))` to keep the first start of a resumed job).

    The winner holds the job's lease: `heartbeat` now, `lease_owner` this process, one more
    attempt. `take_expired` also takes over a running job whose lease has expired (a task
    redelivered after its worker died) while it has attempts left; a running job whose lease
    is alive is never taken, so two live workers never run one job at once.
    """
    now = timezone.now()
    claimable = Q(status=JobStatus.QUEUED)
    if also is not None:
        claimable |= also
    if take_expired:
        claimable |= lease_expired(now) & Q(attempts__lt=max_attempts())
    changes = {"status": JobStatus.RUNNING, "started": now, "heartbeat": now,
               "lease_owner": lease_owner_here(), "attempts": F("attempts") + 1, **updates}
    return jobs.filter(claimable, pk=pk).update(**changes) > 0


def job_renew_lease(jobs: Manager | QuerySet, pk: int | list[int], *,
                    owner: str | None = None) -> bool:
    """Renews the lease of running job `pk` (or jobs: a list of ids), held by `owner` if given;
    False if none is running there any more (finished, cancelled, or taken over after the
    lease expired)."""
    held = Q(status=JobStatus.RUNNING) & (Q(pk__in=pk) if isinstance(pk, list) else Q(pk=pk))
    if owner is not None:
        held &= Q(lease_owner=owner)
    return jobs.filter(held).update(heartbeat=timezone.now()) > 0


@contextlib.contextmanager
def job_heartbeat(jobs: Manager | QuerySet, pk: int | list[int], *, owner: str | None = None,
                  interval: float | None = None):
    """Keeps the lease of running job `pk` alive while the body runs: a daemon thread renews
    it every `heartbeat_interval()` seconds on its own database connection, whatever the body
    does (a long transaction, a model loading, a step of minutes). The body needs no progress
    reports for it; a process that dies stops renewing, which is the point.

    `owner` (the `lease_owner` the claim wrote) stops the renewals once another process has
    taken the job over. A failed renewal (a locked SQLite file) is logged and tried again at
    the next beat. Called inside a transaction (tests, eager tasks) it renews nothing: no
    other connection could see the job's rows.
    """
    if connection.in_atomic_block:
        # Run inside a caller's transaction (a test, eager tasks): no other connection sees the
        # job's rows, nor could it update them without waiting for that transaction.
        yield
        return
    interval = heartbeat_interval() if interval is None else interval
    stop = threading.Event()

    def renew() -> None:
        try:
            while not stop.wait(interval):
                try:
                    if not job_renew_lease(jobs, pk, owner=owner):
                        return
                except Exception:  # a missed beat; the next one may pass
                    logger.warning("could not renew the lease of job %s", pk, exc_info=True)
        finally:
            connection.close()

    thread = threading.Thread(target=renew, name=f"job-heartbeat-{pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 35)
