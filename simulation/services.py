"""Everything that writes simulation runs: create, execute (in process or sharded), cancel.

A run is split into shards by trajectory number. Shard i runs trajectories
`chunk_i` of every agent and every repetition and writes one Parquet part file; a final step
merges the parts in a fixed order and computes the summary. Because the engine draws every
trajectory from its own seeded stream and its arithmetic does not depend on which other
trajectories share a batch, the merged table is identical, bit for bit, however the run is
split and whichever worker ran which shard (tests/simulation/test_runs.py checks it).

From the web, `simulation_run_enqueue` queues one start task (it computes or loads the pool
embeddings, which may take a while on a large pool) that launches a Celery chord: a group of
shard tasks, then the merge. The command line runs the same steps in process
(`simulation_run_execute`) with a progress bar.
"""
from __future__ import annotations

import math
import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Least
from django.utils import timezone

from annotation.models import Dataset
from core.jobs import JobStatus, job_claim, job_heartbeat
from core.lookup import lookup_by_id_or_name
from core.progress import Throttle

from . import results
from .agent_builders import (
    AgentSpecError,
    agent_provenance,
    agent_specs_resolve,
    agents_build,
)
from .embeddings import EmbeddingModelError, embedding_model_path, pool_embeddings
from .engine import Pool, blas_single_thread, run_study
from .models import CandidateMode, SimulationRun, SplitChoice
from .policies import POLICIES, PolicyError, make_policy
from .selectors import pool_claims, summary_records

#: Per-step rows a run may produce (agents x runs x trajectories x steps): the merge holds
#: them in memory, a few hundred bytes a row with the claim ids (about 3 GiB at the limit).
MAX_RESULT_ROWS = 10_000_000
DEFAULT_SHARDS = 4

ProgressCallback = Callable[[int, int], None]  # (trajectory-steps done, total)


class SimulationConfigError(ValueError):
    """A run that cannot be made: the message names the field, the value and what is accepted."""


class SimulationCancelled(Exception):
    """Raised inside a shard when the run's cancel was requested; the shard stops cleanly."""


# --- create ---------------------------------------------------------------------------------

def _positive_int(value: Any, field: str, *, minimum: int = 1) -> int:
    try:
        number = int(value)
        if isinstance(value, bool) or number != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise SimulationConfigError(f"field '{field}': value {value!r}: accepted: a whole number") from None
    if number < minimum:
        raise SimulationConfigError(f"field '{field}': value {value!r}: accepted: a whole number "
                                    f"of at least {minimum}")
    return number


def _dataset_of(dataset: Dataset | str | int) -> Dataset:
    if isinstance(dataset, Dataset):
        return dataset
    try:
        return lookup_by_id_or_name(Dataset.objects, dataset, kind="dataset")
    except Dataset.DoesNotExist as missing:
        raise SimulationConfigError(f"field 'dataset': value '{dataset}': no such dataset "
                                    f"(datasets: {missing.known})") from None


def simulation_run_create(
    *,
    name: str,
    dataset: Dataset | str | int,
    split: str,
    agents: list[dict],
    policy: str = "frameref",
    policy_params: dict | None = None,
    trajectories: int,
    steps: int,
    runs: int = 1,
    seed: int = 0,
    candidate_mode: str = CandidateMode.EXACT,
    user=None,
    decision: str | None = None,
) -> SimulationRun:
    """Checks everything a run needs up front and stores it, queued.

    Every problem (an unknown persona, a study without judgments, a probability outside
    [0, 1], more steps than the pool has base claims, ...) raises SimulationConfigError
    before anything is written, so a run that exists can execute.
    """
    if not isinstance(name, str) or not name.strip():
        raise SimulationConfigError(f"field 'name': value {name!r}: accepted: a non-empty text")
    dataset = _dataset_of(dataset)
    if split not in SplitChoice.values:
        raise SimulationConfigError(f"field 'split': value {split!r}: accepted: {', '.join(SplitChoice.values)}")
    trajectories = _positive_int(trajectories, "trajectories")
    steps = _positive_int(steps, "steps")
    runs = _positive_int(runs, "runs")
    seed = _positive_int(seed, "seed", minimum=0)
    if candidate_mode not in CandidateMode.values:
        raise SimulationConfigError(f"field 'candidate_mode': value {candidate_mode!r}: accepted: "
                                    f"{', '.join(CandidateMode.values)}")
    try:
        policy_object = make_policy(policy, policy_params or {})
    except PolicyError as exc:
        raise SimulationConfigError(f"field 'policy': {exc}") from None
    pool = pool_claims(dataset=dataset, split=split)
    if pool.empty:
        raise SimulationConfigError(f"field 'split': value '{split}': dataset '{dataset.name}' has no "
                                    "claims in that split")
    n_base = pool["base_id"].nunique()
    if steps > n_base:
        raise SimulationConfigError(
            f"field 'steps': value {steps}: a trajectory shows each base claim at most once and the "
            f"pool ('{dataset.name}', split {split}) has {n_base} base claims; accepted: at most {n_base}")
    try:
        embedding_model_path()
    except EmbeddingModelError as exc:
        raise SimulationConfigError(str(exc)) from None
    try:
        specs = agent_specs_resolve(agents, dataset=dataset, split=split, pool=pool, user=user,
                                    decision=decision)
    except AgentSpecError as exc:
        raise SimulationConfigError(str(exc)) from None
    rows = len(specs) * runs * trajectories * steps
    if rows > MAX_RESULT_ROWS:
        raise SimulationConfigError(
            f"this run would produce {rows:,} per-step rows ({len(specs)} agents x {runs} runs x "
            f"{trajectories} trajectories x {steps} steps); accepted: at most {MAX_RESULT_ROWS:,}. "
            "Use fewer trajectories or split it into several runs.")
    with transaction.atomic():
        return SimulationRun.objects.create(
            name=name.strip(), dataset=dataset, split=split, agents=specs, policy=policy,
            policy_params=_stored_policy_params(policy, policy_object), candidate_mode=candidate_mode,
            trajectories=trajectories, steps=steps, runs=runs, seed=seed,
            created_by=user if user is not None and user.is_authenticated else None,
        )


def _stored_policy_params(name: str, policy) -> dict:
    """Every parameter of the policy, defaults filled in, so the row says exactly what ran."""
    accepted = POLICIES[name][1]
    return {key: value for key, value in policy.parameters().items() if key in accepted}


# --- preparing the pool, agents and policy --------------------------------------------------

@dataclass
class Prepared:
    pool: Pool
    agents: list
    policy: Any
    index: Any
    embeddings_model: str
    embeddings_path: Path
    index_recall: dict | None = None


def simulation_prepare(*, run: SimulationRun, show_progress: bool = False,
                       progress: Callable[[int, int], None] | None = None) -> Prepared:
    """The engine's pool (claims and their embeddings), agents, policy and, if indexed, index."""
    frame = pool_claims(dataset=run.dataset, split=run.split)
    embeddings = pool_embeddings(
        dataset_id=run.dataset_id, dataset_name=run.dataset.name, split=run.split,
        claim_ids=frame["claim_id"].tolist(), texts=frame["text"].tolist(),
        show_progress=show_progress, progress=progress)
    pool = Pool.build(claim_ids=frame["claim_id"].to_numpy(), base_ids=frame["base_id"].to_numpy(),
                      true_labels=frame["true_label"].to_numpy(), embeddings=embeddings.vectors,
                      framings=frame["framing"].to_numpy(), normalise=False)
    agents = agents_build(run.agents, pool=frame)
    policy = make_policy(run.policy, run.policy_params)
    index = recall = None
    if run.candidate_mode == CandidateMode.INDEXED:
        from .index import IVFIndex, recall_queries, tune_probes

        # Built from the run's seed, so every shard builds the same index and measures the
        # same recall on the same contexts, so all probe the same lists; trajectories run
        # over the index's re-ordered copy of the pool (same claims, same canonical order).
        index = IVFIndex.build(pool, seed=run.seed)
        queries = recall_queries(index.pool, min(200, index.pool.size), seed=run.seed)
        index, recall = tune_probes(index, queries, k=int(run.policy_params.get("top_k", 5)),
                                    target=index_target_recall())
        pool = index.pool
    return Prepared(pool, agents, policy, index, embeddings.model, embeddings.path, recall)


def index_target_recall() -> float:
    """The SIMULATION_INDEX_TARGET_RECALL setting, checked."""
    target = getattr(settings, "SIMULATION_INDEX_TARGET_RECALL", 0.99)
    try:
        value = float(target)
    except (TypeError, ValueError):
        value = math.nan
    if not 0 < value <= 1:
        raise SimulationConfigError(f"setting SIMULATION_INDEX_TARGET_RECALL (FRAMELAB_SIM_TARGET_RECALL): "
                                    f"value {target!r}: accepted: a recall in (0, 1]")
    return value


def shard_chunks(trajectories: int, shards: int) -> list[list[int]]:
    """Trajectory numbers 0..trajectories-1 in `shards` contiguous, near-equal chunks."""
    shards = max(1, min(int(shards), trajectories))
    return [chunk.tolist() for chunk in np.array_split(np.arange(trajectories), shards)]


def run_folder(run: SimulationRun) -> Path:
    return Path(settings.MEDIA_ROOT) / "simulations" / str(run.pk)


def _part_path(run: SimulationRun, shard: int, total: int) -> Path:
    return run_folder(run) / "parts" / f"shard-{shard:05d}-of-{total:05d}.parquet"


def _provenance(run: SimulationRun, prepared: Prepared) -> dict:
    import importlib.metadata as metadata

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {
        # Indexed mode: lists, probes, the measured recall of the exact top-k (and among
        # false claims only), the target and each probe count tried (index.tune_probes).
        "index": prepared.index_recall,
        "pool": {"claims": prepared.pool.size, "base_claims": prepared.pool.n_base,
                 "false_claims": int((~prepared.pool.is_true).sum()),
                 "dataset": run.dataset.name, "split": run.split},
        "embeddings": {"model": prepared.embeddings_model,
                       "file": str(prepared.embeddings_path.relative_to(settings.MEDIA_ROOT))
                       if prepared.embeddings_path.is_relative_to(settings.MEDIA_ROOT)
                       else str(prepared.embeddings_path)},
        "policy": {"name": run.policy, **run.policy_params},
        "agents": agent_provenance(run.agents),
        "random_streams": "SeedSequence(seed, spawn_key=(run, trajectory)) per trajectory",
        "software": {"python": platform.python_version(), "numpy": version("numpy"),
                     "pandas": version("pandas"), "sentence-transformers": version("sentence-transformers")},
        "host": platform.node(),
    }


# --- running shards and merging -------------------------------------------------------------

def _total_steps(run: SimulationRun, n_trajectories: int | None = None) -> int:
    n = run.trajectories if n_trajectories is None else n_trajectories
    return len(run.agents) * run.runs * n * run.steps


def _shard_frame(run: SimulationRun, prepared: Prepared, trajectory_ids: list[int],
                 on_steps: Callable[[int], None]) -> pd.DataFrame:
    # Every (agent, run) advances together: one pass serves them all (several times less
    # CPU than one call per pair, identical rows). BLAS on one thread: each step's products
    # are small, and threads fighting over the cores of a busy worker made a demo-sized run
    # several times slower (measured: 20.5 s with OpenBLAS's default threads against 4.1 s).
    with blas_single_thread():
        batches = run_study(
            prepared.pool, prepared.agents, prepared.policy, runs=range(run.runs),
            trajectory_ids=trajectory_ids, steps=run.steps, seed=run.seed,
            candidate_mode=run.candidate_mode, index=prepared.index, progress=on_steps)
    frame = pd.concat([batch.to_frame(prepared.pool) for batch in batches], ignore_index=True)
    frame["agent"] = pd.Categorical(frame["agent"].astype(str), categories=[a.name for a in prepared.agents])
    return frame


def _write_parquet_atomically(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def simulation_shard_execute(*, run: SimulationRun, shard: int, shards_total: int,
                             trajectory_ids: list[int], prepared: Prepared | None = None,
                             progress: ProgressCallback | None = None,
                             attempt: int | None = None) -> dict:
    """Runs one shard and writes its part file; does nothing if the part exists (a retry).

    Checks for a cancel before it starts and about once a second while it runs. A shard of
    an earlier `attempt` of the run (one whose worker died and that was started again) does
    nothing.
    """
    part = _part_path(run, shard, shards_total)
    if part.exists():
        return {"shard": shard, "skipped": True}
    state = (SimulationRun.objects.filter(pk=run.pk)
             .values("cancel_requested", "status", "attempts").first())
    if state is None or state["cancel_requested"] or state["status"] != JobStatus.RUNNING:
        return {"shard": shard, "skipped": True, "status": state and state["status"]}
    if attempt is not None and state["attempts"] != attempt:
        return {"shard": shard, "skipped": True, "stale_attempt": attempt}
    prepared = prepared or simulation_prepare(run=run)
    total = _total_steps(run)
    pending = 0
    throttle = Throttle(wait_first=True)

    def on_steps(n: int) -> None:
        nonlocal pending
        pending += n
        if progress is not None:
            progress(n, total)
        if throttle.due():
            _add_progress(run, pending / total)
            pending = 0
            if SimulationRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
                raise SimulationCancelled()

    try:
        frame = _shard_frame(run, prepared, trajectory_ids, on_steps)
    except SimulationCancelled:
        return {"shard": shard, "cancelled": True}
    _write_parquet_atomically(frame, part)
    _add_progress(run, pending / total)
    done = sum(1 for _ in part.parent.glob("shard-*-of-*.parquet"))
    # Counting files, not incrementing, keeps the count right when a shard runs twice.
    SimulationRun.objects.filter(pk=run.pk, shards_done__lt=done).update(shards_done=min(done, shards_total))
    return {"shard": shard, "rows": len(frame)}


def _add_progress(run: SimulationRun, fraction: float) -> None:
    if fraction > 0:
        SimulationRun.objects.filter(pk=run.pk, status=JobStatus.RUNNING).update(
            progress=Least(F("progress") + Value(min(fraction, 1.0)), Value(0.99)),
            heartbeat=timezone.now())


def simulation_run_start(*, run: SimulationRun, shards: int, show_progress: bool = False) -> list[list[int]] | None:
    """Claims a queued run (queued -> running), makes sure its embeddings exist and records
    its provenance; returns the trajectory chunks, or None if the run was not queued."""
    started = _start(run=run, shards=shards, show_progress=show_progress)
    return None if started is None else started[0]


def _start(*, run: SimulationRun, shards: int, show_progress: bool) -> tuple[list[list[int]], Prepared] | None:
    chunks = shard_chunks(run.trajectories, shards)
    # A start redelivered after its worker died takes the run over once its lease expired.
    claimed = job_claim(SimulationRun.objects.filter(cancel_requested=False), run.pk,
                        take_expired=True, shards_total=len(chunks), shards_done=0, progress=0.0)
    if not claimed:
        return None
    run.refresh_from_db()
    try:
        prepared = simulation_prepare(run=run, show_progress=show_progress)
    except Exception as exc:
        simulation_run_fail(run=run, error=describe_failure(exc))
        raise
    SimulationRun.objects.filter(pk=run.pk).update(provenance=_provenance(run, prepared))
    shutil.rmtree(run_folder(run) / "parts", ignore_errors=True)
    return chunks, prepared


def simulation_run_finalize(*, run: SimulationRun, attempt: int | None = None) -> SimulationRun:
    """Merges the shards' parts into the run's per-step table, summarises it, marks it done.

    The merge of an earlier `attempt` of the run (started again after its worker died) does
    nothing: the run's current shards are not done."""
    run.refresh_from_db()
    if attempt is not None and run.attempts != attempt:
        return run
    if run.status != JobStatus.RUNNING or run.cancel_requested:
        if run.cancel_requested:
            shutil.rmtree(run_folder(run) / "parts", ignore_errors=True)
        return run
    parts = [_part_path(run, shard, run.shards_total) for shard in range(run.shards_total)]
    missing = [p.name for p in parts if not p.exists()]
    if missing:
        simulation_run_fail(run=run, error=f"{len(missing)} of {run.shards_total} shards wrote no results "
                                           f"(first: {missing[0]}); run it again")
        run.refresh_from_db()
        return run
    frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    agent_names = [spec["name"] for spec in run.agents]
    frame["agent"] = pd.Categorical(frame["agent"].astype(str), categories=agent_names)
    frame = frame.sort_values(["agent", "run", "trajectory", "step"], kind="stable").reset_index(drop=True)
    target = run_folder(run) / "steps.parquet"
    _write_parquet_atomically(frame, target)
    summary = run_summary(frame, agent_names=agent_names, seed=run.seed)
    SimulationRun.objects.filter(pk=run.pk, status=JobStatus.RUNNING).update(
        status=JobStatus.SUCCEEDED, progress=1.0, results_path=str(target.relative_to(settings.MEDIA_ROOT)),
        summary=summary, finished=timezone.now(), shards_done=run.shards_total)
    shutil.rmtree(run_folder(run) / "parts", ignore_errors=True)
    run.refresh_from_db()
    return run


def run_summary(frame: pd.DataFrame, *, agent_names: list[str], seed: int) -> dict:
    """The report's tables, computed once by simulation/results.py and stored as JSON records.

    agents: per agent, mean_IH (intervals over trajectories), final H, P(correct), confidence
    when correct and wrong and their gap, true and false claims encountered per trajectory;
    differences: every other agent minus the first one (the run's baseline), seeded paired
    bootstrap; curves: per step and agent, mean H_t and H_t / t with 95% intervals. Under
    "frameref", the same three tables by FrameRef's notebook conventions
    (`simulation.results`: mean_IH over T - 1, H_t / (t - 1), claims per run, confidence
    averaged per run), so the report can show either without reading the steps again.
    """
    out = {"baseline": agent_names[0], "conventions": "platform"}
    for conventions in results.CONVENTIONS:
        agents = results.per_agent(frame, conventions=conventions)
        agents["agent"] = agents["agent"].astype(str)
        differences = (results.agent_differences(frame, baseline=agent_names[0], seed=seed,
                                                 conventions=conventions)
                       if len(agent_names) > 1 else pd.DataFrame())
        curves = results.per_step(frame, conventions=conventions)
        curves["agent"] = curves["agent"].astype(str)
        tables = {"agents": agents.to_dict("records"), "differences": differences.to_dict("records"),
                  "curves": curves.to_dict("records")}
        if conventions == "platform":
            out.update(tables)
        else:
            out[conventions] = tables
    return _json_safe(out)


def summary_table(run: SimulationRun, name: str, conventions: str = "platform") -> pd.DataFrame:
    """One of the stored summary tables ("agents", "differences", "curves") as a DataFrame,
    by the platform's conventions or FrameRef's ("frameref")."""
    return pd.DataFrame.from_records(summary_records(run, name, conventions))


def results_file(run: SimulationRun) -> Path:
    return Path(settings.MEDIA_ROOT) / run.results_path


def _json_safe(value):
    """NaN and infinities become None; numpy scalars become Python numbers (JSONField)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def describe_failure(exc: Exception) -> str:
    if isinstance(exc, (SimulationConfigError, AgentSpecError, EmbeddingModelError, PolicyError)):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def simulation_run_fail(*, run: SimulationRun, error: str) -> None:
    SimulationRun.objects.filter(pk=run.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        status=JobStatus.FAILED, error=error, finished=timezone.now())


def simulation_run_execute(*, run: SimulationRun, progress: ProgressCallback | None = None,
                           show_progress: bool = False) -> SimulationRun:
    """Runs a queued run in this process (the `simulate` command), start to finish."""
    run.refresh_from_db()
    if run.status != JobStatus.QUEUED:
        raise SimulationConfigError(f"run {run.pk} is {run.status}, not queued; create a new run to run it again")
    with job_heartbeat(SimulationRun.objects, run.pk):
        started = _start(run=run, shards=1, show_progress=show_progress)
        if started is None:
            run.refresh_from_db()
            return run
        chunks, prepared = started
        try:
            simulation_shard_execute(run=run, shard=0, shards_total=1, trajectory_ids=chunks[0],
                                     prepared=prepared, progress=progress)
            return simulation_run_finalize(run=run)
        except Exception as exc:
            simulation_run_fail(run=run, error=describe_failure(exc))
            raise


# --- Celery ---------------------------------------------------------------------------------

def simulation_run_enqueue(*, run: SimulationRun, shards: int | None = None) -> None:
    """Queues the run for the workers, after the transaction that made it commits."""
    shards = DEFAULT_SHARDS if shards is None else _positive_int(shards, "shards")

    def send() -> None:
        from .tasks import start_simulation_run

        result = start_simulation_run.apply_async(args=[run.pk, shards])
        SimulationRun.objects.filter(pk=run.pk, task_ids=[]).update(task_ids=[result.id] if result.id else [])

    transaction.on_commit(send)


def simulation_run_cancel(*, run: SimulationRun) -> SimulationRun:
    """Stops a queued or running run: shards not yet started do nothing, running ones stop
    within about a second, and the merge never happens. A finished run is left as it is."""
    with transaction.atomic():
        updated = SimulationRun.objects.filter(
            pk=run.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]
        ).update(cancel_requested=True, status=JobStatus.CANCELLED, finished=timezone.now())
    if updated:
        # A shard still running may write its part after this; the merge, which would be
        # the only reader, checks the flag and removes the folder instead.
        shutil.rmtree(run_folder(run) / "parts", ignore_errors=True)
    run.refresh_from_db()
    return run
