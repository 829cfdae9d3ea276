"""A simulation started as Celery tasks runs on a real worker process: the start task, a chord
of trajectory shards and the merge; its results equal an in-process run of the same spec."""
import time

import pandas as pd
from django.core.management import call_command

from annotation.models import Dataset
from simulation.embeddings import pool_embeddings
from simulation.models import SimulationRun
from simulation.selectors import pool_claims
from simulation.services import (
    results_file,
    simulation_run_create,
    simulation_run_enqueue,
    simulation_run_execute,
)

AGENTS = [
    {"kind": "parametric", "name": "credulous", "accept": {"SUPPORTS": 0.9, "REFUTES": 0.7}, "confidence": 0.8},
    {"kind": "oracle"},
]


def wait_for_run(run_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = SimulationRun.objects.get(pk=run_id)
        if run.is_finished:
            return run
        time.sleep(0.25)
    raise AssertionError(f"simulation {run_id} still {run.status} after {timeout} s")


def test_sharded_run_on_a_worker_equals_the_in_process_run(celery_worker_process):
    call_command("load_demo", no_user=True)
    dataset = Dataset.objects.get(name="FrameLab demo")
    # The pool's embeddings are cached in the shared artifact store first, as a web process or
    # an earlier run leaves them; the worker then reads the file instead of loading the model.
    pool = pool_claims(dataset=dataset, split="test")
    pool_embeddings(dataset_id=dataset.pk, dataset_name=dataset.name, split="test",
                    claim_ids=pool["claim_id"].tolist(), texts=pool["text"].tolist())

    def create(name):
        return simulation_run_create(name=name, dataset=dataset, split="test", agents=AGENTS,
                                     trajectories=9, steps=5, runs=2, seed=21)

    on_worker = create("on the worker")
    simulation_run_enqueue(run=on_worker, shards=3)  # autocommit: sent at once
    in_process = simulation_run_execute(run=create("in process"))

    on_worker = wait_for_run(on_worker.pk)
    assert on_worker.status == "succeeded", on_worker.error
    assert on_worker.shards_total == on_worker.shards_done == 3 and on_worker.progress == 1.0
    assert on_worker.task_ids and on_worker.started and on_worker.finished
    pd.testing.assert_frame_equal(pd.read_parquet(results_file(on_worker)), pd.read_parquet(results_file(in_process)))
    assert on_worker.summary == in_process.summary
