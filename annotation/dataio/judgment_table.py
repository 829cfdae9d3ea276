"""The tidy judgment table of method.md section 2.4, streamed to CSV, JSON Lines or Parquet.

One row per (participant, item): FrameRef's ten columns first, with exactly FrameRef's
names, so that notebooks written for FrameRef's tidy table run unchanged, then the
platform's own columns (study, batch, timing, attention checks, participant status, ...).

What the FrameRef columns mean on this platform:

- `DataPoint_ID`: the id of the batch item (`BatchItem.pk`), an integer. Every rater of one
  batch who saw the same item shares it, as raters of one Prolific data point do; it is
  unique across the platform, so tables of several studies can be concatenated.
- `Task_Group_ID`: the 1-based number of the batch (one rater's assignment), as the study
  page shows it; unique within a study.
- `Annotator_ID`: the id the recruitment platform gave the participant (Prolific's
  `PROLIFIC_PID`), unique within a study.
- `full_claim_id`: FrameRef's `<base id>:<framing>`; `framing_type` and `true_label` are
  the framed claim's.
- `accurate_response`: `SUPPORTS` for "Yes" to "Is this accurate?", `REFUTES` for "No";
  `confidence_response` and `familiarity_response` are the 1-5 answers.

Attention checks are not claims of the dataset, so they are left out unless asked for
(`include_attention_checks=True`); then their rows have no `full_claim_id` and
`framing_type`, `true_label` is the right answer, and `is_attention_check` is true.

Memory stays constant whatever the study's size: rows come from the database through
`QuerySet.iterator(chunk_size=...)` and each chunk is encoded and handed on before the
next one is read. Parquet is written one row group per chunk through pyarrow into a
buffer that is drained after every group. On PostgreSQL, CSV comes from the database's
own `COPY (SELECT ...) TO STDOUT` (the same bytes, without Python's per-row cost), and
Parquet from that CSV through Arrow's reader.
"""
from __future__ import annotations

import csv
import functools
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import orjson
from django.db import connection
from django.db.models import F

from annotation.models import Judgment, Participant, Study, TruthLabel
from core.vocabulary import FRAMINGS, TRUTH_LABELS

TIDY_COLUMNS = (
    "DataPoint_ID",
    "Task_Group_ID",
    "text",
    "Annotator_ID",
    "full_claim_id",
    "framing_type",
    "true_label",
    "accurate_response",
    "confidence_response",
    "familiarity_response",
)
PLATFORM_COLUMNS = (
    "study",  # the study's name
    "batch",  # 1-based batch number (equal to Task_Group_ID)
    "position",  # 1-based order in which the participant was shown the item
    "shown_at",  # UTC
    "answered_at",  # UTC, the last answer when the participant went back and changed it
    "response_time_ms",  # measured in the browser; empty where JavaScript did not run
    "is_attention_check",
    "attention_passed",  # on attention-check rows: whether the answer was the right one
    "participant_attention_failures",  # the participant's failed checks in the whole session
    "participant_status",  # completed, returned, timed_out, rejected, excluded, active, ...
    "excluded",  # the participant's status excludes them from analysis
    "participant_source",  # prolific, mturk, generic, or persona (a language model, rate_study)
    "participant_id",  # the platform's participant id
    "platform_study_id",  # Prolific's STUDY_ID (or MTurk's assignment id)
    "platform_session_id",  # Prolific's SESSION_ID
    "base_claim_id",
    "split",
    "revisions",  # how often the participant changed this answer
)
COLUMNS = TIDY_COLUMNS + PLATFORM_COLUMNS

EXPORT_FORMATS = ("csv", "jsonl", "parquet")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/jsonl",
    "parquet": "application/vnd.apache.parquet",
}
FILE_SUFFIXES = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet"}
DEFAULT_CHUNK_ROWS = 5_000

# CSV for spreadsheets (the default): a text cell that starts with one of these is written
# with a `'` in front, so that Excel, LibreOffice or Google Sheets show it as text instead of
# running it as a formula (`=HYPERLINK(...)` in a participant id, a claim text starting with
# `@` or `-`). `'` itself is among them so that the escape can be undone exactly
# (`read_judgment_table` does). `raw_csv=True` writes every cell as it is stored, for programs.
SPREADSHEET_LEADERS = ("=", "+", "-", "@", "\t", "\r", "'")
# The free-text columns: everything else is a number, a time, a boolean or a fixed word.
SPREADSHEET_ESCAPED_COLUMNS = ("text", "Annotator_ID", "full_claim_id", "study",
                               "platform_study_id", "platform_session_id", "base_claim_id")


@functools.cache
def arrow_schema():
    """The Arrow schema of the table (Parquet files have exactly it).

    pyarrow is imported here and in the encoders that use it, not with the module: the pages
    and commands that never write Parquet or read Arrow CSV do not load it.
    """
    import pyarrow as pa

    utc_microseconds = pa.timestamp("us", tz="UTC")
    schema = pa.schema([
        ("DataPoint_ID", pa.int64()),
        ("Task_Group_ID", pa.int64()),
        ("text", pa.string()),
        ("Annotator_ID", pa.string()),
        ("full_claim_id", pa.string()),
        ("framing_type", pa.string()),
        ("true_label", pa.string()),
        ("accurate_response", pa.string()),
        ("confidence_response", pa.int64()),
        ("familiarity_response", pa.int64()),
        ("study", pa.string()),
        ("batch", pa.int64()),
        ("position", pa.int64()),
        ("shown_at", utc_microseconds),
        ("answered_at", utc_microseconds),
        ("response_time_ms", pa.int64()),
        ("is_attention_check", pa.bool_()),
        ("attention_passed", pa.bool_()),
        ("participant_attention_failures", pa.int64()),
        ("participant_status", pa.string()),
        ("excluded", pa.bool_()),
        ("participant_source", pa.string()),
        ("participant_id", pa.int64()),
        ("platform_study_id", pa.string()),
        ("platform_session_id", pa.string()),
        ("base_claim_id", pa.string()),
        ("split", pa.string()),
        ("revisions", pa.int64()),
    ])
    assert tuple(schema.names) == COLUMNS
    return schema

# The pandas dtypes of `judgment_table` and `read_judgment_table`: plain int64 where a value
# is always there (what a FrameRef notebook reading a CSV gets), nullable types where not.
PANDAS_DTYPES = {
    "DataPoint_ID": "int64",
    "Task_Group_ID": "int64",
    "text": "str",
    "Annotator_ID": "str",
    "full_claim_id": "str",
    "framing_type": "str",
    "true_label": "str",
    "accurate_response": "str",
    "confidence_response": "int64",
    "familiarity_response": "int64",
    "study": "str",
    "batch": "int64",
    "position": "int64",
    "shown_at": "datetime64[us, UTC]",
    "answered_at": "datetime64[us, UTC]",
    "response_time_ms": "Int64",
    "is_attention_check": "bool",
    "attention_passed": "boolean",
    "participant_attention_failures": "int64",
    "participant_status": "str",
    "excluded": "bool",
    "participant_source": "str",
    "participant_id": "int64",
    "platform_study_id": "str",
    "platform_session_id": "str",
    "base_claim_id": "str",
    "split": "str",
    "revisions": "int64",
}
assert tuple(PANDAS_DTYPES) == COLUMNS
_TIMESTAMP_COLUMNS = ("shown_at", "answered_at")

_FIELDS = (
    "item_id",
    "item__batch__index",
    "item__framed_claim__text",
    "item__attention_check__text",
    "participant__external_id",
    "item__framed_claim__base_claim__external_id",
    "item__framed_claim__framing",
    "item__framed_claim__base_claim__true_label",
    "item__attention_check__expected_accept",
    "accept",
    "confidence",
    "familiarity",
    "position",
    "shown_at",
    "answered_at",
    "response_time_ms",
    "attention_passed",
    "participant__attention_failures",
    "participant__status",
    "participant__source",
    "participant_id",
    "participant__platform_study_id",
    "participant__platform_session_id",
    "item__framed_claim__base_claim__split",
    "revisions",
)
_EXCLUDED_STATUSES = frozenset(Participant.EXCLUDED_FROM_ANALYSIS)
_TRUTH_WORDS = {"supports": "SUPPORTS", "true": "SUPPORTS", "refutes": "REFUTES", "false": "REFUTES"}

ProgressCallback = Callable[[int], None]


def export_file_name(study: Study, fmt: str) -> str:
    """A file name that says what the file holds: `judgments-<study>-<id>.<suffix>`."""
    _check_format(fmt)
    # ASCII only: the name goes into a Content-Disposition header as it is.
    slug = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_" else "-"
                   for ch in study.name.strip().lower())
    slug = "-".join(part for part in slug.split("-") if part) or "study"
    return f"judgments-{slug[:60]}-{study.pk}{FILE_SUFFIXES[fmt]}"


def _check_format(fmt: str) -> None:
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format '{fmt}'; accepted: {', '.join(EXPORT_FORMATS)}")


def _as_list(value, name: str, accepted: Iterable[str], normalise=lambda v: v) -> list[str] | None:
    if value is None or value == "" or value == []:
        return None
    values = [value] if isinstance(value, str) else list(value)
    chosen = []
    for raw in values:
        for part in str(raw).split(","):
            part = part.strip()
            if not part:
                continue
            normal = normalise(part)
            if normal not in accepted:
                raise ValueError(f"unknown {name} '{part}'; accepted: {', '.join(accepted)}")
            chosen.append(normal)
    return chosen or None


def clean_filters(
    *,
    framing=None,
    truth=None,
    participant_status=None,
    include_excluded: bool = True,
    include_attention_checks: bool = False,
) -> dict:
    """The filters in one canonical form (lists of known values); `ValueError` names a bad one.

    Each of `framing`, `truth` and `participant_status` takes one value, a comma-separated
    string or a list. `truth` accepts SUPPORTS/REFUTES or true/false.
    """
    return {
        "framing": _as_list(framing, "framing", FRAMINGS, str.lower),
        "truth": _as_list(truth, "truth value", TRUTH_LABELS,
                          lambda v: _TRUTH_WORDS.get(v.lower(), v)),
        "participant_status": _as_list(participant_status, "participant status",
                                       Participant.Status.values, str.lower),
        "include_excluded": bool(include_excluded),
        "include_attention_checks": bool(include_attention_checks),
    }


def judgment_export_queryset(
    *,
    study: Study,
    framing=None,
    truth=None,
    participant_status=None,
    include_excluded: bool = True,
    include_attention_checks: bool = False,
):
    """The study's judgments that an export with these filters holds, in export order.

    Ordered by participant, then the order they were shown the items, so the rows of one
    rater stay together. A framing or truth filter leaves attention checks out.
    """
    filters = clean_filters(framing=framing, truth=truth, participant_status=participant_status,
                            include_excluded=include_excluded,
                            include_attention_checks=include_attention_checks)
    judgments = Judgment.objects.filter(participant__study=study)
    if not filters["include_attention_checks"]:
        judgments = judgments.filter(item__attention_check__isnull=True)
    if filters["framing"]:
        judgments = judgments.filter(item__framed_claim__framing__in=filters["framing"])
    if filters["truth"]:
        judgments = judgments.filter(item__framed_claim__base_claim__true_label__in=filters["truth"])
    if filters["participant_status"]:
        judgments = judgments.filter(participant__status__in=filters["participant_status"])
    if not filters["include_excluded"]:
        judgments = judgments.exclude(participant__status__in=_EXCLUDED_STATUSES)
    return judgments.order_by("participant_id", "position", "pk")


def _tuples(*, study: Study, chunk_size: int = DEFAULT_CHUNK_ROWS, **filters) -> Iterator[tuple]:
    """The export's rows as tuples in `COLUMNS` order, read from the database in chunks."""
    rows = judgment_export_queryset(study=study, **filters).values_list(*_FIELDS)
    study_name = study.name
    supports, refutes = TruthLabel.SUPPORTS.value, TruthLabel.REFUTES.value
    for (item_id, batch_index, claim_text, check_text, annotator, base_id, framing, true_label,
         check_expected, accept, confidence, familiarity, position, shown_at, answered_at,
         response_time_ms, attention_passed, failures, status, source, participant_id,
         platform_study_id, platform_session_id, split, revisions) in rows.iterator(chunk_size=chunk_size):
        is_check = claim_text is None
        if is_check:
            text, full_claim_id = check_text, None
            true_label = supports if check_expected else refutes
        else:
            text, full_claim_id = claim_text, f"{base_id}:{framing}"
        yield (
            item_id, batch_index + 1, text, annotator, full_claim_id, framing, true_label,
            supports if accept else refutes, confidence, familiarity,
            study_name, batch_index + 1, position, shown_at, answered_at, response_time_ms,
            is_check, attention_passed, failures, status, status in _EXCLUDED_STATUSES, source,
            participant_id, platform_study_id or None, platform_session_id or None, base_id,
            split, revisions,
        )


def judgment_table_rows(*, study: Study, chunk_size: int = DEFAULT_CHUNK_ROWS, **filters) -> Iterator[dict]:
    """The tidy table as dicts keyed by `COLUMNS`, streamed: memory does not grow with the study."""
    for row in _tuples(study=study, chunk_size=chunk_size, **filters):
        yield dict(zip(COLUMNS, row))


def _frame_from_columns(columns: dict[str, list]):
    import pandas as pd

    frame = pd.DataFrame(columns, columns=list(COLUMNS))
    return _typed(frame)


def _typed(frame):
    import pandas as pd

    frame = frame.copy()
    for column in _TIMESTAMP_COLUMNS:
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601").astype(
            PANDAS_DTYPES[column])
    return frame.astype({c: t for c, t in PANDAS_DTYPES.items() if c not in _TIMESTAMP_COLUMNS})


def judgment_table(*, study: Study, **filters):
    """The tidy table as a pandas DataFrame with `COLUMNS` in order and `PANDAS_DTYPES`.

    This one holds the whole table in memory, as a DataFrame does; use the exports for
    tables larger than memory.
    """
    columns: dict[str, list] = {name: [] for name in COLUMNS}
    appenders = [columns[name].append for name in COLUMNS]
    for row in _tuples(study=study, **filters):
        for append, value in zip(appenders, row):
            append(value)
    return _frame_from_columns(columns)


def read_judgment_table(source, fmt: str | None = None, *, raw_csv: bool = False):
    """Reads an export file (a path, or a file object with `fmt`) back into the typed DataFrame.

    A CSV file is taken to be escaped for spreadsheets (the default export), and the escape is
    undone; `raw_csv=True` reads a file exported with `raw_csv` as it is."""
    import pandas as pd

    if fmt is None:
        suffix = Path(source).suffix.lower().lstrip(".")
        fmt = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}.get(suffix)
    _check_format(fmt)
    if fmt == "csv":
        frame = pd.read_csv(source, keep_default_na=False, na_values=[""],
                            dtype={c: t for c, t in PANDAS_DTYPES.items() if c not in _TIMESTAMP_COLUMNS})
        if not raw_csv:
            for column in SPREADSHEET_ESCAPED_COLUMNS:
                if column in frame:
                    frame[column] = frame[column].map(
                        lambda v: v[1:] if isinstance(v, str) and v.startswith("'") else v)
    elif fmt == "jsonl":
        frame = pd.read_json(source, lines=True, dtype=False)
        if frame.empty:
            frame = pd.DataFrame(columns=list(COLUMNS))
    else:
        frame = pd.read_parquet(source)
    return _typed(frame[list(COLUMNS)])


# --- Encoders: each turns a chunk of row tuples into bytes -------------------------------

_CSV_BOOLEAN = {True: "true", False: "false", None: ""}
_CSV_TIMESTAMPS = tuple(COLUMNS.index(name) for name in _TIMESTAMP_COLUMNS)


class _CsvEncoder:
    """CSV as pandas reads it back: `true`/`false`, ISO 8601 times, empty for missing.

    Only the columns that need it are converted (the csv module already writes None as
    an empty cell), which keeps the per-row cost close to the csv module's own.
    """

    def __init__(self, raw_csv: bool = False) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\n")
        self._booleans = tuple(index for index, field in enumerate(arrow_schema())
                               if str(field.type) == "bool")
        self._escaped = () if raw_csv else tuple(COLUMNS.index(c) for c in SPREADSHEET_ESCAPED_COLUMNS)

    def header(self) -> bytes:
        self._writer.writerow(COLUMNS)
        return self._drain()

    def encode(self, rows: list[tuple]) -> bytes:
        boolean = _CSV_BOOLEAN
        (shown, answered), flags, escaped = _CSV_TIMESTAMPS, self._booleans, self._escaped
        leaders = SPREADSHEET_LEADERS
        out = []
        for row in rows:
            row = list(row)
            row[shown] = row[shown].isoformat(timespec="microseconds")
            row[answered] = row[answered].isoformat(timespec="microseconds")
            for index in flags:
                row[index] = boolean[row[index]]
            for index in escaped:
                value = row[index]
                if value and value[0] in leaders:
                    row[index] = "'" + value
            out.append(row)
        self._writer.writerows(out)
        return self._drain()

    def finish(self) -> bytes:
        return b""

    def _drain(self) -> bytes:
        data = self._buffer.getvalue().encode("utf-8")
        self._buffer.seek(0)
        self._buffer.truncate()
        return data


class _JsonLinesEncoder:
    def header(self) -> bytes:
        return b""

    def encode(self, rows: list[tuple]) -> bytes:
        dumps = orjson.dumps
        return b"".join(dumps(dict(zip(COLUMNS, row))) + b"\n" for row in rows)

    def finish(self) -> bytes:
        return b""


class _Drain(io.RawIOBase):
    """A write-only file that keeps what pyarrow writes until `take()` hands it on."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        self._parts.append(data)
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class _ParquetEncoder:
    def __init__(self) -> None:
        import pyarrow.parquet as pq

        self._sink = _Drain()
        self._writer = pq.ParquetWriter(self._sink, arrow_schema(), compression="zstd")

    def header(self) -> bytes:
        return self._sink.take()

    def encode(self, rows: list[tuple]) -> bytes:
        import pyarrow as pa

        columns = list(zip(*rows)) if rows else [[] for _ in COLUMNS]
        schema = arrow_schema()
        batch = pa.RecordBatch.from_arrays(
            [pa.array(column, type=field.type) for column, field in zip(columns, schema)],
            schema=schema,
        )
        self._writer.write_batch(batch, row_group_size=len(rows) or None)
        return self._sink.take()

    def write(self, table) -> bytes:
        """One row group from an Arrow table of `arrow_schema()`."""
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        return self._sink.take()

    def finish(self) -> bytes:
        self._writer.close()
        return self._sink.take()


_ENCODERS = {"csv": _CsvEncoder, "jsonl": _JsonLinesEncoder, "parquet": _ParquetEncoder}


def export_chunks(
    *,
    study: Study,
    fmt: str,
    chunk_size: int = DEFAULT_CHUNK_ROWS,
    progress: ProgressCallback | None = None,
    use_copy: bool | None = None,
    raw_csv: bool = False,
    **filters,
) -> Iterator[bytes]:
    """The export file's bytes, one piece per `chunk_size` rows, for streaming responses.

    CSV starts with its header row, JSON Lines has one object per line, Parquet has one
    row group per chunk (a table with no rows is still a valid file with the schema).
    `progress(n)` is called after each chunk with the rows it held.

    On PostgreSQL, CSV is written by the database itself (`COPY (SELECT ...) TO STDOUT`,
    read block by block), byte for byte the same as the Python path and several times
    faster, and Parquet is made from that CSV by Arrow's reader, the same table as the
    Python path's; `use_copy=False` forces the Python path, `True` insists on COPY.

    CSV is escaped for spreadsheets (`SPREADSHEET_LEADERS`) unless `raw_csv`; JSON Lines and
    Parquet are always as stored.
    """
    _check_format(fmt)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    clean_filters(**filters)  # a bad filter fails here, before the first byte goes out
    copy_available = fmt in _COPY_WRITERS and connection.vendor == "postgresql"
    if use_copy and not copy_available:
        raise ValueError("COPY exports need PostgreSQL, and CSV or Parquet")
    if copy_available and use_copy is not False:
        if fmt == "csv":
            filters["escape"] = not raw_csv
        yield from _COPY_WRITERS[fmt](study=study, chunk_size=chunk_size, progress=progress, **filters)
        return
    encoder = _CsvEncoder(raw_csv=raw_csv) if fmt == "csv" else _ENCODERS[fmt]()
    head = encoder.header()
    if head:
        yield head
    rows: list[tuple] = []
    wrote_any = False
    for row in _tuples(study=study, chunk_size=chunk_size, **filters):
        rows.append(row)
        if len(rows) >= chunk_size:
            yield encoder.encode(rows)
            wrote_any = True
            if progress is not None:
                progress(len(rows))
            rows = []
    if rows or (fmt == "parquet" and not wrote_any):
        data = encoder.encode(rows)
        if data:
            yield data
        if progress is not None and rows:
            progress(len(rows))
    tail = encoder.finish()
    if tail:
        yield tail


def _copy_select(*, study: Study, escape: bool = False, **filters) -> tuple[str, list]:
    """The export's rows as PostgreSQL writes them in CSV, formatted as the Python path does.

    Django builds the filtered query (one definition of what an export holds), with every
    field under a plain alias; the outer SELECT formats each column in SQL.
    """
    names = [f"c{i}" for i in range(len(_FIELDS))]
    inner = (judgment_export_queryset(study=study, **filters).order_by()
             .annotate(**{name: F(field) for name, field in zip(names, _FIELDS)}, row_pk=F("pk"))
             .values_list(*names, "row_pk"))
    inner_sql, inner_params = inner.query.sql_with_params()
    c = dict(zip(_FIELDS, (f't."{name}"' for name in names)))
    iso = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""
    excluded = ", ".join("'" + status + "'" for status in sorted(_EXCLUDED_STATUSES))
    is_check = f'{c["item__framed_claim__text"]} IS NULL'
    columns = [
        c["item_id"],
        f'{c["item__batch__index"]} + 1',
        f'COALESCE({c["item__framed_claim__text"]}, {c["item__attention_check__text"]})',
        c["participant__external_id"],
        f'CASE WHEN {is_check} THEN NULL ELSE {c["item__framed_claim__base_claim__external_id"]} '
        f'|| \':\' || {c["item__framed_claim__framing"]} END',
        c["item__framed_claim__framing"],
        f'CASE WHEN NOT {is_check} THEN {c["item__framed_claim__base_claim__true_label"]} '
        f'WHEN {c["item__attention_check__expected_accept"]} THEN \'SUPPORTS\' ELSE \'REFUTES\' END',
        f'CASE WHEN {c["accept"]} THEN \'SUPPORTS\' ELSE \'REFUTES\' END',
        c["confidence"],
        c["familiarity"],
        "%s",
        f'{c["item__batch__index"]} + 1',
        c["position"],
        iso.format(c["shown_at"]),
        iso.format(c["answered_at"]),
        c["response_time_ms"],
        f"CASE WHEN {is_check} THEN 'true' ELSE 'false' END",
        f'CASE {c["attention_passed"]} WHEN TRUE THEN \'true\' WHEN FALSE THEN \'false\' END',
        c["participant__attention_failures"],
        c["participant__status"],
        f'CASE WHEN {c["participant__status"]} IN ({excluded}) THEN \'true\' ELSE \'false\' END',
        c["participant__source"],
        c["participant_id"],
        f'NULLIF({c["participant__platform_study_id"]}, \'\')',
        f'NULLIF({c["participant__platform_session_id"]}, \'\')',
        c["item__framed_claim__base_claim__external_id"],
        c["item__framed_claim__base_claim__split"],
        c["revisions"],
    ]
    assert len(columns) == len(COLUMNS)
    if escape:
        leaders = ", ".join(f"chr({ord(c)})" for c in SPREADSHEET_LEADERS)
        for name in SPREADSHEET_ESCAPED_COLUMNS:
            if name == "study":
                continue  # a parameter, escaped below
            index = COLUMNS.index(name)
            value = columns[index]
            columns[index] = (f"CASE WHEN left({value}, 1) IN ({leaders}) "
                              f"THEN chr(39) || ({value}) ELSE ({value}) END")
    order = f'{c["participant_id"]}, {c["position"]}, t."row_pk"'
    select = f"SELECT {', '.join(columns)} FROM ({inner_sql}) AS t ORDER BY {order}"
    name = study.name
    if escape and name[:1] in SPREADSHEET_LEADERS:
        name = "'" + name
    return select, [name, *inner_params]


_COPY_BLOCK_BYTES = 1 << 20


def _copy_blocks(*, study: Study, chunk_size: int, block_bytes: int = _COPY_BLOCK_BYTES,
                 escape: bool = False, **filters) -> Iterator[tuple[bytes, int]]:
    """(CSV bytes of whole rows, rows) blocks of the export, as PostgreSQL's COPY writes them.

    PostgreSQL sends COPY's output one row per message; they are gathered into blocks of
    `chunk_size` rows (or `block_bytes`, whichever comes first), so that what goes on is
    neither a trickle of tiny writes nor more than a block in memory.
    """
    select, params = _copy_select(study=study, escape=escape, **filters)
    # COPY takes no bound parameters: the values are quoted client-side, as psycopg does
    # for any statement when server-side binding is off.
    statement = connection.ops.compose_sql(f"COPY ({select}) TO STDOUT WITH (FORMAT csv)", params)
    parts: list[bytes] = []
    size = rows = 0
    with connection.cursor() as cursor:
        with cursor.copy(statement) as copy:
            for data in copy:
                parts.append(bytes(data))
                size += len(data)
                rows += 1
                if rows >= chunk_size or size >= block_bytes:
                    yield b"".join(parts), rows
                    parts, size, rows = [], 0, 0
    if parts:
        yield b"".join(parts), rows


def _copy_csv_chunks(*, study: Study, chunk_size: int, progress: ProgressCallback | None,
                     escape: bool = True, **filters) -> Iterator[bytes]:
    yield ",".join(COLUMNS).encode() + b"\n"
    for block, rows in _copy_blocks(study=study, chunk_size=chunk_size, escape=escape, **filters):
        yield block
        if progress is not None:
            progress(rows)


def _copy_parquet_chunks(*, study: Study, chunk_size: int, progress: ProgressCallback | None,
                         **filters) -> Iterator[bytes]:
    """Parquet from COPY's CSV, parsed by Arrow's C++ reader: no Python work per row."""
    import pyarrow.csv as pacsv

    schema = arrow_schema()
    read_options = pacsv.ReadOptions(column_names=list(COLUMNS))
    parse_options = pacsv.ParseOptions(newlines_in_values=True)
    convert_options = pacsv.ConvertOptions(
        column_types=dict(zip(schema.names, schema.types)), null_values=[""],
        strings_can_be_null=True, quoted_strings_can_be_null=False,
        true_values=["true"], false_values=["false"],
    )
    encoder = _ParquetEncoder()
    yield encoder.header()
    wrote_any = False
    for block, rows in _copy_blocks(study=study, chunk_size=chunk_size, block_bytes=1 << 26, **filters):
        table = pacsv.read_csv(io.BytesIO(block), read_options=read_options,
                               parse_options=parse_options, convert_options=convert_options)
        yield encoder.write(table)
        wrote_any = True
        if progress is not None:
            progress(rows)
    if not wrote_any:
        yield encoder.encode([])
    yield encoder.finish()


_COPY_WRITERS = {"csv": _copy_csv_chunks, "parquet": _copy_parquet_chunks}


def export_to_file(
    *,
    study: Study,
    fmt: str,
    path: str | Path,
    progress: ProgressCallback | None = None,
    chunk_size: int = DEFAULT_CHUNK_ROWS,
    raw_csv: bool = False,
    **filters,
) -> int:
    """Writes the export to `path` and returns the rows written.

    Written to a temporary file beside `path` and renamed at the end, so `path` never
    holds half an export, whatever happens on the way.
    """
    _check_format(fmt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0

    def count(rows: int) -> None:
        nonlocal written
        written += rows
        if progress is not None:
            progress(rows)

    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out:
            for data in export_chunks(study=study, fmt=fmt, chunk_size=chunk_size,
                                      progress=count, raw_csv=raw_csv, **filters):
                out.write(data)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return written
