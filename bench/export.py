"""Benchmark the streaming judgment export (CSV, Parquet, JSON Lines) against PostgreSQL's COPY.

Run from the repository root:

    .venv/bin/python bench/export.py [--rows 1000000] [--repeat N] [--formats csv,parquet,jsonl]
                                     [--keep] [--json PATH]

Steps:
1. A scratch database `framelab_bench_export` is (re)created and migrated, the demo dataset
   loaded, and a FrameRef-shaped study created through `study_create` (40 base claims x 6
   framings in 12 batches of 20).
2. The study is filled with `--rows` judgments by set-based SQL (`INSERT ... SELECT
   generate_series`, not the ORM): ceil(rows / 20) Prolific participants, dealt round-robin
   to the batches, each answering their batch's items in order (one judgment per participant
   and item, positions 1..20, shown/answered timestamps, response times with a few missing,
   a few revised answers, a few returned, timed-out and rejected participants; the last
   participant answers only what is left to make exactly `--rows`). Batch counters are set
   to match, then `VACUUM (ANALYZE)`.
3. Each repetition runs, each as its own child process so that its peak resident memory
   (the child's `VmHWM`, its high-water mark since exec; see `timed_child`) is its own:
   - the baseline: `COPY (<the export's own SELECT>) TO STDOUT WITH (FORMAT csv)`, drained
     through psycopg into a file. The SELECT is the one `judgment_export` builds for its
     COPY path (Django's filtered query, each column formatted in SQL), so the baseline
     moves the same rows and the same bytes;
   - `export_chunks(study=..., fmt=...)` for CSV, Parquet and JSON Lines, the generator the
     API's streaming response and `manage.py export_judgments` consume, written into a
     file. On PostgreSQL, CSV is the same COPY plus a header, Parquet is that COPY's CSV
     parsed by Arrow and written as zstd row groups, JSON Lines is the Python path (ORM
     iterator and orjson). `--formats ...,csv-python` adds CSV through the Python path
     (`use_copy=False`, what SQLite gets), and `copy-inner`, `copy-table` two stricter COPY
     baselines (the export's query unformatted; the bare judgment rows), for information.
   Seconds are the child's own timing of the export loop (from the first request to the
   database until the file is closed; Django start-up excluded); the child also reports
   its RSS just before the export (the floor of imports and Django) and its CPU seconds.
4. Every output is checked: the row count equals the judgments in the database; the CSV has
   the header `COLUMNS` and, after it, exactly the baseline's bytes (SHA-256; the Python
   path's CSV too); the Parquet file has `arrow_schema()`; JSON Lines has one object per
   judgment with the keys `COLUMNS`; a random sample of 500 rows (and the first and last)
   of Parquet and JSON Lines equals the database's values read with independent SQL.
5. A table (median of the repetitions): seconds, rows/s, peak RSS, CPU seconds, rows/s as a
   ratio to the baseline's, and the targets, each MET or NOT MET with its margin.

Exit status: 0 when every output checked out (whether or not the targets were met: they
are reported), 1 when a check failed, 2 when a step failed. The scratch database is dropped
at the end unless `--keep`. Benchmarks are not part of the test run; see bench/README.md.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
import scratch_db  # bench/scratch_db.py (this script's folder is on sys.path)
from machine import cpu_model, memory_gib  # bench/machine.py
from targets import Target, number  # bench/targets.py

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
SCRATCH_DB = "framelab_bench_export"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{SCRATCH_DB}"
STUDY_NAME = "bench export"
DEFAULT_ROWS = 1_000_000
# FrameRef's design: 40 base claims (20 true), six framings, batches of 20 -> 12 batches.
BASE_CLAIMS, BATCH_SIZE = 40, 20
SAMPLE_ROWS = 500
STDERR_TAIL_CHARS = 4000

# The targets, for 1,000,000 judgments on the 2-core reference machine.
MAX_SECONDS = 60.0
MAX_RSS_MB = 300.0  # compared with VmHWM, in MiB
MIN_CSV_COPY_RATIO = 0.3

BASELINE = "COPY (export SELECT) TO STDOUT"
RUN_NAMES = {"copy": BASELINE, "csv": "export_chunks csv", "parquet": "export_chunks parquet",
             "jsonl": "export_chunks jsonl", "csv-python": "export_chunks csv (Python)",
             "copy-inner": "COPY (inner SELECT), info", "copy-table": "COPY (judgment rows), info"}
COPY_KINDS = ("copy", "copy-inner", "copy-table")
FORMATS = ("csv", "parquet", "jsonl", "csv-python", "copy-inner", "copy-table")


class BenchmarkError(Exception):
    """A step failed; the message says which and why."""


class CheckFailed(Exception):
    """An output was wrong; the message says which and how."""


@dataclass
class Run:
    """One child process: one export (or the baseline) of the whole study."""

    kind: str  # "copy", "csv", "parquet" or "jsonl"
    seconds: float  # the export loop, timed inside the child
    process_seconds: float  # wall time of the whole child, Python and Django start-up included
    rows: int
    bytes: int
    peak_rss_mib: float  # the child's VmHWM: its peak RSS since exec
    wait4_maxrss_mib: float  # ru_maxrss from os.wait4, for comparison (see timed_child)
    start_rss_mib: float  # the child's RSS just before the export began
    cpu_seconds: float  # the child's user + system CPU (PostgreSQL's work is not in it)
    sha256_after_header: str = ""  # CSV and the baseline: the hash of the rows' bytes

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


@dataclass
class Summary:
    """The median repetition of one kind, with the highest peak RSS of all of them."""

    name: str
    kind: str
    seconds: float
    rows: int
    bytes: int
    peak_rss_mib: float
    wait4_maxrss_mib: float
    start_rss_mib: float
    cpu_seconds: float
    all_seconds: list[float] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


# ---------------------------------------------------------------------------------------
# The scratch database and its data


def _child_env(var_dir: Path) -> dict[str, str]:
    # A var folder of our own: Django's settings may create media and broker folders there.
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": DATABASE_URL, "FRAMELAB_VAR_DIR": str(var_dir),
            "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}"}


def django_setup(var_dir: Path) -> None:
    os.environ.update({key: value for key, value in _child_env(var_dir).items()
                       if key in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "FRAMELAB_VAR_DIR")})
    import django

    django.setup()


# Participant statuses by g % 100 (g = 0-based participant number): mostly completed, as
# a closed study is, with the statuses an export must carry and mark as excluded.
_PARTICIPANTS_SQL = """
INSERT INTO annotation_participant (
    study_id, external_id, source, platform_study_id, platform_session_id, mturk_hit_id,
    token, batch_id, status, attention_failures, created, consented_at, last_seen_at,
    completed_at, status_changed_at, status_note)
SELECT %(study)s,
       '5f' || lpad(to_hex(g), 22, '0'),
       'prolific',
       %(platform_study)s,
       '65' || lpad(to_hex(g * 7919 + 13), 22, '0'),
       '',
       md5('bench-export-' || g),
       b.id,
       s.status,
       0,
       t.started,
       t.started + interval '40 seconds',
       t.started + interval '6 minutes',
       CASE WHEN s.status = 'completed' THEN t.started + interval '6 minutes' END,
       CASE WHEN s.status <> 'completed' THEN t.started + interval '7 minutes' END,
       ''
FROM generate_series(0, %(participants)s - 1) AS g
JOIN annotation_batch AS b ON b.study_id = %(study)s AND b.index = g %% %(batches)s
CROSS JOIN LATERAL (SELECT %(start)s::timestamptz + g * interval '7 seconds' AS started) AS t
CROSS JOIN LATERAL (SELECT CASE
    WHEN g = %(participants)s - 1 AND %(partial)s THEN 'returned'
    WHEN g %% 100 = 17 THEN 'returned'
    WHEN g %% 100 = 53 THEN 'timed_out'
    WHEN g %% 100 = 89 THEN 'rejected'
    ELSE 'completed' END AS status) AS s
ORDER BY g
"""

# One judgment per (participant, item of their batch), in the item's position; the n-th
# participant (by id) answers items while n * batch_size + position <= rows.
_JUDGMENTS_SQL = """
WITH ps AS (
    SELECT id, batch_id, created, row_number() OVER (ORDER BY id) - 1 AS seq
    FROM annotation_participant WHERE study_id = %(study)s
)
INSERT INTO annotation_judgment (
    participant_id, item_id, accept, confidence, familiarity, position, shown_at,
    answered_at, response_time_ms, attention_passed, submission_key, revisions)
SELECT ps.id, bi.id, random() < 0.5,
       1 + floor(random() * 5)::int, 1 + floor(random() * 5)::int,
       bi.position,
       t.shown, t.shown + t.rt * interval '1 millisecond',
       CASE WHEN random() < 0.02 THEN NULL ELSE t.rt END,
       NULL, gen_random_uuid(),
       CASE WHEN random() < 0.03 THEN 1 ELSE 0 END
FROM ps
JOIN annotation_batchitem AS bi ON bi.batch_id = ps.batch_id
CROSS JOIN LATERAL (
    SELECT ps.created + interval '60 seconds' + (bi.position - 1) * interval '15 seconds'
               + floor(random() * 1000000)::int * interval '1 microsecond' AS shown,
           1500 + floor(random() * 12000)::int AS rt) AS t
WHERE ps.seq * %(batch_size)s + bi.position <= %(rows)s
ORDER BY ps.id, bi.position
"""


def fill_database(rows: int) -> tuple[int, int]:
    """Migrates, loads the demo, designs the study and fills it; returns (study id, judgments)."""
    from django.core.management import call_command
    from django.db import connection, transaction

    from annotation.models import Batch, Dataset, Judgment, Participant, Study
    from annotation.studies.services import study_create

    call_command("migrate", verbosity=0)
    with open(os.devnull, "w") as quiet:
        call_command("load_demo", no_user=True, stdout=quiet)
    dataset = Dataset.objects.get(name="FrameLab demo")
    batches = BASE_CLAIMS * 6 // BATCH_SIZE
    participants = math.ceil(rows / BATCH_SIZE)
    study = study_create(dataset=dataset, name=STUDY_NAME, base_claims=BASE_CLAIMS,
                         batch_size=BATCH_SIZE, raters_per_batch=math.ceil(participants / batches),
                         seed=1)
    if study.batches.count() != batches:
        raise BenchmarkError(f"the study has {study.batches.count()} batches, expected {batches}")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.4242)")  # the same values on every run
        cursor.execute(_PARTICIPANTS_SQL, {
            "study": study.pk, "platform_study": "65a1f0c2d4e8b9a7c3f1e2d0", "batches": batches,
            "participants": participants, "partial": rows % BATCH_SIZE != 0,
            "start": "2026-10-01T09:00:00+00:00"})
        cursor.execute(_JUDGMENTS_SQL, {"study": study.pk, "batch_size": BATCH_SIZE, "rows": rows})
        for batch in Batch.objects.filter(study=study):
            batch.completed_count = batch.participants.filter(
                status=Participant.Status.COMPLETED).count()
            batch.save(update_fields=["completed_count"])
        Study.objects.filter(pk=study.pk).update(status=Study.Status.CLOSED)
    judgments = Judgment.objects.filter(participant__study=study).count()
    if judgments != rows:
        raise BenchmarkError(f"the study holds {judgments:,} judgments, expected {rows:,}")
    connection.close()
    with psycopg.connect(f"{PG_SERVER}/{SCRATCH_DB}", autocommit=True) as conn:
        # Sets hint bits and the visibility map and gathers statistics, so that no timed run
        # pays for the first read after the bulk insert, and the planner sees the real sizes.
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
    return study.pk, judgments


# ---------------------------------------------------------------------------------------
# The child process: one export, timed from inside


def child_main(kind: str, study_id: int, out_path: Path) -> None:
    """Runs one export (or the baseline) into `out_path` and prints its measurements as JSON."""
    import django

    django.setup()
    from django.db import connection

    import annotation.dataio.judgment_table as judgment_export
    from annotation.models import Study

    study = Study.objects.get(pk=study_id)
    connection.ensure_connection()  # connecting is not part of the export's time
    start_rss = _status_mib("VmRSS")
    cpu_before = os.times()
    rows = size = 0
    header_hash = hashlib.sha256()
    started = time.perf_counter()
    with open(out_path, "wb") as out:
        if kind in COPY_KINDS:
            select, params = _baseline_select(kind, study)
            # Composed as `judgment_export` composes its COPY (COPY takes no bound parameters).
            statement = connection.ops.compose_sql(
                f"COPY ({select}) TO STDOUT WITH (FORMAT csv)", params)
            with connection.cursor() as cursor, cursor.copy(statement) as copy:
                for data in copy:  # one message per row
                    out.write(data)
                    size += len(data)
                    rows += 1
        else:
            def count(n: int) -> None:
                nonlocal rows
                rows += n

            fmt, use_copy = ("csv", False) if kind == "csv-python" else (kind, None)
            for data in judgment_export.export_chunks(study=study, fmt=fmt, use_copy=use_copy,
                                                      progress=count):
                out.write(data)
                size += len(data)
    seconds = time.perf_counter() - started
    cpu_after = os.times()
    peak_rss = _status_mib("VmHWM")
    digest = ""
    if kind in ("copy", "csv", "csv-python"):
        digest = _hash_rows(out_path, skip_header=kind != "copy")
    print(json.dumps({
        "seconds": seconds, "rows": rows, "bytes": size, "start_rss_mib": start_rss,
        "peak_rss_mib": peak_rss,
        "cpu_seconds": (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system),
        "sha256_after_header": digest,
    }))


def _baseline_select(kind: str, study) -> tuple[str, list]:
    """The SELECT of a COPY baseline, and its parameters.

    - copy: the export's own SELECT, as `judgment_export` builds it for its COPY path (the
      same rows, in the same order, formatted in SQL: the same bytes as the CSV export);
    - copy-inner: the same filtered, joined and ordered query as Django compiles it for
      `values_list`, without the outer SELECT that formats each column;
    - copy-table: the study's judgment rows as stored, no joins beyond the one that picks
      the study, no order: what PostgreSQL can stream at best.
    """
    import annotation.dataio.judgment_table as judgment_export
    if kind == "copy":
        return judgment_export._copy_select(study=study)
    if kind == "copy-inner":
        query = judgment_export.judgment_export_queryset(study=study).values_list(
            *judgment_export._FIELDS).query
        select, params = query.sql_with_params()
        return select, list(params)
    return ("SELECT j.* FROM annotation_judgment AS j JOIN annotation_participant AS p "
            "ON p.id = j.participant_id WHERE p.study_id = %s", [study.pk])


def _status_mib(key: str) -> float:
    """`VmRSS` (now) or `VmHWM` (the peak since exec) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024  # kB
    raise BenchmarkError(f"no {key} in /proc/self/status")


def _hash_rows(path: Path, skip_header: bool) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if skip_header:
            handle.readline()
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def timed_child(kind: str, study_id: int, out_path: Path, log_dir: Path, var_dir: Path) -> Run:
    """Runs one export as a child process; its peak RSS is its own `VmHWM`.

    Not `ru_maxrss` from `os.wait4`: on Linux a child started with vfork (as subprocess
    does) inherits the parent's high-water mark at exec, so `ru_maxrss` is at least the
    parent's peak (measured here: a bare `python -c pass` reports 513 MiB after the parent
    touched 500 MiB, and `VmHWM` 13 MiB). This parent reads the outputs back to check them,
    so its peak would leak into every later run. `VmHWM` in /proc/self/status is the peak
    of the child's own address space since exec, read by the child after the export;
    `ru_maxrss` is kept beside it in the JSON. Output goes to files, so a child can never
    block on a full pipe while we wait for it.
    """
    stdout_path, stderr_path = log_dir / f"{kind}.out", log_dir / f"{kind}.err"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind,
               "--study-id", str(study_id), "--out", str(out_path)]
    with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, env=_child_env(var_dir),
                                 stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)
        process_seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise BenchmarkError(f"{RUN_NAMES[kind]} failed (exit {child.returncode}); the tail of "
                             f"its stderr:\n{stderr_path.read_text()[-STDERR_TAIL_CHARS:]}")
    report = json.loads(stdout_path.read_text().strip().splitlines()[-1])
    return Run(kind=kind, process_seconds=process_seconds,
               wait4_maxrss_mib=usage.ru_maxrss / 1024, **report)  # ru_maxrss is KiB on Linux


# ---------------------------------------------------------------------------------------
# Checks of the outputs


def check_output(run: Run, path: Path, judgments: int, baseline_hash: str | None,
                 sample: dict) -> list[str]:
    """What is wrong with one output (empty when it is right)."""
    import annotation.dataio.judgment_table as judgment_export
    name = RUN_NAMES[run.kind]
    problems = []
    if run.rows != judgments:
        problems.append(f"{name}: reported {run.rows:,} rows, the study has {judgments:,} "
                        "judgments")
    if path.stat().st_size != run.bytes:
        problems.append(f"{name}: {path.stat().st_size:,} bytes on disk, {run.bytes:,} written")
    if run.kind in ("csv", "csv-python"):
        with open(path, "rb") as handle:
            header = handle.readline().decode().rstrip("\n").split(",")
        if tuple(header) != judgment_export.COLUMNS:
            problems.append(f"{name}: header {header[:4]}... is not COLUMNS")
        if baseline_hash is not None and run.sha256_after_header != baseline_hash:
            problems.append(f"{name}: the rows after the header differ from the baseline "
                            "COPY's bytes")
        lines = _count_csv_rows(path)
        if lines != judgments:
            problems.append(f"{name}: {lines:,} data rows in the file, expected {judgments:,}")
    elif run.kind in COPY_KINDS:
        lines = _count_csv_rows(path, header=False)
        if lines != judgments:
            problems.append(f"{name}: {lines:,} rows in the file, expected {judgments:,}")
    elif run.kind == "jsonl":
        import orjson

        lines = 0
        with open(path, "rb") as handle:
            for number, line in enumerate(handle):
                lines += 1
                if number == 0 or number in sample:
                    record = orjson.loads(line)
                    if tuple(record) != judgment_export.COLUMNS:
                        problems.append(f"jsonl: line {number + 1:,}: keys {tuple(record)[:4]}... "
                                        "are not COLUMNS")
                    elif number in sample:
                        problems += _compare_sample("jsonl", number, record, sample[number])
        if lines != judgments:
            problems.append(f"jsonl: {lines:,} lines, expected {judgments:,}")
    elif run.kind == "parquet":
        problems += _check_parquet(path, judgments, sample)
    return problems


def _count_csv_rows(path: Path, header: bool = True) -> int:
    """Records, not lines: Arrow's reader, which knows quoted newlines."""
    import pyarrow.csv as pacsv

    with open(path, newline="", encoding="utf-8") as handle:
        first = next(csv.reader(handle), None)  # the csv module knows quoted newlines too
    if first is None:
        return 0
    names = [f"c{i}" for i in range(len(first))]
    parse = pacsv.ParseOptions(newlines_in_values=True)
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1 if header else 0,
                                       block_size=1 << 24),
        parse_options=parse,
        convert_options=pacsv.ConvertOptions(column_types={name: "string" for name in names}))
    return sum(batch.num_rows for batch in reader)


def expected_sample(study_id: int, judgments: int, seed: int = 7) -> dict:
    """Export row numbers -> the values the database holds for them, read with plain SQL.

    Written independently of `judgment_export`: the export's order is participant, then
    position, then the judgment's id, so the k-th row is the k-th by that order.
    """
    rng = random.Random(seed)
    picks = sorted(set(rng.sample(range(judgments), min(SAMPLE_ROWS, judgments)))
                   | {0, judgments - 1})
    query = """
        SELECT row_number() OVER (ORDER BY j.participant_id, j.position, j.id) - 1 AS n,
               j.participant_id, j.position, p.external_id, b.index + 1, fc.text,
               bc.external_id || ':' || fc.framing, fc.framing, bc.true_label,
               CASE WHEN j.accept THEN 'SUPPORTS' ELSE 'REFUTES' END,
               j.confidence, j.familiarity, j.shown_at, j.answered_at, j.response_time_ms,
               p.status, bi.id, j.revisions
        FROM annotation_judgment j
        JOIN annotation_participant p ON p.id = j.participant_id
        JOIN annotation_batchitem bi ON bi.id = j.item_id
        JOIN annotation_batch b ON b.id = bi.batch_id
        JOIN annotation_framedclaim fc ON fc.id = bi.framed_claim_id
        JOIN annotation_baseclaim bc ON bc.id = fc.base_claim_id
        WHERE p.study_id = %s
    """
    with psycopg.connect(f"{PG_SERVER}/{SCRATCH_DB}") as conn:
        found = conn.execute(
            f"SELECT * FROM ({query}) AS numbered WHERE n = ANY(%s)",
            [study_id, picks]).fetchall()
    sample = {row[0]: row[1:] for row in found}
    return sample


_SAMPLE_COLUMNS = ("participant_id", "position", "Annotator_ID", "Task_Group_ID", "text",
                   "full_claim_id", "framing_type", "true_label", "accurate_response",
                   "confidence_response", "familiarity_response", "shown_at", "answered_at",
                   "response_time_ms", "participant_status", "DataPoint_ID", "revisions")


def _check_parquet(path: Path, judgments: int, sample: dict) -> list[str]:
    import pyarrow.parquet as pq

    import annotation.dataio.judgment_table as judgment_export
    problems = []
    parquet = pq.ParquetFile(path)
    if not parquet.schema_arrow.equals(judgment_export.arrow_schema()):
        problems.append(f"parquet: schema differs from arrow_schema():\n{parquet.schema_arrow}")
    if parquet.metadata.num_rows != judgments:
        problems.append(f"parquet: {parquet.metadata.num_rows:,} rows, expected {judgments:,}")
    if problems:
        return problems
    table = pq.read_table(path, columns=list(_SAMPLE_COLUMNS) + ["excluded", "study"])
    for number, expected in sample.items():
        got = {name: table.column(name)[number].as_py()
               for name in _SAMPLE_COLUMNS + ("excluded", "study")}
        problems += _compare_sample("parquet", number, got, expected)
        if len(problems) >= 5:
            break
    return problems


def _compare_sample(name: str, number: int, got: dict, expected: tuple) -> list[str]:
    """Differences between one exported row and the database's values (none: empty)."""
    want = dict(zip(_SAMPLE_COLUMNS, expected))
    want["excluded"] = want["participant_status"] in ("returned", "timed_out", "rejected",
                                                       "excluded")
    want["study"] = STUDY_NAME
    got = dict(got)
    for column in ("shown_at", "answered_at"):  # JSON Lines has them as ISO 8601 strings
        if isinstance(got.get(column), str):
            got[column] = datetime.fromisoformat(got[column])
    wrong = {column: (got.get(column), value) for column, value in want.items()
             if got.get(column) != value}
    return [f"{name}: row {number:,} differs from the database (exported, expected): {wrong}"] \
        if wrong else []


# ---------------------------------------------------------------------------------------
# Report


def summarise(kind: str, runs: list[Run]) -> Summary:
    ordered = sorted(runs, key=lambda r: r.seconds)
    middle = ordered[len(ordered) // 2]
    return Summary(name=RUN_NAMES[kind], kind=kind, seconds=middle.seconds, rows=middle.rows,
                   bytes=middle.bytes, peak_rss_mib=max(r.peak_rss_mib for r in runs),
                   wait4_maxrss_mib=max(r.wait4_maxrss_mib for r in runs),
                   start_rss_mib=middle.start_rss_mib, cpu_seconds=middle.cpu_seconds,
                   all_seconds=[r.seconds for r in runs])


def targets_of(summaries: dict[str, Summary]) -> list[Target]:
    baseline = summaries.get("copy")
    targets = []
    for kind in ("csv", "parquet"):
        found = summaries.get(kind)
        targets.append(Target(f"{kind} seconds", found and found.seconds, MAX_SECONDS, "<=", "s"))
        targets.append(Target(f"{kind} peak RSS", found and found.peak_rss_mib, MAX_RSS_MB, "<",
                              "MiB"))
    exported = summaries.get("csv")
    ratio = (exported.rows_per_second / baseline.rows_per_second
             if exported and baseline else None)
    targets.append(Target("csv rows/s vs COPY", ratio, MIN_CSV_COPY_RATIO, ">=", "x"))
    return targets


def machine_info(pg: dict[str, str]) -> dict:
    return {"cores": os.cpu_count(), "memory_gib": memory_gib(), "cpu": cpu_model(),
            "python": platform.python_version(), "postgresql": pg["server_version"],
            "postgresql_shared_buffers": pg["shared_buffers"],
            "postgresql_work_mem": pg["work_mem"]}


def print_report(summaries: list[Summary], targets: list[Target], load: dict, rows: int) -> None:
    baseline = next((s for s in summaries if s.kind == "copy"), None)
    print()
    print(f"{'run':<32}{'seconds':>9}{'rows/s':>10}{'MB out':>8}{'peak RSS':>10}{'start RSS':>10}"
          f"{'CPU s':>7}{'vs COPY':>9}")
    for s in summaries:
        ratio = f"{s.rows_per_second / baseline.rows_per_second:.3f}" if baseline else "n/a"
        print(f"{s.name:<32}{s.seconds:>9.1f}{s.rows_per_second:>10,.0f}{s.bytes / 1e6:>8,.0f}"
              f"{s.peak_rss_mib:>6,.0f} MiB{s.start_rss_mib:>6,.0f} MiB{s.cpu_seconds:>7.1f}"
              f"{ratio:>9}")
    print("  seconds: the export loop inside its own child process (first query to closed file);")
    print("  peak RSS: the child's VmHWM after the export (Python, Django, pyarrow included);")
    print("  start RSS: the child's RSS just before the export; CPU s: the child's user + system")
    print("  CPU (PostgreSQL's work is not in it); vs COPY: rows/s relative to the baseline.")
    if any(len(s.all_seconds) > 1 for s in summaries):
        print("  Median of the repetitions (peak RSS: the highest); seconds of each:")
        for s in summaries:
            print(f"    {s.name:<32}" + "  ".join(f"{t:.1f}" for t in s.all_seconds))
    print(f"  load average (1 min) before {load['before'][0]:.1f}, after {load['after'][0]:.1f} "
          f"on {os.cpu_count()} cores")
    print()
    print("targets")
    for t in targets:
        measured = "-" if t.measured is None else number(t.measured, t.unit)
        limit = number(t.limit, t.unit)
        print(f"  {t.name:<22}{measured:>10}   target {t.comparison:<2} {limit:<9} {t.verdict()}")
    by_kind = {s.kind: s for s in summaries}
    for kind in ("csv", "parquet"):
        for other in ("copy-inner", "copy-table"):
            if kind in by_kind and other in by_kind:
                print(f"  (information: {kind} rows/s vs {RUN_NAMES[other][:-6]} is "
                      f"{by_kind[kind].rows_per_second / by_kind[other].rows_per_second:.3f}x)")
    if rows != DEFAULT_ROWS:
        print(f"  (the targets are set for {DEFAULT_ROWS:,} judgments; this run used {rows:,})")


# ---------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS,
                        help=f"judgments in the study (default {DEFAULT_ROWS:,})")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="measure every run N times and report the median (default 1)")
    parser.add_argument("--formats", default="csv,parquet,jsonl",
                        help="comma-separated runs besides the baseline, which always runs "
                             "(default csv,parquet,jsonl). For information: csv-python (CSV "
                             "through the Python path, use_copy=False, as on SQLite), "
                             "copy-inner and copy-table (stricter COPY baselines, see "
                             "_baseline_select)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the scratch database and the output files")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    # The child process's own arguments (one export, timed from inside).
    parser.add_argument("--child", choices=tuple(RUN_NAMES), help=argparse.SUPPRESS)
    parser.add_argument("--study-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return args
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in args.formats if f not in FORMATS]
    if unknown or not args.formats:
        parser.error(f"--formats: unknown {', '.join(unknown) or '(none given)'}; "
                     f"accepted: {', '.join(FORMATS)}")
    return args


def step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args.child, args.study_id, args.out)
        return 0

    machine = machine_info(scratch_db.settings(PG_SERVER, ("server_version", "shared_buffers", "work_mem")))
    load = {"before": os.getloadavg()}
    print(f"FrameLab export benchmark: {args.rows:,} judgments, formats "
          f"{', '.join(args.formats)}, {args.repeat} repetition(s)")
    print(f"machine: {machine['cores']} cores, {machine['memory_gib']} GiB, {machine['cpu']}; "
          f"Python {machine['python']}, PostgreSQL {machine['postgresql']} (shared_buffers "
          f"{machine['postgresql_shared_buffers']}); load average "
          + ", ".join(f"{v:.1f}" for v in load["before"]), flush=True)

    work = Path(tempfile.mkdtemp(prefix="framelab-bench-export-"))
    var_dir, log_dir, out_dir = work / "var", work / "logs", work / "out"
    for folder in (var_dir, log_dir, out_dir):
        folder.mkdir()
    kinds = ["copy", *args.formats]
    problems: list[str] = []
    try:
        step(f"scratch database {SCRATCH_DB}: migrate, demo dataset, study, {args.rows:,} "
             "judgments by INSERT ... SELECT, VACUUM (ANALYZE)")
        scratch_db.recreate(PG_SERVER, SCRATCH_DB)
        django_setup(var_dir)
        started = time.perf_counter()
        study_id, judgments = fill_database(args.rows)
        step(f"filled in {time.perf_counter() - started:.0f} s; reading a sample of "
             f"{SAMPLE_ROWS} rows with independent SQL for the checks")
        sample = expected_sample(study_id, judgments)

        runs: dict[str, list[Run]] = {kind: [] for kind in kinds}
        for repetition in range(1, args.repeat + 1):
            baseline_hash = None
            for kind in kinds:
                path = out_dir / f"{kind}.out"
                step(f"[{repetition}/{args.repeat}] {RUN_NAMES[kind]}")
                run = timed_child(kind, study_id, path, log_dir, var_dir)
                print(f"    {run.seconds:.1f} s, {run.rows_per_second:,.0f} rows/s, "
                      f"{run.bytes / 1e6:,.0f} MB, peak RSS {run.peak_rss_mib:,.0f} MiB",
                      flush=True)
                if kind == "copy":
                    baseline_hash = run.sha256_after_header
                problems += check_output(run, path, judgments, baseline_hash, sample)
                runs[kind].append(run)
                if not args.keep:
                    path.unlink()
        load["after"] = os.getloadavg()
        summaries = [summarise(kind, runs[kind]) for kind in kinds]
        targets = targets_of({s.kind: s for s in summaries})
        print_report(summaries, targets, load, args.rows)
        print()
        if problems:
            print("checks FAILED:")
            for problem in problems:
                print(f"  {problem}")
        else:
            checked = [f"every output has {judgments:,} rows"]
            if {"csv", "csv-python"} & set(kinds):
                checked.append("CSV's rows after its header are the baseline's bytes")
            if "parquet" in kinds:
                checked.append("Parquet has arrow_schema()")
            sampled = [name for kind, name in (("parquet", "Parquet"), ("jsonl", "JSON Lines"))
                       if kind in kinds]
            if sampled:
                checked.append(f"{len(sample)} sampled rows of {' and '.join(sampled)} match "
                               "the database")
            print("checks: " + "; ".join(checked))
        if args.json:
            args.json.write_text(json.dumps({
                "rows": args.rows, "repeat": args.repeat, "machine": machine,
                "load_average": load,
                "results": [{**asdict(s), "rows_per_second": s.rows_per_second,
                             "vs_copy": s.rows_per_second / summaries[0].rows_per_second}
                            for s in summaries],
                "targets": [{**asdict(t), "met": t.met} for t in targets],
                "problems": problems,
            }, indent=2) + "\n")
        return 1 if problems else 0
    except BenchmarkError as error:
        print(f"\nbenchmark failed: {error}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001  (any other failure is a failed step too, not a failed check)
        traceback.print_exc()
        print("\nbenchmark failed (see the traceback above)", file=sys.stderr)
        return 2
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001  (Django may not have been set up)
            pass
        if args.keep:
            print(f"\nkept {work} and the database {SCRATCH_DB}")
        else:
            shutil.rmtree(work, ignore_errors=True)
            scratch_db.drop(PG_SERVER, SCRATCH_DB)


if __name__ == "__main__":
    sys.exit(main())
