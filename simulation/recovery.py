"""How simulation runs are recovered when a worker dies (core/recovery.py).

A run is started again from its start: the start task claims it, removes any shard parts and
launches the shards anew; every shard gives the same rows however often it runs, so the
repeated run's results are the ones the first would have given.
"""
from __future__ import annotations

import shutil

from core.recovery import JobKind, register_job_kind


def _retry_run(run) -> None:
    from .services import simulation_run_enqueue

    simulation_run_enqueue(run=run, shards=run.shards_total or None)


def _run_failed(run) -> None:
    from .services import run_folder

    shutil.rmtree(run_folder(run) / "parts", ignore_errors=True)


def register() -> None:
    register_job_kind(JobKind(
        model="simulation.SimulationRun", name="simulation run",
        lost="no results were saved; start the run again",
        retry=_retry_run, requeue={"task_ids": [], "progress": 0.0, "shards_done": 0},
        ran_on_worker=lambda run: bool(run.task_ids), on_fail=_run_failed))
