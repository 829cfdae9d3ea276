"""Benchmark `manage.py import_claims` on PostgreSQL and SQLite against PostgreSQL's own COPY.

Run from the repository root:

    .venv/bin/python bench/import_claims.py [--rows N] [--keep] [--skip-sqlite]
                                            [--skip-postgres] [--json PATH]

Steps:
1. `make_synthetic_claims` writes the synthetic dataset (FrameRef's 1,073,740 rows by
   default) into a temporary folder.
2. The same rows are written, untimed, to CSV files for the baselines.
3. PostgreSQL: a scratch database `framelab_bench` is (re)created and migrated, then
   `import_claims` runs as a child process; its wall time and peak resident memory are
   measured and the row counts checked with SQL.
4. Baselines in the same database: server-side `COPY` of the framed rows into a copy of
   the framed claim table (same columns, indexes and constraints), and a stricter one that
   also copies the base claims and checks the deferred foreign key at commit, as the real
   import must.
5. SQLite: a temporary database file, migrated, then the same timed import and checks.
6. A table of results and the issue's targets, each MET or NOT MET.

Benchmarks are not part of the test run; see bench/README.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
import psycopg
import scratch_db  # bench/scratch_db.py (this script's folder is on sys.path)
from machine import cpu_model, memory_gib  # bench/machine.py
from psycopg import sql
from targets import Target, number  # bench/targets.py

ROOT = Path(__file__).resolve().parents[1]
MANAGE = ROOT / "manage.py"
FRAMEREF_ROWS = 1_073_740
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
SCRATCH_DB = "framelab_bench"
DATASET = "synth"
STDERR_TAIL_CHARS = 4000

# The targets, for the full-size dataset on the 2-core reference machine.
PG_MAX_SECONDS = 120.0
PG_MIN_COPY_RATIO = 0.3
SQLITE_MAX_SECONDS = 180.0
MAX_RSS_MIB = 1024.0

FRAMED_COLUMNS = ("base_claim_id", "framing", "text", "verification", "generator")
BASE_COLUMNS = ("id", "dataset_id", "external_id", "true_label", "split", "topic", "source")


class BenchmarkError(Exception):
    """A step failed; the message says which and why."""


@dataclass
class Result:
    name: str
    seconds: float
    rows: int
    peak_rss_mib: float | None  # None for the COPY baselines: the work is the server's
    note: str = ""  # the import's own summary line
    all_seconds: tuple[float, ...] = ()  # every repetition, when the run was repeated

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


@dataclass
class BaselineFiles:
    """The CSV copies of the synthetic rows, and what the imports must produce."""

    framed_csv: Path
    base_csv: Path
    framed_rows: int
    base_claims: int


# ---------------------------------------------------------------------------------------
# Child processes


def manage(*args: str, database_url: str | None = None) -> subprocess.CompletedProcess:
    """Runs a management command to completion; raises BenchmarkError if it fails."""
    result = subprocess.run(
        [sys.executable, str(MANAGE), *args], cwd=ROOT, env=_env(database_url),
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise BenchmarkError(
            f"manage.py {' '.join(args)} failed (exit {result.returncode}):\n"
            f"{result.stderr[-STDERR_TAIL_CHARS:]}"
        )
    return result


def timed_import(name: str, database_url: str, data_dir: Path, log_dir: Path,
                 rows: int) -> Result:
    """Runs `import_claims` as a child process and measures its wall time and peak RSS.

    `os.wait4` returns the rusage of that one child, so the peak RSS is the import's own
    and is not masked by an earlier, larger child (as RUSAGE_CHILDREN's maximum would be).
    Output goes to files rather than pipes, so a chatty child can never block on a full
    pipe while we wait for it.
    """
    slug = name.lower().replace(" ", "-")
    stdout_path, stderr_path = log_dir / f"{slug}.out", log_dir / f"{slug}.err"
    command = [sys.executable, str(MANAGE), "import_claims", str(data_dir),
               "--dataset", DATASET, "--no-progress"]
    with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, env=_env(database_url),
                                 stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    # We reaped the child ourselves; tell Popen so it does not try again.
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise BenchmarkError(
            f"{name} failed (exit {child.returncode}); the tail of its stderr:\n"
            f"{stderr_path.read_text()[-STDERR_TAIL_CHARS:]}"
        )
    own_report = stdout_path.read_text().strip().splitlines()
    return Result(name, seconds, rows, usage.ru_maxrss / 1024,  # ru_maxrss is KiB on Linux
                  note=own_report[-1] if own_report else "")


def _env(database_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return env


# ---------------------------------------------------------------------------------------
# Data


def generate_data(rows: int, out_dir: Path) -> None:
    manage("make_synthetic_claims", "--rows", str(rows), "--out", str(out_dir), "--no-progress")


def write_baseline_csvs(data_dir: Path, csv_dir: Path) -> BaselineFiles:
    """Writes the framed rows and their base claims as CSV in the tables' column order.

    Base claims get ids 1, 2, ... in order of first appearance; the columns the JSON lines
    leave out take the values `import_claims` gives them (no topic, source or generator;
    originals 'not_applicable', restatements 'unverified'). The split is the shard's folder.
    """
    framed_csv, base_csv = csv_dir / "framed_claims.csv", csv_dir / "base_claims.csv"
    base_ids: dict[str, int] = {}
    framed_rows = 0
    with open(framed_csv, "w", newline="", encoding="utf-8") as framed_file, \
            open(base_csv, "w", newline="", encoding="utf-8") as base_file:
        framed_writer = csv.writer(framed_file, lineterminator="\n")
        base_writer = csv.writer(base_file, lineterminator="\n")
        for shard in sorted(data_dir.rglob("*.jsonl")):
            split = shard.parent.name
            with open(shard, "rb") as lines:
                for line in lines:
                    record = orjson.loads(line)
                    external_id = record["claim_id"].split(":", 1)[0]
                    base_id = base_ids.get(external_id)
                    if base_id is None:
                        base_id = base_ids[external_id] = len(base_ids) + 1
                        base_writer.writerow(
                            (base_id, 1, external_id, record["true_label"], split, "", ""))
                    framing = record["framing_type"]
                    verification = "not_applicable" if framing == "original" else "unverified"
                    framed_writer.writerow(
                        (base_id, framing, record["restated_claim"], verification, ""))
                    framed_rows += 1
    # The PostgreSQL server reads these files as its own user.
    for path in (framed_csv, base_csv):
        path.chmod(0o644)
    return BaselineFiles(framed_csv, base_csv, framed_rows, len(base_ids))


# ---------------------------------------------------------------------------------------
# PostgreSQL


def pg_connect(dbname: str, autocommit: bool = True) -> psycopg.Connection:
    return psycopg.connect(f"{PG_SERVER}/{dbname}", autocommit=autocommit)


def checkpoint() -> None:
    """Flushes dirty pages, so a timed step does not pay for the writes of the one before."""
    with pg_connect(SCRATCH_DB) as conn:
        conn.execute("CHECKPOINT")


def bench_postgres(data_dir: Path, log_dir: Path, expected: BaselineFiles) -> list[Result]:
    scratch_db.recreate(PG_SERVER, SCRATCH_DB)
    database_url = f"{PG_SERVER}/{SCRATCH_DB}"
    manage("migrate", "-v0", database_url=database_url)
    checkpoint()
    result = timed_import("PostgreSQL import", database_url, data_dir, log_dir,
                          expected.framed_rows)
    with pg_connect(SCRATCH_DB) as conn:
        check_counts("PostgreSQL import", expected, *(
            conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("annotation_framedclaim", "annotation_baseclaim")))
    return [result, *copy_baselines(expected)]


def copy_baselines(files: BaselineFiles) -> list[Result]:
    """Times server-side COPY of the same rows into tables shaped like the real ones.

    `LIKE ... INCLUDING ALL` copies columns, defaults, identity, indexes and check
    constraints, but never foreign keys: the plain baseline has none, and the stricter one
    adds the deferred key that the real framed claim table has.
    """
    framed_copy = sql.SQL(
        "COPY {} ({}) FROM {} WITH (FORMAT csv, ENCODING 'UTF8', FORCE_NOT_NULL (generator))")
    base_copy = sql.SQL(
        "COPY bench_copy_base ({}) FROM {} WITH (FORMAT csv, ENCODING 'UTF8', "
        "FORCE_NOT_NULL (topic, source))").format(
        sql.SQL(", ").join(map(sql.Identifier, BASE_COLUMNS)), sql.Literal(str(files.base_csv)))

    def copy_framed(table: str) -> sql.Composed:
        return framed_copy.format(sql.Identifier(table),
                                  sql.SQL(", ").join(map(sql.Identifier, FRAMED_COLUMNS)),
                                  sql.Literal(str(files.framed_csv)))

    with pg_connect(SCRATCH_DB) as conn:
        conn.execute("CREATE TABLE bench_copy_base (LIKE annotation_baseclaim INCLUDING ALL)")
        conn.execute("CREATE TABLE bench_copy_framed (LIKE annotation_framedclaim INCLUDING ALL)")
        conn.execute(
            "CREATE TABLE bench_copy_framed_fk (LIKE annotation_framedclaim INCLUDING ALL)")
        conn.execute(
            "ALTER TABLE bench_copy_framed_fk ADD FOREIGN KEY (base_claim_id) "
            "REFERENCES bench_copy_base (id) DEFERRABLE INITIALLY DEFERRED")
        conn.execute("CHECKPOINT")

        # Autocommit: the single statement commits on its own, inside the timing.
        started = time.perf_counter()
        copied = conn.execute(copy_framed("bench_copy_framed")).rowcount
        plain = Result("COPY baseline (framed rows)", time.perf_counter() - started,
                       files.framed_rows, None)
        check_counts(plain.name, files, copied)
        conn.execute("CHECKPOINT")

    with pg_connect(SCRATCH_DB, autocommit=False) as conn:
        started = time.perf_counter()
        copied_base = conn.execute(base_copy).rowcount
        copied = conn.execute(copy_framed("bench_copy_framed_fk")).rowcount
        conn.commit()  # the deferred foreign key of every framed row is checked here
        with_fk = Result("COPY baseline (base + framed, FK)", time.perf_counter() - started,
                         files.framed_rows, None)
        check_counts(with_fk.name, files, copied, copied_base)
    return [plain, with_fk]


# ---------------------------------------------------------------------------------------
# SQLite


def bench_sqlite(data_dir: Path, work_dir: Path, expected: BaselineFiles) -> Result:
    db_path = work_dir / "bench.sqlite3"
    for stale in (db_path, db_path.with_name(db_path.name + "-wal"),
                  db_path.with_name(db_path.name + "-shm")):
        stale.unlink(missing_ok=True)  # a fresh database for every repetition
    database_url = f"sqlite:///{db_path}"
    manage("migrate", "-v0", database_url=database_url)
    result = timed_import("SQLite import", database_url, data_dir, work_dir / "logs",
                          expected.framed_rows)
    with closing(sqlite3.connect(db_path)) as conn:
        check_counts("SQLite import", expected, *(
            conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("annotation_framedclaim", "annotation_baseclaim")))
    return result


# ---------------------------------------------------------------------------------------
# Checks and report


def median_result(runs: tuple[Result, ...]) -> Result:
    """The repetition with the median time (the upper median for an even count), with the
    highest peak RSS of all repetitions and every repetition's time kept for the report."""
    ordered = sorted(runs, key=lambda r: r.seconds)
    middle = ordered[len(ordered) // 2]
    peaks = [r.peak_rss_mib for r in runs if r.peak_rss_mib is not None]
    return Result(middle.name, middle.seconds, middle.rows, max(peaks) if peaks else None,
                  middle.note, tuple(r.seconds for r in runs))


def check_counts(name: str, expected: BaselineFiles, framed: int,
                 base: int | None = None) -> None:
    if framed != expected.framed_rows:
        raise BenchmarkError(f"{name}: {framed:,} framed claims stored, "
                             f"expected {expected.framed_rows:,}")
    if base is not None and base != expected.base_claims:
        raise BenchmarkError(f"{name}: {base:,} base claims stored, "
                             f"expected {expected.base_claims:,}")


def machine_info(pg: dict[str, str] | None) -> dict[str, str | int | float]:
    info = {
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "cpu": cpu_model(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
    }
    if pg is not None:
        info["postgresql"] = pg["server_version"]
        info["postgresql_shared_buffers"] = pg["shared_buffers"]
        info["postgresql_max_wal_size"] = pg["max_wal_size"]
    return info


def evaluate_targets(results: dict[str, Result]) -> tuple[list[Target], float | None]:
    """The issue's targets, and (for information) PostgreSQL's ratio to the FK baseline."""
    pg, lite = results.get("PostgreSQL import"), results.get("SQLite import")
    plain = results.get("COPY baseline (framed rows)")
    with_fk = results.get("COPY baseline (base + framed, FK)")
    ratio = pg.rows_per_second / plain.rows_per_second if pg and plain else None
    fk_ratio = pg.rows_per_second / with_fk.rows_per_second if pg and with_fk else None
    targets = [
        Target("PostgreSQL import time", pg and pg.seconds, PG_MAX_SECONDS, "<=", "s"),
        Target("PostgreSQL rows/s vs COPY", ratio, PG_MIN_COPY_RATIO, ">=", "x"),
        Target("SQLite import time", lite and lite.seconds, SQLITE_MAX_SECONDS, "<=", "s"),
        Target("PostgreSQL peak RSS", pg and pg.peak_rss_mib, MAX_RSS_MIB, "<", "MiB"),
        Target("SQLite peak RSS", lite and lite.peak_rss_mib, MAX_RSS_MIB, "<", "MiB"),
    ]
    return targets, fk_ratio


def print_header(rows: int, machine: dict) -> None:
    print(f"FrameLab import benchmark: {rows:,} framed claims")
    print(f"machine: {machine['cores']} cores, {machine['memory_gib']} GiB, {machine['cpu']}")
    versions = f"Python {machine['python']}, SQLite {machine['sqlite']}"
    if "postgresql" in machine:
        versions += (f", PostgreSQL {machine['postgresql']} (shared_buffers "
                     f"{machine['postgresql_shared_buffers']}, max_wal_size "
                     f"{machine['postgresql_max_wal_size']})")
    print(versions)
    print(flush=True)


def print_report(results: list[Result], targets: list[Target], fk_ratio: float | None,
                 rows: int) -> None:
    plain = next((r for r in results if r.name == "COPY baseline (framed rows)"), None)
    print()
    print(f"{'run':<36}{'seconds':>9}{'rows/s':>11}{'peak RSS':>11}{'vs COPY':>9}")
    for result in results:
        rss = "n/a" if result.peak_rss_mib is None else f"{result.peak_rss_mib:,.0f} MiB"
        ratio = f"{result.rows_per_second / plain.rows_per_second:.3f}" if plain else "n/a"
        print(f"{result.name:<36}{result.seconds:>9.1f}{result.rows_per_second:>11,.0f}"
              f"{rss:>11}{ratio:>9}")
    print("  Import times are the wall time of the whole `manage.py import_claims` process,")
    print("  Django start-up included, and peak RSS is that process's own. The COPY baselines")
    print("  run server-side from CSV files of the same rows: 'framed rows' into a copy of the")
    print("  framed claim table without its foreign key; 'base + framed, FK' also copies the")
    print("  base claims and checks the deferred foreign key at commit, in one transaction.")
    print("  Their memory is the server's and not measured. 'vs COPY' is rows/s relative to")
    print("  the plain COPY baseline.")
    if any(len(result.all_seconds) > 1 for result in results):
        print("  Each figure is the median of the repetitions; peak RSS is the highest. Seconds of")
        print("  every repetition:")
        for result in results:
            print(f"    {result.name:<34}" + "  ".join(f"{t:.1f}" for t in result.all_seconds))
    for result in results:
        if result.note:
            print(f"  {result.name} reported: {result.note}")
    print()
    print("targets")
    for target in targets:
        measured = "-" if target.measured is None else number(target.measured, target.unit)
        print(f"  {target.name:<28}{measured:>10}   target {target.comparison:<2} "
              f"{number(target.limit, target.unit):<11} {target.verdict()}")
    if fk_ratio is not None:
        print(f"  (information: PostgreSQL rows/s vs the FK baseline is {fk_ratio:.3f}x)")
    if rows != FRAMEREF_ROWS:
        print(f"  (the targets are set for {FRAMEREF_ROWS:,} rows; this run used {rows:,})")


def write_json(path: Path, rows: int, machine: dict, results: list[Result],
               targets: list[Target], fk_ratio: float | None) -> None:
    document = {
        "rows": rows,
        "machine": machine,
        "results": [{**asdict(r), "rows_per_second": r.rows_per_second} for r in results],
        "targets": [{**asdict(t), "met": t.met} for t in targets],
        "postgresql_vs_fk_baseline": fk_ratio,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


# ---------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=FRAMEREF_ROWS,
                        help=f"framed claims to generate (default {FRAMEREF_ROWS:,})")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary files and the scratch database")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true",
                        help="skip the PostgreSQL import and the COPY baselines")
    parser.add_argument("--repeat", type=int, default=3, metavar="N",
                        help="measure every run N times and report the median (default 3): "
                             "single runs on a shared 2-core machine vary by 30%% or more")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    args = parser.parse_args()
    if args.skip_sqlite and args.skip_postgres:
        parser.error("--skip-sqlite and --skip-postgres leave nothing to measure")
    return args


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> int:
    args = parse_args()
    pg = None if args.skip_postgres else scratch_db.settings(
        PG_SERVER, ("server_version", "shared_buffers", "max_wal_size"))
    machine = machine_info(pg)
    print_header(args.rows, machine)
    work_dir = Path(tempfile.mkdtemp(prefix="framelab-bench-"))
    # mkdtemp makes the folder 0700; the PostgreSQL server must reach the CSV files in it.
    work_dir.chmod(0o755)
    data_dir, csv_dir, log_dir = work_dir / "data", work_dir / "csv", work_dir / "logs"
    for folder in (csv_dir, log_dir):
        folder.mkdir(mode=0o755)
    results: list[Result] = []
    try:
        step(f"generating {args.rows:,} synthetic rows in {data_dir}")
        generate_data(args.rows, data_dir)
        # Untimed; it also counts what every import must end up storing.
        step("writing the baseline CSV files (not timed)")
        expected = write_baseline_csvs(data_dir, csv_dir)
        if expected.framed_rows != args.rows:
            raise BenchmarkError(
                f"generated {expected.framed_rows:,} rows, asked for {args.rows:,}")
        repetitions: list[list[Result]] = []
        for repetition in range(1, args.repeat + 1):
            runs: list[Result] = []
            if not args.skip_postgres:
                step(f"[{repetition}/{args.repeat}] PostgreSQL: import into scratch database "
                     f"{SCRATCH_DB}, then COPY baselines")
                runs += bench_postgres(data_dir, log_dir, expected)
            if not args.skip_sqlite:
                step(f"[{repetition}/{args.repeat}] SQLite: import into a temporary database file")
                runs.append(bench_sqlite(data_dir, work_dir, expected))
            repetitions.append(runs)
        results = [median_result(same_run) for same_run in zip(*repetitions)]
        targets, fk_ratio = evaluate_targets({r.name: r for r in results})
        print_report(results, targets, fk_ratio, args.rows)
        if args.json:
            write_json(args.json, args.rows, machine, results, targets, fk_ratio)
        return 0
    except BenchmarkError as error:
        print(f"\nbenchmark failed: {error}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"\nkept {work_dir}" + ("" if args.skip_postgres else
                                          f" and the database {SCRATCH_DB}"))
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
            if not args.skip_postgres:
                scratch_db.drop(PG_SERVER, SCRATCH_DB)


if __name__ == "__main__":
    sys.exit(main())
