"""How simulation runs are recovered when a worker dies (core/recovery.py).

A run is started again from its start: the start task claims it, removes any shard parts and
launches the shards anew; every shard gives the same rows however often it runs, so the
repeated run's results are the ones the first would have given. Between its tasks (shards
queued behind other work) no task renews a run's lease; such a run is waiting, not abandoned
(`shards_waiting`).
"""
from __future__ import annotations

import shutil

from core.recovery import JobKind, register_job_kind


def _retry_run(run) -> None:
    from .services import simulation_run_enqueue

    simulation_run_enqueue(run=run, shards=run.shards_total or None)


def shards_waiting(run) -> bool:
    """Whether the run's current shards (or, once they are all done, its merge) still wait in
    the queue for a free worker: then the run is not abandoned, although no task renews its
    lease. Read from Celery's result backend (which chords need anyway): the start task
    appends the merge's id and then the shards' ids to `task_ids`. A shard whose worker died
    is STARTED (or failed), not waiting, so its run is recovered."""
    from celery.result import AsyncResult

    shards = run.shards_total
    if not shards or len(run.task_ids or []) < shards + 2:
        return False
    merge_id, shard_ids = run.task_ids[-shards - 1], run.task_ids[-shards:]
    states = [AsyncResult(task_id).state for task_id in shard_ids]
    if "PENDING" in states:
        return True
    return all(state == "SUCCESS" for state in states) and AsyncResult(merge_id).state == "PENDING"


def _run_failed(run) -> None:
    from .services import run_folder

    shutil.rmtree(run_folder(run) / "parts", ignore_errors=True)


def register() -> None:
    register_job_kind(JobKind(
        model="simulation.SimulationRun", name="simulation run",
        lost="no results were saved; start the run again",
        retry=_retry_run, requeue={"task_ids": [], "progress": 0.0, "shards_done": 0},
        on_fail=_run_failed,
        waiting=shards_waiting))
