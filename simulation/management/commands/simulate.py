"""`manage.py simulate`: Monte Carlo information-health trajectories (method.md section 4).

Two modes:

* files a researcher brings, no database: ``--pool-file POOL.parquet --embeddings-file
  EMB.npy --out RESULTS.parquet`` (see ``simulation.pool_files`` for the formats); one agent
  per ``p_supports_<agent>`` column;
* a stored run: ``--run ID`` executes a ``SimulationRun`` through
  ``simulation.services.simulation_run_execute`` (the same code the Celery tasks run).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from simulation.policies import POLICIES, PolicyError, make_policy, parse_policy_params


class Command(BaseCommand):
    help = (
        "Run Monte Carlo information-health trajectories: on a pool file and its embeddings "
        "(--pool-file, --embeddings-file, --out), or a stored simulation run (--run ID)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--run", metavar="ID", help="execute a stored SimulationRun (database mode)")
        database = parser.add_argument_group(
            "database mode: create a run on a dataset and execute it (sizes, seed, policy and "
            "candidates as in file mode)")
        database.add_argument("--dataset", metavar="NAME", help="pool dataset (its name or id)")
        database.add_argument("--split", default="test",
                              help="test (default), dev, train, none, or all: the claims trajectories draw from")
        database.add_argument("--agent", action="append", default=[], metavar="SPEC",
                              help="repeatable: persona:NAME[:normalised], human:STUDY[:by_familiarity], "
                                   "parametric:NAME:accept_true=P,accept_false=P[,confidence=P], "
                                   "oracle[:CONFIDENCE]; the first is the baseline of the differences")
        database.add_argument("--name", help="the run's name (default: agents and dataset)")
        files = parser.add_argument_group("file mode")
        files.add_argument("--pool-file", metavar="POOL.parquet",
                           help="claims: claim_id, base_id, true_label, [framing], p_supports_<agent>...")
        files.add_argument("--embeddings-file", metavar="EMB.npy", help="one embedding row per pool row")
        files.add_argument("--out", metavar="FILE.parquet", help="per-step results (written only on success)")
        files.add_argument("--trajectories", type=int, default=100, help="trajectories per run (default 100)")
        files.add_argument("--steps", type=int, default=100, help="steps per trajectory (default 100)")
        files.add_argument("--runs", type=int, default=1, help="independent runs per agent (FrameRef: 3)")
        files.add_argument("--seed", type=int, default=0, help="seed of every random stream (default 0)")
        files.add_argument("--agents", nargs="+", metavar="NAME",
                           help="only these agents (p_supports_<NAME> columns); default all")
        files.add_argument("--policy", default="frameref", choices=list(POLICIES),
                           help="exposure policy (default frameref)")
        files.add_argument("--policy-param", action="append", metavar="NAME=VALUE", default=[],
                           help="policy parameter, repeatable: window, top_k, temperature, "
                                "reinforce_false, false_weight")
        files.add_argument("--candidates", default="exact", choices=("exact", "indexed"),
                           help="exact cosine over the remaining pool, or an IVF index for large pools")
        files.add_argument("--n-lists", type=int, help="indexed mode: number of lists (default sqrt(n))")
        files.add_argument("--n-probe", type=int, default=None,
                           help="indexed mode: lists probed, fixed (default: from 3 up until --target-recall is met)")
        files.add_argument("--target-recall", type=float, default=None,
                           help="indexed mode: recall of the exact top-k to reach, measured on 200 contexts "
                                "sampled from the pool, with and without the false-only filter (default 0.99)")
        files.add_argument("--workers", type=int, default=1, help="processes to split trajectories over")
        files.add_argument("--baseline", metavar="AGENT",
                           help="also print each agent's difference from this agent, bootstrap 95%% CI")
        parser.add_argument("--decision", default=None, metavar="RULE",
                            help="decision rule of every persona (score) agent: argmax (default: the more "
                                 "probable label), frameref (sampled at temperature 0.6, top-p 0.9, the "
                                 "generation config FrameRef's Llama-3.1-8B-Instruct ships) or sample:T:P; "
                                 "an agent spec's own decision overrides it (database mode)")
        parser.add_argument("--conventions", default="platform", choices=("platform", "frameref"),
                            help="summary conventions of the printed table: platform (default: mean_IH "
                                 "over T, claims per trajectory, confidence pooled) or frameref (FrameRef's "
                                 "notebook: mean_IH over T-1, claims per run, confidence averaged per run)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        if options["run"] is not None:
            return self.handle_database_run(options)
        if options["dataset"] is not None:
            return self.handle_database_create(options)
        return self.handle_files(options)

    def handle_database_create(self, options):
        from simulation.agent_builders import AgentSpecError, parse_agent_option
        from simulation.results import format_summary
        from simulation.services import (
            SimulationConfigError,
            simulation_run_create,
            summary_table,
        )

        if not options["agent"]:
            raise CommandError("--dataset needs at least one --agent (e.g. --agent oracle)")
        try:
            agents = [parse_agent_option(text) for text in options["agent"]]
            run = simulation_run_create(
                name=options["name"] or "{} on {}".format(
                    " vs ".join(str(a.get("name") or a.get("persona") or a.get("study") or a["kind"])
                                for a in agents), options["dataset"]),
                dataset=options["dataset"], split=options["split"], agents=agents,
                policy=options["policy"], policy_params=parse_policy_params(options["policy_param"]),
                candidate_mode=options["candidates"], trajectories=options["trajectories"],
                steps=options["steps"], runs=options["runs"], seed=options["seed"],
                decision=options["decision"])
        except (AgentSpecError, SimulationConfigError, PolicyError) as exc:
            raise CommandError(f"{exc}\nNothing was created.") from None
        self.stdout.write(f"simulation run {run.pk} created: {run.name}\n")
        options["run"] = str(run.pk)
        self.handle_database_run(options)
        run.refresh_from_db()
        if run.status == "succeeded":
            self.stdout.write(format_summary(summary_table(run, "agents", options["conventions"]),
                                             options["conventions"]) + "\n")
            self.stdout.write(f"per-step results: {run.results_path} (under MEDIA_ROOT); report: "
                              f"/simulations/{run.pk}/\n")

    # --- database mode: a stored SimulationRun ----------------------------------------------

    def handle_database_run(self, options):
        from core.lookup import parse_id
        from simulation.models import SimulationRun
        from simulation.services import SimulationConfigError, simulation_run_execute

        run_id = parse_id(str(options["run"]))
        run = SimulationRun.objects.filter(pk=run_id).first() if run_id is not None else None
        if run is None:
            raise CommandError(f"--run {options['run']}: no simulation run with that id")
        with _bar(0, "simulate", options["no_progress"]) as bar:
            def progress(done: int, total: int | None = None) -> None:
                if total is not None and bar.total != total:
                    bar.total = total
                    bar.refresh()
                bar.update(done)

            try:
                result = simulation_run_execute(run=run, progress=progress,
                                                show_progress=not options["no_progress"])
            except SimulationConfigError as exc:
                raise CommandError(str(exc)) from None
            except Exception:
                run.refresh_from_db()
                if run.status == "failed" and run.error:
                    raise CommandError(f"simulation run {run.pk} failed: {run.error}") from None
                raise
        self.stdout.write(f"simulation run {result.pk}: {result.status}\n")

    # --- file mode ------------------------------------------------------------------------

    def handle_files(self, options):
        from simulation.index import (
            DEFAULT_TARGET_RECALL,
            IVFIndex,
            measure_recall,
            recall_queries,
            tune_probes,
        )
        from simulation.pool_files import (
            PoolFileError,
            read_pool_files,
            score_agents,
            simulate_pool,
        )
        from simulation.results import agent_differences, format_summary, per_agent

        for name in ("pool_file", "embeddings_file", "out"):
            if not options[name]:
                raise CommandError(f"file mode needs --{name.replace('_', '-')} (or give --run ID)")
        for name in ("trajectories", "steps", "runs", "workers"):
            if options[name] < 1:
                raise CommandError(f"--{name} must be at least 1, not {options[name]}")
        out = Path(options["out"])
        if not out.parent.exists():
            raise CommandError(f"--out {out}: the folder {out.parent} does not exist")
        try:
            policy = make_policy(options["policy"], parse_policy_params(options["policy_param"]))
        except PolicyError as exc:
            raise CommandError(str(exc)) from None
        started = time.perf_counter()
        try:
            files = read_pool_files(options["pool_file"], options["embeddings_file"])
            agents = score_agents(files, options["agents"], decision=options["decision"])
        except PoolFileError as exc:
            raise CommandError(f"{exc}\nNothing was simulated.") from None
        pool, index = files.pool, None
        if options["steps"] > pool.n_base:
            raise CommandError(f"--steps {options['steps']}: the pool has only {pool.n_base} base claims, "
                               f"and a trajectory shows each base claim at most once")
        if options["candidates"] == "indexed":
            n_probe = options["n_probe"]
            if n_probe is not None and options["n_lists"]:
                n_probe = min(n_probe, options["n_lists"])  # probing every list is exact mode
            target = DEFAULT_TARGET_RECALL if options["target_recall"] is None else options["target_recall"]
            if not 0 < target <= 1:
                raise CommandError(f"--target-recall {target}: accepted: a recall in (0, 1]")
            if options["n_probe"] is not None and options["target_recall"] is not None:
                raise CommandError("give --n-probe (fixed probes) or --target-recall (probes grow to meet it), not both")
            with _bar(pool.size, "index", options["no_progress"], unit="claim") as bar:
                index = IVFIndex.build(pool, n_lists=options["n_lists"], n_probe=n_probe,
                                       seed=options["seed"], progress=bar.update)
            queries = recall_queries(index.pool, min(200, index.pool.size), seed=options["seed"])
            k = int(policy.parameters().get("top_k", 5))
            if options["n_probe"] is None:
                index, recall = tune_probes(index, queries, k=k, target=target)
            else:
                recall = {"lists": index.n_lists, "probes": index.n_probe, "k": k, "target_recall": None,
                          "recall_at_top_k": measure_recall(index, queries, k=k),
                          "recall_false_only": measure_recall(index, queries, k=k, false_only=True),
                          "recall_queries": len(queries)}
            pool = index.pool
        total = len(agents) * options["runs"] * options["trajectories"] * options["steps"]
        with _bar(total, "simulate", options["no_progress"], unit="step") as bar:
            frame = simulate_pool(pool, agents, policy, trajectories=options["trajectories"], steps=options["steps"],
                                  seed=options["seed"], runs=options["runs"], candidate_mode=options["candidates"],
                                  index=index, workers=options["workers"], progress=bar.update)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, out)
        finally:
            if tmp.exists():
                tmp.unlink()
        seconds = time.perf_counter() - started
        self.stdout.write(
            f"{len(agents)} agent(s) x {options['runs']} run(s) x {options['trajectories']} trajectories x "
            f"{options['steps']} steps over {pool.size:,} claims ({pool.n_base:,} base claims), policy "
            f"{policy.name} {policy.parameters()}, {options['candidates']} candidates, decision "
            f"{agents[0].decision.text()}, seed {options['seed']}: "
            f"{len(frame):,} rows written to {out} in {seconds:.1f} s\n"
        )
        if index is not None:
            target_text = ("fixed by --n-probe" if recall["target_recall"] is None else
                           f"target {recall['target_recall']}: {'met' if recall['target_met'] else 'NOT met'}")
            self.stdout.write(
                f"index: {recall['lists']} lists, {recall['probes']} probed ({target_text}); recall of the exact "
                f"top-{recall['k']}: {recall['recall_at_top_k']:.3f}, among false claims only "
                f"{recall['recall_false_only']:.3f}, on {recall['recall_queries']} contexts from the pool\n")
        conventions = options["conventions"]
        self.stdout.write(format_summary(per_agent(frame, conventions=conventions), conventions) + "\n")
        if options["baseline"]:
            try:
                diffs = agent_differences(frame, baseline=options["baseline"], seed=options["seed"],
                                          conventions=conventions)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"\ndifferences from {options['baseline']} (bootstrap 95% CI over trajectories):\n")
            for row in diffs.itertuples(index=False):
                self.stdout.write(f"  {row.agent:<24} {row.metric:<10} {row.difference:+9.3f} "
                                  f"[{row.low:+9.3f}, {row.high:+9.3f}]\n")


def _bar(total: int, description: str, disable: bool, unit: str = "step"):
    return tqdm(total=total or None, desc=description, unit=unit, unit_scale=True, mininterval=0.5,
                file=sys.stderr, disable=disable, dynamic_ncols=True)
