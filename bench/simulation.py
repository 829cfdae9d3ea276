"""Benchmark the simulation engine against FrameRef's loop (the reference), and at full scale.

Run from the repository root:

    .venv/bin/python bench/simulation.py [--part paper|full|scaling|all] [--reference-trajectories 2]
                                       [--full-trajectories 10000] [--json PATH]

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

from simulation.agents import ScoreAgent, parametric_agent  # noqa: E402
from simulation.engine import run_study, run_trajectories  # noqa: E402
from simulation.index import IVFIndex, measure_recall, recall_queries  # noqa: E402
from simulation.policies import make_policy  # noqa: E402
from simulation.synthetic_pool import FRAMEREF_SIZE, FRAMINGS, persona_scores, synthetic_pool  # noqa: E402
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
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="all", choices=("all", "paper", "full", "scaling", "full-child"))
    parser.add_argument("--reference-trajectories", type=int, default=2)
    parser.add_argument("--full-trajectories", type=int, default=10_000)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--quick", action="store_true",
                        help="tiny pools, to check the script runs (figures meaningless)")
    args = parser.parse_args()
    if args.quick:
        global PAPER_POOL, FULL_POOL, SCALING_POOLS
        PAPER_POOL, FULL_POOL, SCALING_POOLS = 6_000, 20_000, (3_000, 9_000)
    if args.part == "full-child":
        print(json.dumps(full_child(args)))
        return
    print(f"machine: {machine()}")
    results = {"machine": machine()}
    if args.part in ("all", "paper"):
        results["paper"] = paper(args)
    if args.part in ("all", "full"):
        results["full"] = full(args)
    if args.part in ("all", "scaling"):
        results["scaling"] = scaling(args)
    print(f"\nmachine at the end: {machine()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
