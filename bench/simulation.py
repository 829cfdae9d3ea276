"""Benchmark the simulation engine against FrameRef's loop (the reference), and at full scale.

Run from the repository root:

    .venv/bin/python bench/simulation.py [--part paper|full|scaling|workers|all] [--reference-trajectories 2]
                                       [--full-trajectories 10000] [--json PATH]
                                       [--worker-trajectories 3500] [--workers 2] [--worker-shards 4]
                                       [--worker-database postgres|sqlite]

Parts:
1. paper: FrameRef's setting, 100 trajectories x 100 steps x 3 runs for 7 agents (a baseline
   persona, five framing personas, a human-like rate agent) over a 107,374-claim synthetic
   pool (FrameRef's test split size) with 384-dimensional embeddings. The engine runs the
   whole study in indexed mode; exact mode runs one (agent, run) and is scaled to the study.
   The reference loop (``tests/simulation/frameref_reference.py``) runs
   ``--reference-trajectories`` trajectories on the same pool; its time for the study is that
   per-trajectory time times 2,100 trajectories: an EXTRAPOLATION, printed as such (the
   whole study would take hours). Also printed: mean_IH of exact vs indexed runs and the
   index's recall of the exact top-5.
2. full: 10,000 trajectories x 100 steps over the full 1,073,740-claim synthetic pool in
   indexed mode, in a child process so its peak memory (ru_maxrss) is its own: generation,
   index build, run time, trajectories/s, recall of the exact top-5.
3. scaling: run time against the number of trajectories and against the pool size.
5. recall: the index's recall of the exact top-5 (over the whole pool and among false claims
   only) on real text, the fact corpus (``make_fact_claims``'s claims in the six framings)
   embedded with the packaged MiniLM, beside a synthetic pool of the same size: with the
   default 3 probed lists and with the probes grown until 0.99 is met (``tune_probes``), the
   run time of 300 trajectories x 30 steps and the share of them identical to exact mode.
4. workers: the platform's own path, end to end, on a scratch database (PostgreSQL
   ``framelab_bench_simulation``, created and dropped, or SQLite in a temporary folder) and a
   temporary MEDIA_ROOT: migrate, load the demo dataset, cache its embeddings, create a run of
   four parametric agents with ``simulation_run_create`` and (a) execute it in this process
   (``simulation_run_execute``, as ``manage.py simulate`` does), then (b) enqueue a copy with
   ``simulation_run_enqueue(shards=4)`` to two real ``celery -A config worker`` processes (one
   task at a time each, queues default and models) with Redis as the broker (db 10) and result
   backend (db 11), timed from the enqueue until the merged run is stored, and (c) compare the
   two per-step Parquet tables (sorted; ``DataFrame.equals``): IDENTICAL or the first
   difference. One small untimed run on each side first, so neither timing pays first imports.
   Needs PostgreSQL (or --worker-database sqlite) and Redis on 127.0.0.1.

Targets (issue 6): paper study >= 500x faster than the reference; full run within 60 s and
under 4 GiB. Each is printed MET or NOT MET with the measured figure. The machine (CPU
count, load average, BLAS) is printed with the figures: on a shared machine the load
average says how much of it the benchmark had.
Benchmarks are not part of the test run; see bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]

from machine import cpu_model  # noqa: E402  (bench/machine.py)

from simulation.agent_builders import DEMO_PARAMETRIC_SPECS  # noqa: E402
from simulation.agents import ScoreAgent, parametric_agent  # noqa: E402
from simulation.engine import blas_single_thread, run_study, run_trajectories  # noqa: E402
from simulation.index import IVFIndex, measure_recall, recall_queries  # noqa: E402
from simulation.policies import make_policy  # noqa: E402
from simulation.synthetic_pool import (  # noqa: E402
    FRAMEREF_SIZE,
    FRAMINGS,
    persona_scores,
    synthetic_pool,
)
from tests.simulation.frameref_reference import NaturalDraws, reference_trajectory  # noqa: E402

PAPER_POOL = 107_374
FULL_POOL = FRAMEREF_SIZE
SCALING_POOLS = (10_737, 322_122)
GiB = 1024 ** 3


def machine() -> str:
    load = os.getloadavg()
    blas = ""
    try:
        config = np.show_config(mode="dicts")
        info = config["Build Dependencies"]["blas"]
        blas = f"{info.get('name')} {info.get('version')}"
    except Exception:
        pass
    return (f"{cpu_model()}, {os.cpu_count()} CPUs, load average "
            f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}, Python {platform.python_version()}, numpy "
            f"{np.__version__} ({blas}), OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def agents_for(pool):
    agents = [ScoreAgent("baseline", persona_scores(pool, competence=0.6, noise=1.2, seed=1))]
    for framing in FRAMINGS[1:]:
        agents.append(ScoreAgent(framing, persona_scores(pool, competence=0.6, noise=1.2, seed=1,
                                                         target_framing=framing, credulity=1.0)))
    agents.append(parametric_agent("human-like", true_acceptance=0.78,
                                   false_acceptance={"*": 0.35, "authoritative": 0.45, "consensus": 0.43},
                                   confidence=[0.05, 0.1, 0.25, 0.35, 0.25]))
    return agents


CPU = {}


def timed(fn, label=None):
    """``(value, wall seconds)``; the CPU seconds of the call are kept in ``CPU[label]``.

    On a shared machine the wall time depends on the neighbours; the CPU time of a
    single-threaded run (OPENBLAS_NUM_THREADS=1) is close to the wall time it would take
    on an idle core, so both are printed."""
    start, cpu = time.perf_counter(), time.process_time()
    value = fn()
    CPU[label] = time.process_time() - cpu
    return value, time.perf_counter() - start


def paper(args) -> dict:
    print(f"\n== 1. FrameRef's setting: 100 trajectories x 100 steps x 3 runs, 7 agents, {PAPER_POOL:,}-claim pool")
    pool, gen_s = timed(lambda: synthetic_pool(PAPER_POOL, seed=7))
    agents = agents_for(pool)
    policy = make_policy("frameref")
    index, index_s = timed(lambda: IVFIndex.build(pool, seed=0))
    print(f"pool generated in {gen_s:.1f} s; index ({index.n_lists} lists, {index.n_probe} probed) built in {index_s:.1f} s")

    def study():  # every (agent, run) advanced together, as the simulate command runs it
        return run_study(index.pool, agents, policy, runs=range(3), trajectory_ids=range(100), steps=100,
                         seed=2026, candidate_mode="indexed", index=index)

    batches, indexed_s = timed(study, 'indexed')
    exact_batch, exact_one_s = timed(lambda: run_trajectories(pool, agents[0], policy, trajectory_ids=range(100),
                                                              steps=100, seed=2026, run=0), 'exact')
    exact_study_s = exact_one_s * len(agents) * 3
    # The reference: FrameRef's loop, its own draws, the same pool and the baseline persona.
    labels = list(pool.true_labels)
    base_ids = list(pool.base)
    baseline = agents[0]

    def judge(claim, t):
        supports, confidence = baseline.judge(pool, np.array([claim]), np.zeros((1, 0)))
        return ("SUPPORTS" if supports[0] else "REFUTES"), float(confidence[0])

    ref_runs = []
    ref_start, ref_cpu = time.perf_counter(), time.process_time()
    for i in range(args.reference_trajectories):
        ref_runs.append(reference_trajectory(base_ids=base_ids, labels=labels, embeddings=pool.embeddings,
                                             judge=judge, draws=NaturalDraws(np.random.default_rng([5, i])),
                                             steps=100))
    ref_s = time.perf_counter() - ref_start
    CPU['reference'] = time.process_time() - ref_cpu
    ref_per_traj = ref_s / args.reference_trajectories
    ref_study_s = ref_per_traj * 100 * 3 * len(agents)
    ratio = ref_study_s / indexed_s
    # Agreement of indexed with exact mode (same seeds, same agent and run).
    indexed_baseline = batches[0]
    queries = recall_queries(index.pool, 200, seed=3)
    recall = measure_recall(index, queries, k=5)
    ih_exact = exact_batch.H.mean()
    ih_indexed = indexed_baseline.H.mean()
    se = np.sqrt(exact_batch.H.mean(axis=1).var(ddof=1) / 100 + indexed_baseline.H.mean(axis=1).var(ddof=1) / 100)
    trajectories = 100 * 3 * len(agents)
    cpu_ratio = CPU['reference'] / args.reference_trajectories * trajectories / CPU['indexed']
    print(f"engine, indexed, whole study ({trajectories:,} trajectories): {indexed_s:.1f} s "
          f"({trajectories / indexed_s:,.0f} trajectories/s), CPU {CPU['indexed']:.1f} s")
    print(f"engine, exact, one agent x one run: {exact_one_s:.1f} s -> whole study {exact_study_s:.0f} s (x21, scaled)")
    print(f"reference loop: {args.reference_trajectories} trajectories in {ref_s:.1f} s = {ref_per_traj:.1f} s each "
          f"-> whole study {ref_study_s / 3600:.1f} h (EXTRAPOLATED from {args.reference_trajectories} trajectories)")
    print(f"ratio reference / engine indexed: {ratio:,.0f}x  (target >= 500x: {'MET' if ratio >= 500 else 'NOT MET'})")
    print(f"ratio reference / engine exact:   {ref_study_s / exact_study_s:,.0f}x")
    print(f"same ratios in CPU seconds: indexed {cpu_ratio:,.0f}x, exact "
          f"{CPU['reference'] / args.reference_trajectories * trajectories / (CPU['exact'] * len(agents) * 3):,.0f}x")
    print(f"baseline mean_IH, exact {ih_exact:.3f} vs indexed {ih_indexed:.3f} (difference {ih_indexed - ih_exact:+.3f}, "
          f"standard error {se:.3f}); recall of the exact top-5: {recall:.3f}")
    for batch in batches[::3]:
        print(f"  {batch.agent:<16} run 0 mean_IH {batch.H.mean():7.3f}  P(correct) {batch.correct.mean():.3f}")
    return dict(pool=PAPER_POOL, generate_s=gen_s, index_s=index_s, n_lists=index.n_lists, n_probe=index.n_probe,
                engine_indexed_s=indexed_s, engine_exact_one_s=exact_one_s, engine_exact_study_s=exact_study_s,
                reference_trajectories=args.reference_trajectories, reference_s=ref_s,
                reference_study_s_extrapolated=ref_study_s, ratio_indexed=ratio, ratio_indexed_cpu=cpu_ratio,
                cpu_seconds=dict(CPU),
                ratio_exact=ref_study_s / exact_study_s, recall_at_5=recall, mean_IH_exact=ih_exact,
                mean_IH_indexed=ih_indexed)


def full_child(args) -> dict:
    pool, gen_s = timed(lambda: synthetic_pool(FULL_POOL, seed=11))
    index, index_s = timed(lambda: IVFIndex.build(pool, seed=0))
    del pool  # the index holds its own, list-ordered copy
    agent = parametric_agent("human-like", true_acceptance=0.78, false_acceptance=0.4,
                             confidence=[0.05, 0.1, 0.25, 0.35, 0.25])
    batch, run_s = timed(lambda: run_trajectories(index.pool, agent, make_policy("frameref"),
                                                  trajectory_ids=range(args.full_trajectories), steps=100,
                                                  seed=2026, candidate_mode="indexed", index=index), 'full')
    queries = recall_queries(index.pool, 200, seed=3)
    recall = measure_recall(index, queries, k=5)
    return dict(pool=FULL_POOL, trajectories=args.full_trajectories, generate_s=gen_s, index_s=index_s,
                n_lists=index.n_lists, n_probe=index.n_probe, run_s=run_s, run_cpu_s=CPU['full'],
                trajectories_per_s=args.full_trajectories / run_s, peak_rss_bytes=peak_rss_bytes(),
                recall_at_5=recall, mean_IH=float(batch.H.mean()))


def full(args) -> dict:
    print(f"\n== 2. {args.full_trajectories:,} trajectories x 100 steps over {FULL_POOL:,} claims, indexed "
          f"(child process)")
    child = subprocess.run([sys.executable, __file__, "--part", "full-child", "--full-trajectories",
                            str(args.full_trajectories)] + (["--quick"] if args.quick else []),
                           capture_output=True, text=True)
    if child.returncode != 0:
        print(child.stdout, child.stderr)
        raise SystemExit("the full-scale child process failed")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    peak = result["peak_rss_bytes"] / GiB
    print(f"pool generated in {result['generate_s']:.1f} s; index ({result['n_lists']} lists, {result['n_probe']} "
          f"probed) built in {result['index_s']:.1f} s")
    print(f"run: {result['run_s']:.1f} s, {result['trajectories_per_s']:,.0f} trajectories/s, CPU "
          f"{result['run_cpu_s']:.1f} s (target within 60 s: {'MET' if result['run_s'] <= 60 else 'NOT MET'})")
    print(f"peak memory of the process (generation and index build included): {peak:.2f} GiB "
          f"(target under 4 GiB: {'MET' if peak < 4 else 'NOT MET'})")
    print(f"recall of the exact top-5: {result['recall_at_5']:.3f}; mean_IH {result['mean_IH']:.3f}")
    return result


def scaling(args) -> dict:
    print("\n== 3. Scaling (indexed mode, 100 steps, one agent)")
    rows = []
    agent = parametric_agent("human-like", true_acceptance=0.78, false_acceptance=0.4, confidence=0.75)
    policy = make_policy("frameref")
    pool = synthetic_pool(PAPER_POOL, seed=7)
    index = IVFIndex.build(pool, seed=0)
    for n in (100, 400, 1600):
        _, seconds = timed(lambda: run_trajectories(index.pool, agent, policy, trajectory_ids=range(n), steps=100,
                                                    seed=1, candidate_mode="indexed", index=index), 's')
        rows.append(dict(pool=PAPER_POOL, trajectories=n, seconds=seconds, cpu_seconds=CPU['s']))
    for size in SCALING_POOLS:
        p = synthetic_pool(size, seed=7)
        ix = IVFIndex.build(p, seed=0)
        del p
        _, seconds = timed(lambda: run_trajectories(ix.pool, agent, policy, trajectory_ids=range(400), steps=100,
                                                    seed=1, candidate_mode="indexed", index=ix), 's')
        rows.append(dict(pool=size, trajectories=400, seconds=seconds, cpu_seconds=CPU['s']))
    print(f"{'pool':>10} {'trajectories':>13} {'seconds':>9} {'CPU s':>8} {'trajectories/s':>15}")
    for row in sorted(rows, key=lambda r: (r["pool"], r["trajectories"])):
        print(f"{row['pool']:>10,} {row['trajectories']:>13,} {row['seconds']:>9.1f} {row['cpu_seconds']:>8.1f} "
              f"{row['trajectories'] / row['seconds']:>15,.0f}")
    return dict(rows=rows)


# --- 5. indexed recall on real text beside a synthetic pool ---------------------------------------

def fact_pool(base_claims: int | None, cache: Path | None):
    """The fact corpus (annotation/claims/facts.py, as `make_fact_claims` writes it), each base
    claim in the six framings of the template framer, embedded with the packaged MiniLM
    (simulation/embeddings.py). Returns (pool, model label, embedding seconds or None if the
    embeddings came from `cache`)."""
    from annotation.claims.facts import FactBase, generate_base_claims
    from annotation.claims.framer import frame_claim
    from simulation.embeddings import encode_texts, model_label, packaged_model_path
    from simulation.engine import Pool

    claims = generate_base_claims(FactBase.load(), seed=0, base_claims=base_claims)
    rows = [(f"{c.base_id}:{r.framing}", c.base_id, c.true_label, r.framing, r.text)
            for c in claims for r in frame_claim(c.base_id, c.text, seed=0)]
    ids, bases, labels, framings, texts = (list(column) for column in zip(*rows))
    model = packaged_model_path()
    seconds = None
    if cache is not None and cache.exists() and np.load(cache, mmap_mode="r").shape[0] == len(texts):
        vectors = np.load(cache)
    else:
        start = time.perf_counter()
        vectors = encode_texts(texts, model=model, show_progress=True)
        seconds = time.perf_counter() - start
        if cache is not None:
            np.save(cache, vectors)
    pool = Pool.build(claim_ids=ids, base_ids=bases, true_labels=labels, embeddings=vectors, framings=framings)
    return pool, model_label(model.resolve()), seconds


def recall_part(args) -> dict:
    """Recall of the exact top-5 and run time, default probes vs tuned to 0.99, on the fact
    corpus with MiniLM embeddings and on a synthetic pool of the same size."""
    from simulation.index import DEFAULT_TARGET_RECALL, tune_probes

    print("\n== 5. Indexed candidates: recall of the exact top-5 on real text and on a synthetic pool")
    try:
        real, model, embed_s = fact_pool(args.recall_base_claims, Path(args.recall_cache) if args.recall_cache else None)
    except Exception as exc:  # a fact package or the embedding model is not installed
        print(f"real-text pool unavailable ({type(exc).__name__}: {exc}); synthetic pool only")
        real, model, embed_s = None, None, None
    size = real.size if real is not None else 30_000
    pools = {"synthetic (topic clusters)": (synthetic_pool(size, seed=7), "synthetic, 384-d")}
    if real is not None:
        pools = {"fact corpus (real text)": (real, model), **pools}
        print(f"fact corpus: {real.size:,} framed claims of {real.n_base:,} base claims; embeddings {model}"
              + (f", computed in {embed_s:.0f} s" if embed_s is not None else ", from the cache"))
    agent = parametric_agent("human-like", true_acceptance=0.78, false_acceptance=0.4, confidence=0.75)
    policy = make_policy("frameref")
    trajectories, steps = args.recall_trajectories, 30
    out = {}
    print(f"{'pool':<28} {'claims':>8} {'lists':>6} {'probes':>7} {'recall':>7} {'false-only':>10} "
          f"{'run s':>7} {'same as exact':>14}")
    for name, (pool, embedding) in pools.items():
        exact, exact_s = timed(lambda: run_trajectories(pool, agent, policy, trajectory_ids=range(trajectories),
                                                        steps=steps, seed=4), "exact")
        index, index_s = timed(lambda: IVFIndex.build(pool, seed=0))
        queries = recall_queries(index.pool, 200, seed=3)
        rows = {}
        tuned, report = tune_probes(index, queries, k=5, target=DEFAULT_TARGET_RECALL)
        for label, ix, recall, recall_false in (
                ("default", index, report["tried"][0][1], report["tried"][0][2]),
                ("tuned", tuned, report["recall_at_top_k"], report["recall_false_only"])):
            batch, run_s = timed(lambda: run_trajectories(ix.pool, agent, policy, trajectory_ids=range(trajectories),
                                                          steps=steps, seed=4, candidate_mode="indexed", index=ix), label)
            same = float((pool.claim_ids[exact.claim] == ix.pool.claim_ids[batch.claim]).all(axis=1).mean())
            rows[label] = dict(probes=ix.n_probe, recall_at_5=recall, recall_false_only=recall_false,
                               run_s=run_s, same_trajectories=same)
            print(f"{name:<28} {pool.size:>8,} {ix.n_lists:>6} {ix.n_probe:>7} {recall:>7.3f} {recall_false:>10.3f} "
                  f"{run_s:>7.2f} {same:>14.1%}")
        print(f"{'':<28} exact mode: {exact_s:.2f} s for {trajectories} trajectories x {steps} steps; "
              f"index built in {index_s:.1f} s; probes tried (probes, recall, false-only): "
              + ", ".join(f"{p}: {a:.3f}/{b:.3f}" for p, a, b in report["tried"]))
        out[name] = dict(claims=pool.size, embedding=embedding, lists=index.n_lists, exact_s=exact_s,
                         index_s=index_s, tried=report["tried"], **rows)
    return out


# --- 4. the same run on two real Celery workers -----------------------------------------------

WORKER_DATABASE = "framelab_bench_simulation"
WORKER_TRAJECTORIES = 3_500
WORKER_AGENTS = [  # the demo run's three parametric agents and a human-like one
    *DEMO_PARAMETRIC_SPECS,
    {"kind": "parametric", "name": "human-like", "accept": {"SUPPORTS": 0.78, "REFUTES": 0.4},
     "confidence": [0.05, 0.1, 0.25, 0.35, 0.25]},
]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc), children not included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def shards_done_by_worker(logs: list[Path]) -> list[int]:
    """How many shard tasks each worker has finished, from its log."""
    return [sum(1 for line in log.read_text().splitlines() if "simulation.shard[" in line and "succeeded" in line)
            for log in logs]


def first_difference(a, b) -> str | None:
    """None if the two per-step tables are equal; else where they first differ."""

    if list(a.columns) != list(b.columns):
        return f"columns differ: {list(a.columns)} vs {list(b.columns)}"
    if len(a) != len(b):
        return f"row counts differ: {len(a):,} (in process) vs {len(b):,} (workers)"
    if a.equals(b):
        return None
    for column in a.columns:
        x, y = a[column], b[column]
        if x.dtype != y.dtype:
            return f"column {column!r}: dtype {x.dtype} vs {y.dtype}"
        same = (x.astype(object).to_numpy() == y.astype(object).to_numpy()) | (x.isna().to_numpy() & y.isna().to_numpy())
        if not same.all():
            row = int(np.flatnonzero(~same)[0])
            key = a.loc[row, ["agent", "run", "trajectory", "step"]].to_dict()
            ours, theirs = (v.item() if isinstance(v, np.generic) else v for v in (x.iloc[row], y.iloc[row]))
            key = {k: v.item() if isinstance(v, np.generic) else v for k, v in key.items()}
            return f"column {column!r}, row {row:,} ({key}): {ours!r} (in process) vs {theirs!r} (workers)"
    return "the tables differ in their index or metadata (pandas .equals is False, every value equal)"


def workers(args) -> dict:
    """Part 4: one run executed in this process, and a copy of it sharded over two real Celery
    worker processes (Redis broker, PostgreSQL or SQLite), on a scratch database and media folder."""
    import shutil
    import signal
    import tempfile

    n_workers, shards = args.workers, args.worker_shards
    print(f"\n== 4. {args.worker_trajectories:,} trajectories x {args.worker_steps} steps x {args.worker_runs} runs, "
          f"{len(WORKER_AGENTS)} parametric agents, demo dataset: in process vs {n_workers} Celery workers "
          f"({shards} shards, Redis broker, {args.worker_database})")
    print(f"machine: {machine()}")
    scratch = Path(tempfile.mkdtemp(prefix="framelab-bench-simulation-"))
    if args.worker_database == "postgres":
        import psycopg

        admin = "postgresql://postgres@127.0.0.1:5432/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{WORKER_DATABASE}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{WORKER_DATABASE}"')
        database_url = f"postgres://postgres@127.0.0.1:5432/{WORKER_DATABASE}"
    else:
        database_url = f"sqlite:///{scratch / 'framelab.sqlite3'}"
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url,
        "FRAMELAB_VAR_DIR": str(scratch / "var"),
        "MEDIA_ROOT": str(scratch / "media"),
        # The shared model cache of the checkout: MiniLM's embeddings are cached per dataset
        # under MEDIA_ROOT anyway; nothing is downloaded.
        "CELERY_BROKER_URL": args.worker_broker,
        "CELERY_RESULT_BACKEND": args.worker_results,
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    os.environ.update(env)
    import django

    django.setup()
    import pandas as pd
    import redis
    from config import celery_app
    from django.core.management import call_command
    from django.db import connections

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

    for url in {args.worker_broker, args.worker_results}:  # dedicated databases: start empty
        redis.Redis.from_url(url).flushdb()
    processes: list[subprocess.Popen] = []
    logs = []
    result: dict = {}
    try:
        (_, migrate_s) = timed(lambda: call_command("migrate", verbosity=0))
        call_command("load_demo", no_user=True, verbosity=0)
        dataset = Dataset.objects.get(name="FrameLab demo")
        frame = pool_claims(dataset=dataset, split=args.worker_split)
        # The embeddings are computed once, before either timing, as a web process or an
        # earlier run leaves them: both sides then read the same cached file.
        _, embed_s = timed(lambda: pool_embeddings(dataset_id=dataset.pk, dataset_name=dataset.name,
                                                   split=args.worker_split, claim_ids=frame["claim_id"].tolist(),
                                                   texts=frame["text"].tolist()))
        print(f"scratch database migrated in {migrate_s:.1f} s; demo dataset: {len(frame):,} claims, "
              f"{frame['base_id'].nunique()} base claims (split {args.worker_split}); embeddings in {embed_s:.1f} s")

        def create(name, trajectories):
            return simulation_run_create(name=name, dataset=dataset, split=args.worker_split, agents=WORKER_AGENTS,
                                         trajectories=trajectories, steps=args.worker_steps,
                                         runs=args.worker_runs, seed=2026)

        def wait(run_id, timeout):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                run = SimulationRun.objects.get(pk=run_id)
                if run.is_finished:
                    return run
                if any(p.poll() is not None for p in processes):
                    raise SystemExit("a worker exited:\n" + "\n".join(log.read_text()[-3000:] for log in logs))
                time.sleep(0.05)
            raise SystemExit(f"run {run_id} still {run.status} after {timeout} s")

        # (a) in process, as `manage.py simulate` runs it (after an untimed warm-up run).
        simulation_run_execute(run=create("warm-up, in process", 4))
        in_process, in_s = timed(lambda: simulation_run_execute(run=create("in process", args.worker_trajectories)),
                                 "in_process")
        assert in_process.status == "succeeded", in_process.error
        print(f"(a) in process: {in_s:.1f} s wall, {CPU['in_process']:.1f} s CPU "
              f"(load average {os.getloadavg()[0]:.1f} after it)")

        # (b) two worker processes, one task at a time each, on the platform's queues.
        worker_env = {**os.environ, **env, "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}"}
        for i in range(n_workers):
            log = scratch / f"worker-{i + 1}.log"
            logs.append(log)
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "--app", "config", "worker", "--loglevel", "INFO",
                 "--pool", "solo", "--concurrency", "1", "--queues", "default,models",
                 "--hostname", f"bench-simulation-{i + 1}@%h", "--without-gossip", "--without-mingle",
                 "--without-heartbeat"],
                cwd=ROOT, env=worker_env, stdout=open(log, "w"), stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 120
        while len(celery_app.control.ping(timeout=1.0) or []) < n_workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise SystemExit("the workers did not start:\n" + "\n".join(log.read_text()[-3000:] for log in logs))
        # An untimed warm-up run on the workers, so that neither timing pays first imports.
        warm = create("warm-up, workers", 4)
        simulation_run_enqueue(run=warm, shards=shards)
        warm = wait(warm.pk, 300)
        assert warm.status == "succeeded", warm.error
        cpu_before = [process_cpu_seconds(p.pid) for p in processes]
        shards_before = shards_done_by_worker(logs)
        on_workers = create("on the workers", args.worker_trajectories)
        start = time.perf_counter()
        simulation_run_enqueue(run=on_workers, shards=shards)  # autocommit: sent at once
        on_workers = wait(on_workers.pk, 600)
        workers_s = time.perf_counter() - start
        workers_cpu = sum(process_cpu_seconds(p.pid) for p in processes) - sum(cpu_before)
        assert on_workers.status == "succeeded", on_workers.error
        per_worker = [n - before for n, before in zip(shards_done_by_worker(logs), shards_before)]
        print(f"(b) {n_workers} workers, {on_workers.shards_total} shards: {workers_s:.1f} s wall from enqueue to "
              f"merged, {workers_cpu:.1f} s CPU in the workers; shards per worker {per_worker} "
              f"(load average {os.getloadavg()[0]:.1f} after it)")

        # (c) identical per-step results?
        key = ["agent", "run", "trajectory", "step"]
        a = pd.read_parquet(results_file(in_process)).sort_values(key, kind="stable").reset_index(drop=True)
        b = pd.read_parquet(results_file(on_workers)).sort_values(key, kind="stable").reset_index(drop=True)
        difference = first_difference(a, b)
        same_summary = in_process.summary == on_workers.summary
        print(f"(c) per-step results ({len(a):,} rows): "
              f"{'IDENTICAL' if difference is None else 'DIFFERENT: ' + difference}; summaries "
              f"{'identical' if same_summary else 'DIFFERENT'}")
        print(f"workers / in process: {workers_s / in_s:.2f} x the wall time (speed-up {in_s / workers_s:.2f} x "
              f"with {n_workers} workers on {os.cpu_count()} CPUs)")
        result = dict(database=args.worker_database, claims=len(frame), trajectories=args.worker_trajectories,
                      steps=args.worker_steps, runs=args.worker_runs, agents=len(WORKER_AGENTS), rows=len(a),
                      workers=n_workers, shards=on_workers.shards_total, shards_per_worker=per_worker, in_process_s=in_s,
                      in_process_cpu_s=CPU["in_process"], workers_s=workers_s, workers_cpu_s=workers_cpu,
                      ratio_workers_to_in_process=workers_s / in_s, identical=difference is None,
                      difference=difference, summaries_identical=same_summary)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for url in {args.worker_broker, args.worker_results}:
            redis.Redis.from_url(url).flushdb()
        connections.close_all()
        if args.worker_database == "postgres":
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{WORKER_DATABASE}" WITH (FORCE)')
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="all",
                        choices=("all", "paper", "full", "scaling", "workers", "recall", "full-child"))
    parser.add_argument("--recall-base-claims", type=int, default=None,
                        help="part 5: base claims of the fact corpus (default all, about 5,200)")
    parser.add_argument("--recall-cache", default=str(ROOT / "var" / "bench-fact-embeddings.npy"),
                        help="part 5: where to keep the fact corpus's embeddings between runs ('' for none)")
    parser.add_argument("--recall-trajectories", type=int, default=300,
                        help="part 5: trajectories (30 steps) timed and compared with exact mode")
    parser.add_argument("--reference-trajectories", type=int, default=2)
    parser.add_argument("--full-trajectories", type=int, default=10_000)
    parser.add_argument("--worker-trajectories", type=int, default=WORKER_TRAJECTORIES,
                        help="part 4: trajectories of the run (sized for 20-60 s in process here)")
    parser.add_argument("--worker-steps", type=int, default=30, help="part 4: steps per trajectory")
    parser.add_argument("--worker-runs", type=int, default=3, help="part 4: repetitions")
    parser.add_argument("--worker-split", default="all", help="part 4: split of the demo dataset")
    parser.add_argument("--workers", type=int, default=2, help="part 4: Celery worker processes")
    parser.add_argument("--worker-shards", type=int, default=4, help="part 4: shards of the enqueued run")
    parser.add_argument("--worker-database", choices=("postgres", "sqlite"), default="postgres",
                        help=f"part 4: a scratch PostgreSQL database '{WORKER_DATABASE}' on 127.0.0.1:5432 "
                             "(user postgres), created and dropped, or an SQLite file in a temporary folder")
    parser.add_argument("--worker-broker", default="redis://127.0.0.1:6379/10",
                        help="part 4: Celery broker (a dedicated Redis database: it is flushed)")
    parser.add_argument("--worker-results", default="redis://127.0.0.1:6379/11",
                        help="part 4: Celery result backend (a dedicated Redis database: it is flushed)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--quick", action="store_true",
                        help="tiny pools, to check the script runs (figures meaningless)")
    args = parser.parse_args()
    if args.quick:
        global PAPER_POOL, FULL_POOL, SCALING_POOLS
        PAPER_POOL, FULL_POOL, SCALING_POOLS = 6_000, 20_000, (3_000, 9_000)
        args.worker_trajectories = min(args.worker_trajectories, 40)
    # The engine's own threads (the list search) and nothing else, as `simulate` and the
    # workers run it (BLAS and torch on one thread each).
    if args.part == "full-child":
        with blas_single_thread():
            print(json.dumps(full_child(args)))
        return
    print(f"machine: {machine()}")
    results = {"machine": machine()}
    with blas_single_thread():
        if args.part in ("all", "paper"):
            results["paper"] = paper(args)
        if args.part in ("all", "full"):
            results["full"] = full(args)
        if args.part in ("all", "scaling"):
            results["scaling"] = scaling(args)
        if args.part in ("all", "recall"):
            results["recall"] = recall_part(args)
    if args.part in ("all", "workers"):
        results["workers"] = workers(args)
    print(f"\nmachine at the end: {machine()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
