"""Benchmark the rater flow: simulated participants over HTTP against gunicorn on PostgreSQL.

Run from the repository root:

    .venv/bin/python bench/raters.py [--bots 200] [--workers 4] [--threads 4]
                                     [--think-ms 0,500] [--conn-max-age 0] [--keep] [--json PATH]

Steps:
1. A scratch database `framelab_bench_raters` is (re)created, migrated, and the demo
   dataset loaded into it; one FrameRef-shaped study per phase is created (40 base claims
   x 6 framings in batches of 20: 12 batches, with enough raters per batch for every bot).
2. gunicorn serves the platform with the platform's own config (several workers, each with
   threads, access log on) on that database.
3. Baseline, on the same server in the same run: closed-loop clients hammer the trivial
   endpoint `/healthz` (one query) for a few seconds.
4. Each phase: `--bots` bots (all at once) take full sessions through the real pages:
   entry with a Prolific id, consent, instructions, 20 items (GET the item, POST the answer),
   completion page. Phase "think 0" answers as fast as the server allows (the throughput
   the server can give); a phase with a think time paces the bots like quick people (the
   latency at that offered load).
5. Every study's invariants are checked (`annotation.studies.invariants`); one extra participant
   goes through the pages in-process with Django's test client, counting the SQL queries
   and timing each page without contention.
6. A table of results and the targets, each MET or NOT MET with its margin. The scratch
   database is dropped at the end (unless --keep).

Benchmarks are not part of the test run; see bench/README.md.
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import scratch_db  # bench/scratch_db.py (this script's folder is on sys.path)
from targets import Target  # bench/targets.py

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
SCRATCH_DB = "framelab_bench_raters"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{SCRATCH_DB}"

# The targets, on the 2-core reference machine.
MIN_JUDGMENTS_PER_SECOND = 300.0
MAX_P99_MS = 200.0


class BenchmarkError(Exception):
    """A step failed; the message says which and why."""


@dataclass
class Phase:
    think_ms: float
    study_id: int = 0
    seconds: float = 0.0
    completed: int = 0
    turned_away: int = 0
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)
    judgments: int = 0
    judgments_per_second: float = 0.0
    steady_judgments_per_second: float = 0.0
    requests: int = 0
    requests_per_second: float = 0.0
    show_p50_ms: float | None = None
    show_p99_ms: float | None = None
    submit_p50_ms: float | None = None
    submit_p99_ms: float | None = None
    cpu: dict = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"think {self.think_ms:g} ms"


# ---------------------------------------------------------------------------------------
# The scratch database and the server


def django_setup(conn_max_age: int) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DATABASE_URL"] = DATABASE_URL
    os.environ["DATABASE_CONN_MAX_AGE"] = str(conn_max_age)
    import django

    django.setup()


def start_server(port: int, workers: int, threads: int, conn_max_age: int, log_path: Path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_URL": DATABASE_URL,
           "DATABASE_CONN_MAX_AGE": str(conn_max_age), "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}"}
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "platform" / "gunicorn.conf.py"),
             "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
             "config.wsgi"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )


def stop_server(process) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---------------------------------------------------------------------------------------
# CPU accounting: the machine, this process (the bots), gunicorn, PostgreSQL


def _proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from "state" on


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _postmaster() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if fields and comm == "postgres" and int(fields[1]) == 1:
                return int(entry.name)
    return None


def cpu_snapshot(server_pid: int) -> dict[str, float]:
    """CPU seconds so far: machine busy, this process, gunicorn (master and workers) and
    PostgreSQL (the postmaster's reaped backends plus the live ones)."""
    tick = os.sysconf("SC_CLK_TCK")
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first]
    idle = values[3] + values[4]
    usage = resource.getrusage(resource.RUSAGE_SELF)

    def own(pid):
        fields = _proc_stat(pid)
        return (int(fields[11]) + int(fields[12])) / tick if fields else 0.0

    def with_reaped(pid):
        fields = _proc_stat(pid)
        return (sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick) if fields else 0.0

    postmaster = _postmaster()
    postgres = 0.0
    if postmaster is not None:
        postgres = with_reaped(postmaster) + sum(own(pid) for pid in _children(postmaster))
    return {
        "machine_busy": (sum(values) - idle) / tick,
        "machine_total": sum(values) / tick,
        "bots": usage.ru_utime + usage.ru_stime,
        "gunicorn": own(server_pid) + sum(own(pid) for pid in _children(server_pid)),
        "postgres": postgres,
    }


def cpu_delta(before: dict, after: dict) -> dict[str, float]:
    return {key: after[key] - before[key] for key in before}


# ---------------------------------------------------------------------------------------
# The measurements


def healthz_baseline(base_url: str, seconds: float, concurrency: int) -> dict:
    """Closed-loop clients on keep-alive connections GET /healthz for `seconds`."""
    from annotation.studies.bots import percentile

    port = int(base_url.rsplit(":", 1)[1])
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client():
        mine = []
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                connection.request("GET", "/healthz")
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise BenchmarkError(f"/healthz answered HTTP {response.status}")
            except (OSError, http.client.HTTPException, BenchmarkError) as exc:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                with lock:
                    failures.append(repr(exc))
                continue
            mine.append(time.perf_counter() - started)
        connection.close()
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "seconds": elapsed,
            "requests_per_second": len(latencies) / elapsed,
            "p50_ms": (percentile(latencies, 0.5) or 0) * 1000,
            "p99_ms": (percentile(latencies, 0.99) or 0) * 1000,
            "failures": len(failures), "first_failure": failures[0] if failures else ""}


def steady_rate(report) -> float:
    """Judgments per second between the 10th and the 90th percentile of acknowledgement
    times: the rate once every bot is in and before the last ones trail off."""
    from annotation.studies.bots import SUBMIT

    done = sorted(r.at + r.seconds for result in report.results for r in result.requests
                  if r.kind == SUBMIT and r.status == 302)
    if len(done) < 20:
        return 0.0
    low, high = done[len(done) // 10], done[len(done) * 9 // 10]
    return (len(done) * 8 // 10) / (high - low) if high > low else 0.0


def run_phase(phase: Phase, base_url: str, bots: int, server_pid: int, truth) -> Phase:
    from annotation.studies.bots import SHOW, SUBMIT, make_policy, run_bots

    before = cpu_snapshot(server_pid)
    report = run_bots(base_url=base_url, study_id=phase.study_id, participants=bots,
                      concurrency=bots, policy=make_policy("truthful", truth), seed=phase.study_id,
                      id_prefix=f"bench-{phase.study_id}-", think_time=phase.think_ms / 1000,
                      timeout=120)
    phase.cpu = cpu_delta(before, cpu_snapshot(server_pid))
    phase.seconds = report.seconds
    phase.completed, phase.turned_away = report.completed, report.turned_away
    phase.errors = len(report.errors)
    phase.first_errors = [f"{r.external_id}: {r.detail}" for r in report.errors[:5]]
    phase.judgments = report.judgments
    phase.judgments_per_second = report.judgments_per_second
    phase.steady_judgments_per_second = steady_rate(report)
    phase.requests = sum(len(r.requests) for r in report.results)
    phase.requests_per_second = phase.requests / report.seconds
    phase.show_p50_ms, phase.show_p99_ms = report.latency_ms(SHOW, 0.5), report.latency_ms(SHOW, 0.99)
    phase.submit_p50_ms = report.latency_ms(SUBMIT, 0.5)
    phase.submit_p99_ms = report.latency_ms(SUBMIT, 0.99)
    return phase


def queries_per_page(study, repeat: int = 5) -> list[tuple[str, int, float]]:
    """One participant through the pages in-process (Django's test client, no contention):
    (page, SQL queries, median milliseconds) for each kind of request."""
    import re
    import warnings

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    # WhiteNoise warns that the static folder (collectstatic's) is missing; pages need none.
    warnings.filterwarnings("ignore", message="No directory at")
    client = Client(SERVER_NAME="127.0.0.1")
    rows: dict[str, list[tuple[int, float]]] = {}

    def measure(name, method, url, data=None):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = getattr(client, method)(url, data) if data is not None else getattr(client, method)(url)
            elapsed = (time.perf_counter() - started) * 1000
        rows.setdefault(name, []).append((len(queries), elapsed))
        return response

    for n in range(repeat):
        entry = measure("enter (GET /s/<id>/)", "get", f"/s/{study.pk}/",
                        {"PROLIFIC_PID": f"profile-{n}", "STUDY_ID": "S", "SESSION_ID": "X"})
        home = entry["Location"]
        consent = measure("home redirect", "get", home)["Location"]
        measure("consent (GET)", "get", consent)
        measure("consent (POST)", "post", consent, {"consent": "yes"})
        item = home + "item/1/"
        for position in range(1, 5):
            item = f"{home}item/{position}/"
            page = measure("show item (GET)", "get", item)
            ticket = re.search(rb'name="ticket" value="([^"]+)"', page.content).group(1).decode()
            measure("submit (POST)", "post", item, {"accurate": "yes", "confidence": 3,
                                                    "familiarity": 3, "ticket": ticket})
        measure("healthz", "get", "/healthz")
    return [(name, max(q for q, _ in values), statistics.median(ms for _, ms in values))
            for name, values in rows.items()]


# ---------------------------------------------------------------------------------------


def _ms(value):
    return "n/a" if value is None else f"{value:,.1f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bots", type=int, default=200, help="participants per phase (default 200)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    parser.add_argument("--think-ms", default="0,500",
                        help="comma-separated mean think times, one phase each (default 0,500)")
    parser.add_argument("--conn-max-age", type=int, default=60,
                        help="DATABASE_CONN_MAX_AGE for the server (default 60, as the platform ships)")
    parser.add_argument("--healthz-seconds", type=float, default=5.0)
    parser.add_argument("--healthz-concurrency", type=int, default=32)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database and logs")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    thinks = [float(v) for v in args.think_ms.split(",") if v.strip()]

    work = Path(tempfile.mkdtemp(prefix="bench-raters-"))
    print(f"scratch database {SCRATCH_DB}, logs in {work}", flush=True)
    scratch_db.recreate(PG_SERVER, SCRATCH_DB)
    server = None
    try:
        django_setup(args.conn_max_age)
        from django.core.management import call_command
        from django.db import connections

        from annotation.models import Dataset, Study
        from annotation.studies.bots import free_port, wait_until_serving
        from annotation.studies.invariants import study_invariant_violations
        from annotation.studies.selectors import study_truth_table
        from annotation.studies.services import study_create

        call_command("migrate", verbosity=0)
        with open(os.devnull, "w") as quiet:
            call_command("load_demo", no_user=True, stdout=quiet)
        dataset = Dataset.objects.get(name="FrameLab demo")
        batches = 40 * 6 // 20
        raters = math.ceil(args.bots / batches)
        phases = []
        for index, think in enumerate(thinks):
            study = study_create(dataset=dataset, name=f"bench raters {index + 1}", base_claims=40,
                                 batch_size=20, raters_per_batch=raters, seed=index + 1,
                                 status=Study.Status.OPEN)
            phases.append(Phase(think_ms=think, study_id=study.pk))
        truth = study_truth_table(Study.objects.get(pk=phases[0].study_id))
        for phase in phases[1:]:
            truth.update(study_truth_table(Study.objects.get(pk=phase.study_id)))
        print(f"{len(phases)} studies of 40 base claims x 6 framings in {batches} batches of 20, "
              f"{raters} raters each ({batches * raters} slots for {args.bots} bots)", flush=True)
        connections.close_all()

        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        server = start_server(port, args.workers, args.threads, args.conn_max_age, work / "gunicorn.log")
        try:
            wait_until_serving(base_url, timeout=60, alive=lambda: server.poll() is None)
        except Exception as exc:  # noqa: BLE001  (any failure to start, with the server's log)
            raise BenchmarkError(f"gunicorn did not start: {exc}\n"
                                 f"{(work / 'gunicorn.log').read_text()[-3000:]}") from None
        print(f"gunicorn: {args.workers} workers x {args.threads} threads at {base_url}, "
              f"DATABASE_CONN_MAX_AGE={args.conn_max_age}", flush=True)

        before = cpu_snapshot(server.pid)
        healthz = healthz_baseline(base_url, args.healthz_seconds, args.healthz_concurrency)
        healthz["cpu"] = cpu_delta(before, cpu_snapshot(server.pid))
        print(f"healthz: {healthz['requests_per_second']:,.0f} requests/s", flush=True)
        for phase in phases:
            run_phase(phase, base_url, args.bots, server.pid, truth)
            print(f"phase {phase.label}: {phase.judgments_per_second:,.1f} judgments/s", flush=True)
        stop_server(server)
        server = None

        for phase in phases:
            phase.violations = study_invariant_violations(Study.objects.get(pk=phase.study_id))
        profile_study = study_create(dataset=dataset, name="bench raters profile", base_claims=40,
                                     batch_size=20, raters_per_batch=10, seed=99,
                                     status=Study.Status.OPEN)
        pages = queries_per_page(profile_study)
        connections.close_all()
    finally:
        if server is not None:
            stop_server(server)
        if not args.keep:
            scratch_db.drop(PG_SERVER, SCRATCH_DB)

    report(args, healthz, phases, pages)
    targets = targets_of(phases)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "bots": args.bots, "workers": args.workers, "threads": args.threads,
            "conn_max_age": args.conn_max_age, "healthz": healthz,
            "phases": [vars(p) | {"label": p.label} for p in phases],
            "pages": [{"page": name, "queries": q, "median_ms": ms} for name, q, ms in pages],
            "targets": [{"name": t.name, "measured": t.measured, "limit": t.limit, "met": t.met}
                        for t in targets],
        }, indent=2))
    failed = any(p.errors or p.violations or p.completed != args.bots for p in phases)
    return 1 if failed else 0


def targets_of(phases: list[Phase]) -> list[Target]:
    """Throughput from the phase without think time (what the server can give; the fastest
    phase if none); the latencies from the paced phase (the last with a think time), else
    from the only one."""
    unpaced = [p for p in phases if p.think_ms == 0]
    fastest = max(unpaced or phases, key=lambda p: p.judgments_per_second)
    paced = next((p for p in reversed(phases) if p.think_ms > 0), phases[-1])
    return [
        Target(f"judgments/s ({fastest.label})", fastest.judgments_per_second,
               MIN_JUDGMENTS_PER_SECOND, ">=", "/s"),
        Target(f"show item p99 ({paced.label})", paced.show_p99_ms, MAX_P99_MS, "<", "ms"),
        Target(f"submit p99 ({paced.label})", paced.submit_p99_ms, MAX_P99_MS, "<", "ms"),
        Target("invariant violations (all phases)", sum(len(p.violations) for p in phases), 0.5, "<",
               ""),
    ]


def report(args, healthz, phases, pages) -> None:
    print()
    print(f"{args.bots} bots per phase, full 20-item sessions; gunicorn {args.workers} workers x "
          f"{args.threads} threads; PostgreSQL; {os.cpu_count()} CPUs")
    print(f"{'run':<22}{'seconds':>8}{'judgments':>10}{'judg/s':>8}{'steady/s':>9}{'req/s':>8}"
          f"{'show p50':>9}{'p99':>8}{'submit p50':>11}{'p99':>8}")
    print(f"{'healthz baseline':<22}{healthz['seconds']:>8.1f}{'':>10}{'':>8}{'':>9}"
          f"{healthz['requests_per_second']:>8,.0f}{healthz['p50_ms']:>9.1f}{healthz['p99_ms']:>8.1f}")
    for p in phases:
        print(f"{'bots, ' + p.label:<22}{p.seconds:>8.1f}{p.judgments:>10,}{p.judgments_per_second:>8.1f}"
              f"{p.steady_judgments_per_second:>9.1f}{p.requests_per_second:>8,.0f}"
              f"{_ms(p.show_p50_ms):>9}{_ms(p.show_p99_ms):>8}{_ms(p.submit_p50_ms):>11}"
              f"{_ms(p.submit_p99_ms):>8}")
    print("  (latencies in ms; a judgment is one POST plus the GET of the next page)")
    for p in phases:
        print(f"  {p.label}: completed {p.completed}, turned away {p.turned_away}, errors {p.errors}; "
              f"invariant violations {len(p.violations)}")
        for line in p.first_errors:
            print(f"    error: {line}")
        for line in p.violations[:5]:
            print(f"    violation: {line}")
    if healthz["failures"]:
        print(f"  healthz failures: {healthz['failures']} (first: {healthz['first_failure']})")

    print("\nCPU seconds used (machine has "
          f"{os.cpu_count()} CPUs): busy = all processes; bots = this process")
    print(f"  {'run':<22}{'wall':>7}{'busy':>8}{'gunicorn':>10}{'postgres':>10}{'bots':>8}")
    for name, seconds, cpu in [("healthz baseline", healthz["seconds"], healthz["cpu"])] + \
            [("bots, " + p.label, p.seconds, p.cpu) for p in phases]:
        print(f"  {name:<22}{seconds:>7.1f}{cpu['machine_busy']:>8.1f}{cpu['gunicorn']:>10.1f}"
              f"{cpu['postgres']:>10.1f}{cpu['bots']:>8.1f}")
    for p in phases:
        if p.judgments:
            print(f"  {p.label}: {1000 * p.cpu['gunicorn'] / p.judgments:.1f} ms gunicorn CPU and "
                  f"{1000 * p.cpu['postgres'] / p.judgments:.1f} ms PostgreSQL CPU per judgment")

    # A judgment costs two requests (POST, then GET of the next item): even if every page
    # cost the server no more than the trivial endpoint, judgments/s could not exceed this.
    ceiling = healthz["requests_per_second"] / 2
    print(f"\nceiling from the baseline: /healthz {healthz['requests_per_second']:,.0f} req/s / 2 "
          f"requests per judgment = {ceiling:,.0f} judgments/s if every page were as cheap as "
          f"/healthz; target {MIN_JUDGMENTS_PER_SECOND:g} is {MIN_JUDGMENTS_PER_SECOND / ceiling:.2f}x that")
    for p in phases:
        if p.judgments_per_second:
            print(f"  {p.label}: {p.judgments_per_second / ceiling:.2f} of the ceiling")

    print("\nper request, in-process without contention (Django test client, one participant):")
    print(f"  {'page':<24}{'queries':>8}{'median ms':>11}")
    for name, queries, ms in pages:
        print(f"  {name:<24}{queries:>8}{ms:>11.1f}")

    print("\ntargets")
    for target in targets_of(phases):
        unit = f" {target.unit}" if target.unit else ""
        limit = f"{target.comparison} {target.limit:g}{unit}" if target.unit else "= 0"
        measured = "n/a" if target.measured is None else f"{target.measured:,.1f}{unit}"
        verdict = target.verdict() if target.unit else ("MET" if target.met else "NOT MET")
        print(f"  {target.name:<36}{measured:>12}   target {limit:<12} {verdict}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(2)
