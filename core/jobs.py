"""Jobs: rows that a worker (or a command) runs, in one vocabulary and one life cycle.

Claim imports, data exports, personas, score tables and simulation runs are all jobs:

    queued -> running -> succeeded | failed | cancelled

A job is created queued; whoever runs it first *claims* it with `job_claim`, a single
compare-and-set UPDATE, so that a duplicated or redelivered task message never runs a job
twice; the runner then records the outcome and the time it finished.

`Job` is an abstract model (it needs no app of its own): every job table inherits its
columns, which keep the names and types the tables always had.
"""
from __future__ import annotations

from django.db import models
from django.db.models import Manager, Q, QuerySet
from django.utils import timezone


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # Only personas, score tables and simulation runs can be cancelled today; the status
    # is part of the one vocabulary all the same.
    CANCELLED = "cancelled"


FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


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

    class Meta:
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


def job_claim(jobs: Manager | QuerySet, pk: int, *, also: Q | None = None, **updates) -> bool:
    """Moves job `pk` of `jobs` from queued to running (`started` now) if no one else has;
    True if this caller won the row and may run it.

    One UPDATE with the expected status in its WHERE clause (compare and set): of two
    workers given the same job, exactly one sees True. `jobs` is the table's manager, or a
    queryset that narrows the rows further (e.g.
    `SimulationRun.objects.filter(cancel_requested=False)`); `also` admits rows in
    another state as well (a redelivered task's own running row, a resumable failed one);
    `updates` are further columns to set in the same statement, and may override `started`
    (e.g. `Coalesce("started", Value(now))` to keep the first start of a resumed job).
    """
    claimable = Q(status=JobStatus.QUEUED)
    if also is not None:
        claimable |= also
    changes = {"status": JobStatus.RUNNING, "started": timezone.now(), **updates}
    return jobs.filter(claimable, pk=pk).update(**changes) > 0
