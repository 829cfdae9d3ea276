"""Celery tasks of simulation runs: thin wrappers that load a run by id and call a service.

`start_simulation_run` claims the run, makes sure the pool's embeddings are cached and then
launches a chord: one `simulation_shard` per chunk of trajectory numbers, on any number of
workers, then `finish_simulation_run`, which merges the parts. Every task is idempotent: a
start of a run that is not queued (or running with an expired lease) does nothing, a shard whose part file exists does nothing,
and a merge of a run that is not running does nothing.
"""
from __future__ import annotations

from celery import chord, shared_task

from core.jobs import job_heartbeat

from .models import SimulationRun
from .services import (
    describe_failure,
    simulation_run_fail,
    simulation_run_finalize,
    simulation_run_start,
    simulation_shard_execute,
)


@shared_task(name="simulation.start_run")
def start_simulation_run(run_id: int, shards: int) -> dict:
    run = SimulationRun.objects.filter(pk=run_id).select_related("dataset").first()
    if run is None:
        return {"status": "missing", "skipped": True}
    # Every task of a run renews the run's lease while it works (core/jobs.py, docs/jobs.md).
    with job_heartbeat(SimulationRun.objects, run_id):
        chunks = simulation_run_start(run=run, shards=shards)
    if chunks is None:
        return {"status": run.status, "skipped": True}
    # The attempt rides along: a shard or merge left from an attempt whose worker died does
    # nothing once the run was started again (core/recovery.py).
    attempt = SimulationRun.objects.values_list("attempts", flat=True).get(pk=run_id)
    shard_tasks = [simulation_shard.si(run_id, index, len(chunks), chunk, attempt)
                   for index, chunk in enumerate(chunks)]
    result = chord(shard_tasks)(finish_simulation_run.si(run_id, attempt))
    ids = [result.id] + [child.id for child in (result.parent.results if result.parent else [])]
    SimulationRun.objects.filter(pk=run_id).update(task_ids=[*run.task_ids, *[i for i in ids if i]])
    return {"status": "running", "shards": len(chunks)}


@shared_task(name="simulation.shard")
def simulation_shard(run_id: int, shard: int, shards_total: int, trajectory_ids: list[int],
                     attempt: int | None = None) -> dict:
    run = SimulationRun.objects.filter(pk=run_id).select_related("dataset").first()
    if run is None:
        return {"status": "missing", "skipped": True}
    try:
        with job_heartbeat(SimulationRun.objects, run_id):
            return simulation_shard_execute(run=run, shard=shard, shards_total=shards_total,
                                            trajectory_ids=trajectory_ids, attempt=attempt)
    except Exception as exc:
        # The chord's merge will not run after a failed shard: record why on the run.
        simulation_run_fail(run=run, error=f"shard {shard + 1} of {shards_total}: {describe_failure(exc)}")
        raise


@shared_task(name="simulation.finish_run")
def finish_simulation_run(run_id: int, attempt: int | None = None) -> dict:
    run = SimulationRun.objects.filter(pk=run_id).select_related("dataset").first()
    if run is None:
        return {"status": "missing", "skipped": True}
    try:
        with job_heartbeat(SimulationRun.objects, run_id):
            run = simulation_run_finalize(run=run, attempt=attempt)
    except Exception as exc:
        simulation_run_fail(run=run, error=describe_failure(exc))
        raise
    return {"status": run.status}
