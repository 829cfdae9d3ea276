"""Simulation runs through the services: validation up front, an end-to-end run on the demo
dataset with the real MiniLM embeddings, sharded Celery execution identical to in-process
execution, idempotent shards, cancel and failure."""
import io
import re

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from annotation.models import Dataset
from simulation.models import SimulationRun
from simulation.services import (
    SimulationConfigError,
    results_file,
    shard_chunks,
    simulation_run_cancel,
    simulation_run_create,
    simulation_run_enqueue,
    simulation_run_execute,
    simulation_run_finalize,
    simulation_run_start,
    simulation_shard_execute,
    summary_table,
)

pytestmark = pytest.mark.django_db

AGENTS = [
    {"kind": "parametric", "name": "credulous", "accept": {"SUPPORTS": 0.9, "REFUTES": 0.7}, "confidence": 0.8},
    {"kind": "parametric", "name": "sceptical", "accept": {"SUPPORTS": 0.6, "REFUTES": 0.2},
     "confidence": [1, 2, 4, 2, 1]},
    {"kind": "oracle"},
]


@pytest.fixture
def demo(media_root):
    call_command("load_demo", no_user=True)
    return Dataset.objects.get(name="FrameLab demo")


def make_run(dataset, /, **overrides):
    options = dict(name="demo run", dataset=dataset, split="test", agents=AGENTS, policy="frameref",
                   policy_params={}, trajectories=12, steps=5, runs=2, seed=11)
    options.update(overrides)
    return simulation_run_create(**options)


def test_a_run_executes_end_to_end_on_the_demo_dataset(demo):
    run = make_run(demo)
    assert run.status == "queued" and run.policy_params == {
        "window": 3, "top_k": 5, "temperature": 0.1, "reinforce_false": True, "false_weight": 1.0}
    done = []
    run = simulation_run_execute(run=run, progress=lambda n, total: done.append((n, total)))
    assert run.status == "succeeded", run.error
    assert run.progress == 1.0 and run.shards_done == run.shards_total == 1
    assert sum(n for n, _ in done) == done[0][1] == 3 * 2 * 12 * 5

    steps = pd.read_parquet(results_file(run))
    assert len(steps) == 3 * 2 * 12 * 5
    assert {"agent", "run", "trajectory", "step", "claim_id", "true_label", "accepted", "confidence",
            "reward", "H"} <= set(steps.columns)
    assert list(steps["agent"].cat.categories) == ["credulous", "sceptical", "oracle"]
    # H is the running sum of rewards, and a trajectory never shows two framings of a claim.
    for _, trajectory in steps.groupby(["agent", "run", "trajectory"], observed=True):
        np.testing.assert_allclose(trajectory["H"].to_numpy(), np.cumsum(trajectory["reward"].to_numpy()))
        assert trajectory["base_id"].is_unique
    pool_ids = set(steps["claim_id"])
    assert all(":" in c for c in pool_ids)

    agents = summary_table(run, "agents").set_index("agent")
    # The oracle is right at every step with confidence 1: H_t = t, mean_IH = (T + 1) / 2.
    assert agents.loc["oracle", "mean_IH"] == pytest.approx(3.0)
    assert agents.loc["oracle", "p_correct"] == 1.0
    assert agents.loc["credulous", "mean_IH"] < 3.0
    assert set(steps.loc[steps["agent"] == "sceptical", "confidence"]) <= {0.5, 0.625, 0.75, 0.875, 1.0}
    assert (agents["true_claims"] + agents["false_claims"]).tolist() == [5.0, 5.0, 5.0]
    differences = summary_table(run, "differences")
    assert set(differences["agent"]) == {"sceptical", "oracle"} and set(differences["baseline"]) == {"credulous"}
    oracle_gain = differences[(differences["agent"] == "oracle") & (differences["metric"] == "mean_IH")].iloc[0]
    assert oracle_gain["low"] <= oracle_gain["difference"] <= oracle_gain["high"] and oracle_gain["low"] > 0
    curves = summary_table(run, "curves")
    assert len(curves) == 3 * 5
    oracle_curve = curves[curves["agent"] == "oracle"]
    assert oracle_curve["mean_H_per_step"].tolist() == [1.0] * 5
    assert run.provenance["pool"] == {"claims": 36, "base_claims": 6, "false_claims": 18,
                                      "dataset": "FrameLab demo", "split": "test"}
    assert run.provenance["embeddings"]["model"].startswith("all-MiniLM-L6-v2")


def test_sharded_celery_execution_equals_in_process_execution(demo, django_capture_on_commit_callbacks):
    in_process = simulation_run_execute(run=make_run(demo, name="one process"))
    sharded = make_run(demo, name="sharded")
    with django_capture_on_commit_callbacks(execute=True):
        simulation_run_enqueue(run=sharded, shards=5)
    sharded.refresh_from_db()
    assert sharded.status == "succeeded", sharded.error
    assert sharded.shards_total == sharded.shards_done == 5
    pd.testing.assert_frame_equal(pd.read_parquet(results_file(in_process)), pd.read_parquet(results_file(sharded)))
    assert sharded.summary == in_process.summary
    assert not (results_file(sharded).parent / "parts").exists()

    other_seed = simulation_run_execute(run=make_run(demo, name="other seed", seed=12))
    assert not pd.read_parquet(results_file(other_seed))["claim_id"].equals(
        pd.read_parquet(results_file(in_process))["claim_id"])


def test_a_shard_that_runs_twice_writes_once(demo):
    run = make_run(demo, trajectories=4, runs=1)
    chunks = simulation_run_start(run=run, shards=2)
    assert chunks == [[0, 1], [2, 3]] and simulation_run_start(run=run, shards=2) is None
    first = simulation_shard_execute(run=run, shard=0, shards_total=2, trajectory_ids=chunks[0])
    assert first["rows"] == 3 * 2 * 5
    assert simulation_shard_execute(run=run, shard=0, shards_total=2, trajectory_ids=chunks[0])["skipped"]
    run.refresh_from_db()
    assert run.shards_done == 1 and 0 < run.progress < 1
    assert simulation_run_finalize(run=run).status == "failed"
    assert "1 of 2 shards wrote no results (first: shard-00001-of-00002.parquet)" in run.error


def test_cancel_stops_pending_shards_and_the_merge(demo, django_capture_on_commit_callbacks):
    run = make_run(demo, trajectories=6, runs=1)
    chunks = simulation_run_start(run=run, shards=3)
    simulation_shard_execute(run=run, shard=0, shards_total=3, trajectory_ids=chunks[0])
    run = simulation_run_cancel(run=run)
    assert run.status == "cancelled" and run.cancel_requested and run.finished is not None
    assert simulation_shard_execute(run=run, shard=1, shards_total=3, trajectory_ids=chunks[1])["skipped"]
    assert simulation_run_finalize(run=run).status == "cancelled"
    assert run.results_path == "" and not (results_file(run).parent / "parts").exists()

    queued = make_run(demo, name="cancelled while queued")
    simulation_run_cancel(run=queued)
    with django_capture_on_commit_callbacks(execute=True):
        simulation_run_enqueue(run=queued, shards=2)
    queued.refresh_from_db()
    assert queued.status == "cancelled" and queued.started is None

    finished = simulation_run_execute(run=make_run(demo, name="finished", trajectories=2))
    assert simulation_run_cancel(run=finished).status == "succeeded"
    with pytest.raises(SimulationConfigError, match=f"run {finished.pk} is succeeded, not queued"):
        simulation_run_execute(run=finished)


def test_a_run_that_fails_on_the_worker_records_why(demo):
    run = make_run(demo)
    # The agent specs are stored as they were resolved; a spec broken afterwards (say, a
    # score table removed) fails when the run executes, and says so on the run.
    SimulationRun.objects.filter(pk=run.pk).update(agents=[{"kind": "persona", "name": "gone", "persona": "gone",
                                                            "persona_id": 1, "normalised": False,
                                                            "score_tables": [{"id": 1, "split": "test",
                                                                              "path": "scores/gone.parquet"}]}])
    with pytest.raises(Exception):
        simulation_run_execute(run=run)
    run.refresh_from_db()
    assert run.status == "failed" and "gone.parquet: cannot be read as Parquet" in run.error


@pytest.mark.parametrize("overrides, message", [
    ({"name": " "}, r"field 'name': value ' ': accepted: a non-empty text"),
    ({"dataset": "nope"}, r"field 'dataset': value 'nope': no such dataset \(datasets: FrameLab demo\)"),
    ({"split": "validation"}, r"field 'split': value 'validation': accepted: test, dev, train, none, all"),
    ({"steps": 7}, r"field 'steps': value 7: .* has 6 base claims; accepted: at most 6"),
    ({"trajectories": 0}, r"field 'trajectories': value 0: accepted: a whole number of at least 1"),
    ({"runs": 1.5}, r"field 'runs': value 1.5: accepted: a whole number"),
    ({"seed": -1}, r"field 'seed': value -1: accepted: a whole number of at least 0"),
    ({"policy": "viral"}, r"field 'policy': unknown policy 'viral'; choose one of frameref"),
    ({"policy_params": {"top_k": "many"}}, r"field 'policy': policy 'frameref' parameter 'top_k': 'many' is not a int"),
    ({"candidate_mode": "fast"}, r"field 'candidate_mode': value 'fast': accepted: exact, indexed"),
    ({"agents": [{"kind": "oracle"}, {"kind": "parametric", "name": "p", "accept": {"SUPPORTS": 2, "REFUTES": 0}}]},
     r"agent 2 \('p'\): field 'accept.\*.SUPPORTS': value 2"),
    ({"trajectories": 10_000_000}, r"would produce 300,000,000 per-step rows"),
])
def test_a_bad_run_is_refused_before_anything_is_stored(demo, overrides, message):
    with pytest.raises(SimulationConfigError, match=message):
        make_run(demo, **overrides)
    assert not SimulationRun.objects.exists()


def test_shard_chunks_cover_every_trajectory_once():
    assert shard_chunks(10, 3) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert shard_chunks(2, 8) == [[0], [1]]
    assert sum(shard_chunks(1000, 7), []) == list(range(1000))


def test_simulate_command_creates_and_executes_a_run(demo):
    out = io.StringIO()
    call_command("simulate", dataset="FrameLab demo", split="test", trajectories=5, steps=4, runs=2, seed=3,
                 agent=["parametric:credulous:accept_true=0.9,accept_false=0.7,confidence=0.8", "oracle"],
                 no_progress=True, stdout=out)
    run = SimulationRun.objects.get()
    text = out.getvalue()
    assert f"simulation run {run.pk}: succeeded" in text and "per-step results: simulations/" in text
    assert re.search(r"oracle\s+2\.500", text)
    assert run.agents[0]["accept"] == {"*": {"SUPPORTS": 0.9, "REFUTES": 0.7}}
    assert run.name == "credulous vs oracle on FrameLab demo"
    # The same in FrameRef's notebook conventions: the oracle's H_t = t over T - 1 = 3 steps.
    out = io.StringIO()
    call_command("simulate", dataset="FrameLab demo", split="test", trajectories=5, steps=4, runs=2, seed=3,
                 agent=["oracle"], conventions="frameref", no_progress=True, stdout=out)
    assert "FrameRef's notebook conventions" in out.getvalue() and re.search(r"oracle\s+3\.333", out.getvalue())
    SimulationRun.objects.exclude(pk=run.pk).delete()

    with pytest.raises(CommandError, match=f"run {run.pk} is succeeded, not queued"):
        call_command("simulate", run=str(run.pk), no_progress=True)
    with pytest.raises(CommandError, match=r"agent 1 \('p'\): field 'accept.\*.REFUTES': value '1.3'"):
        call_command("simulate", dataset="FrameLab demo", agent=["parametric:p:accept_true=0.5,accept_false=1.3"],
                     trajectories=2, steps=2, no_progress=True)
    with pytest.raises(CommandError, match="--agent bot: unknown kind 'bot'"):
        call_command("simulate", dataset="FrameLab demo", agent=["bot"], trajectories=2, steps=2, no_progress=True)
    assert SimulationRun.objects.count() == 1


@pytest.mark.slow
def test_demo_simulation_is_created_once_and_finishes(demo):
    call_command("load_demo_simulation", trajectories=4, steps=6, runs=1)
    run = SimulationRun.objects.get()
    assert run.status == "succeeded" and run.split == "all"
    assert [a["name"] for a in run.agents] == ["sceptical", "credulous", "swayed by authority", "oracle"]
    agents = summary_table(run, "agents").set_index("agent")
    assert agents.loc["oracle", "mean_IH"] == pytest.approx(3.5)
    call_command("load_demo_simulation")
    assert SimulationRun.objects.count() == 1


def test_indexed_candidates_run_and_report_their_recall(demo):
    run = simulation_run_execute(run=make_run(demo, candidate_mode="indexed", trajectories=6, runs=1))
    assert run.status == "succeeded", run.error
    index = run.provenance["index"]
    assert index["lists"] >= 1 and 0.0 <= index["recall_at_top_k"] <= 1.0 and index["recall_queries"] == 36
    # The probes grew until the recall target (the setting, 0.99 by default) was met, over
    # the whole pool and among false claims only; each probe count tried is kept.
    assert index["target_recall"] == 0.99 and index["target_met"]
    assert min(index["recall_at_top_k"], index["recall_false_only"]) >= 0.99
    assert index["tried"][-1] == [index["probes"], index["recall_at_top_k"], index["recall_false_only"]]
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(get_user_model().objects.create_user("recall", password="x"))
    page = client.get(reverse("simulation:run-detail", args=[run.pk])).content.decode()
    assert (f"Indexed candidates: {index['lists']} lists, {index['probes']} probed" in page
            and f"measured recall of the exact top-5: <strong>{index['recall_at_top_k']:.3f}</strong>" in page
            and "(target 0.99: met)" in page)
    steps = pd.read_parquet(results_file(run))
    assert len(steps) == 3 * 6 * 5 and steps.groupby(["agent", "trajectory"], observed=True)["base_id"].nunique().eq(5).all()
