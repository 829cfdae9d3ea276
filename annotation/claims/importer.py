"""Loading checked claim rows into a dataset: streaming, all or nothing, fast on both databases.

The importer keeps one small record per base claim (its primary key, label, split and which
framings it has) rather than the rows themselves, so memory is bounded by the number of
base claims, not by file size. Rows go to the database in chunks: PostgreSQL through
`COPY`, SQLite through `executemany` on the raw connection, both inside the caller's
transaction, so a bad row anywhere rolls back everything, the dataset included.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from django.db import connection

from annotation.claims.files import (
    ClaimFile,
    ClaimFileError,
    ClaimRow,
    ReadLimits,
    RowChecker,
    read_claim_rows,
)
from annotation.models import BaseClaim, Dataset, FramedClaim
from core.vocabulary import FRAMINGS

_FRAMING_BIT = {framing: 1 << index for index, framing in enumerate(FRAMINGS)}

BASE_CLAIM_COLUMNS = ("id", "dataset_id", "external_id", "true_label", "split", "topic", "source")
FRAMED_CLAIM_COLUMNS = ("base_claim_id", "framing", "text", "verification", "generator")

ProgressCallback = Callable[[int, int], None]  # (bytes read since last call, rows so far)


@dataclass(frozen=True)
class ImportSummary:
    dataset: str
    dataset_created: bool
    files: int
    rows_read: int
    rows_imported: int
    rows_skipped: int
    base_claims_created: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0


class _BaseClaimState:
    """What the importer remembers of one base claim."""

    __slots__ = ("pk", "true_label", "split", "framings", "stored", "first_seen")

    def __init__(self, pk, true_label, split, first_seen, framings=0, stored=0):
        self.pk = pk
        self.true_label = true_label
        self.split = split
        self.framings = framings  # bit mask of the framings seen so far (stored or imported)
        self.stored = stored  # bit mask of the framings already in the database before
        self.first_seen = first_seen  # "file:line" of its first row in this import


class ClaimImporter:
    """Imports claim files into one dataset; call `run()` inside `transaction.atomic()`."""

    def __init__(
        self,
        *,
        dataset: Dataset,
        claim_files: list[ClaimFile],
        skip_existing: bool = False,
        default_split: str,
        verification: str,
        generator: str,
        progress: ProgressCallback | None = None,
        limits: ReadLimits | None = None,
    ) -> None:
        self.dataset = dataset
        self.claim_files = claim_files
        self.skip_existing = skip_existing
        self.checker_options = dict(
            default_split=default_split, verification=verification, generator=generator,
            limits=limits,
        )
        self.progress = progress
        self.writer = claim_writer_for(connection)

    def run(self) -> tuple[int, int, int, int]:
        """Returns (rows read, rows imported, rows skipped, base claims created)."""
        bases, stored_texts = self._load_stored_claims()
        try:
            counts = self._import_rows(bases, stored_texts)
        except BaseException as error:
            self.writer.abort(error)
            raise
        return counts

    def _import_rows(self, bases, stored_texts) -> tuple[int, int, int, int]:
        writer = self.writer
        dataset_id = self.dataset.pk
        framing_bit = _FRAMING_BIT
        rows_read = rows_imported = rows_skipped = base_claims_created = 0
        report = self.progress or (lambda byte_count, rows: None)
        next_base_claim_id = writer.next_base_claim_id
        add_base_claim = writer.add_base_claim
        add_framed_claim = writer.add_framed_claim

        def on_bytes(count: int) -> None:
            report(count, rows_read)

        for file_index, claim_file in enumerate(self.claim_files):
            checker = RowChecker(claim_file=claim_file, **self.checker_options)
            for row in read_claim_rows(claim_file, checker, on_bytes):
                # Plain locals: this loop runs once per row, a million times for FrameRef.
                line, base_id, framing, text, true_label, split, topic, source, verification, \
                    generator = row
                rows_read += 1
                state = bases.get(base_id)
                bit = framing_bit[framing]
                if state is None:
                    state = _BaseClaimState(
                        next_base_claim_id(), true_label, split, (file_index, line)
                    )
                    bases[base_id] = state
                    add_base_claim((state.pk, dataset_id, base_id, true_label, split, topic,
                                    source))
                    base_claims_created += 1
                else:
                    if state.true_label != true_label:
                        raise checker.error(
                            line, field="true_label", value=true_label,
                            problem=f"base claim '{base_id}' has the label "
                                    f"{state.true_label} {self._where(state)}; all framings of "
                                    f"a base claim share one label",
                        )
                    if state.split != split:
                        raise checker.error(
                            line, field="split", value=split,
                            problem=f"base claim '{base_id}' is in the split "
                                    f"'{state.split}' {self._where(state)}; all framings of a "
                                    f"base claim belong to one split",
                        )
                    if state.framings & bit:
                        if state.stored & bit and self.skip_existing:
                            if stored_texts[(state.pk, framing)] == hash(text):
                                rows_skipped += 1
                                continue
                            raise checker.error(
                                line, field="restated_claim", value=text,
                                problem=f"claim '{base_id}:{framing}' is already in "
                                        f"dataset '{self.dataset.name}' with a different text; "
                                        f"--skip-existing only skips identical rows",
                            )
                        raise self._duplicate_error(checker, file_index, row, state)
                state.framings |= bit
                add_framed_claim(state.pk, framing, text, verification, generator)
                rows_imported += 1
        writer.flush()
        report(0, rows_read)
        return rows_read, rows_imported, rows_skipped, base_claims_created

    def _where(self, state: _BaseClaimState) -> str:
        if state.first_seen is None:
            return f"in dataset '{self.dataset.name}'"
        file_index, line = state.first_seen
        return f"at {_location(self.claim_files[file_index], line)}"

    def _duplicate_error(self, checker, file_index, row: ClaimRow, state) -> ClaimFileError:
        claim_id = f"{row.base_id}:{row.framing}"
        if state.stored & _FRAMING_BIT[row.framing]:
            where = (f"is already in dataset '{self.dataset.name}'; pass --skip-existing to "
                     f"skip rows that were imported before")
        else:
            where = f"appears twice in this import, first at {self._first_occurrence(row, file_index)}"
        return checker.error(row.line, field="claim_id", value=claim_id,
                             problem=f"duplicate claim id: it {where}")

    def _first_occurrence(self, duplicate: ClaimRow, upto_file: int) -> str:
        # Only on the error path: read the files again rather than remember every row.
        for claim_file in self.claim_files[: upto_file + 1]:
            checker = RowChecker(claim_file=claim_file, **self.checker_options)
            for row in read_claim_rows(claim_file, checker):
                if row.base_id == duplicate.base_id and row.framing == duplicate.framing:
                    return _location(claim_file, row.line)
        return "an earlier row"

    def _load_stored_claims(self) -> tuple[dict[str, _BaseClaimState], dict]:
        bases: dict[str, _BaseClaimState] = {}
        stored_texts: dict[tuple[int, str], int] = {}
        if self.dataset.pk is None or not BaseClaim.objects.filter(dataset=self.dataset).exists():
            return bases, stored_texts
        by_pk = {}
        base_rows = BaseClaim.objects.filter(dataset=self.dataset).values_list(
            "pk", "external_id", "true_label", "split"
        )
        for pk, external_id, true_label, split in base_rows.iterator(chunk_size=20_000):
            state = _BaseClaimState(pk, true_label, split, None)
            bases[external_id] = by_pk[pk] = state
        fields = ["base_claim_id", "framing"] + (["text"] if self.skip_existing else [])
        framed_rows = FramedClaim.objects.filter(base_claim__dataset=self.dataset).values_list(*fields)
        for record in framed_rows.iterator(chunk_size=20_000):
            state = by_pk[record[0]]
            bit = _FRAMING_BIT[record[1]]
            state.framings |= bit
            state.stored |= bit
            if self.skip_existing:
                stored_texts[(record[0], record[1])] = hash(record[2])
        return bases, stored_texts


def _location(claim_file: ClaimFile, line: int) -> str:
    """`file:line`, or `file:row N` for Parquet, which has rows rather than lines."""
    return f"{claim_file.display}:{'row ' if claim_file.format == 'parquet' else ''}{line}"


class ClaimWriter:
    """Buffers new rows and writes them in chunks with the fastest path the database has."""

    chunk_rows = 20_000

    def __init__(self, db_connection) -> None:
        self.connection = db_connection
        self.base_claims: list[tuple] = []
        self.framed_claims: list[tuple] = []
        self._free_ids: list[int] = []
        self.base_table = BaseClaim._meta.db_table
        self.framed_table = FramedClaim._meta.db_table

    def next_base_claim_id(self) -> int:
        if not self._free_ids:
            self._free_ids = self._allocate_base_claim_ids(self.chunk_rows)
            self._free_ids.reverse()
        return self._free_ids.pop()

    def add_base_claim(self, row: tuple) -> None:
        self.base_claims.append(row)

    def add_framed_claim(self, base_claim_id, framing, text, verification, generator) -> None:
        self.framed_claims.append((base_claim_id, framing, text, verification, generator))
        if len(self.framed_claims) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        # Base claims first, so that every foreign key already has its row.
        if self.base_claims:
            self._write(self.base_table, BASE_CLAIM_COLUMNS, self.base_claims)
            self.base_claims = []
        if self.framed_claims:
            self._write(self.framed_table, FRAMED_CLAIM_COLUMNS, self.framed_claims)
            self.framed_claims = []

    def abort(self, error: BaseException) -> None:
        """Drops what is buffered; the caller's transaction rolls back what was written."""
        self.base_claims = []
        self.framed_claims = []

    def _allocate_base_claim_ids(self, count: int) -> list[int]:
        # Safe because the import's transaction holds the database's write lock (SQLite
        # runs transactions as BEGIN IMMEDIATE in these settings).
        if not hasattr(self, "_next_id"):
            with self.connection.cursor() as cursor:
                cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {self.base_table}")
                self._next_id = cursor.fetchone()[0] + 1
        start = self._next_id
        self._next_id += count
        return list(range(start, start + count))

    def _write(self, table: str, columns: Iterable[str], rows: list[tuple]) -> None:
        placeholders = ", ".join(["%s"] * len(rows[0]))
        with self.connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows
            )


class SqliteClaimWriter(ClaimWriter):
    def _write(self, table: str, columns: Iterable[str], rows: list[tuple]) -> None:
        # The raw sqlite3 connection skips Django's per-row placeholder translation; it
        # runs inside the same transaction.
        self.connection.ensure_connection()
        placeholders = ", ".join(["?"] * len(rows[0]))
        self.connection.connection.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows
        )


class PostgresClaimWriter(ClaimWriter):
    """Streams framed claims through one `COPY` that stays open while rows are read.

    The server inserts while Python parses, and psycopg's queued writer sends from a
    thread, so on two cores reading and writing overlap. A connection can run nothing else
    during a COPY, so when the block of base claim ids runs out the COPY ends, the base
    claims collected so far go in with a COPY of their own, a new block of ids is taken,
    and streaming resumes. The foreign key from framed to base claims is checked at commit
    (Django declares it DEFERRABLE INITIALLY DEFERRED), so that order is safe.
    """

    id_block = 50_000

    def __init__(self, db_connection) -> None:
        super().__init__(db_connection)
        self._copy_context = None
        self._copy = None

    def next_base_claim_id(self) -> int:
        if not self._free_ids:
            self._end_framed_copy()
            self._free_ids = self._allocate_base_claim_ids(self.id_block)
            self._free_ids.reverse()
        return self._free_ids.pop()

    def add_framed_claim(self, base_claim_id, framing, text, verification, generator) -> None:
        # COPY's text format, built here rather than by psycopg's write_row: one f-string
        # per row and one write per chunk cost a third of the per-row calls.
        self.framed_claims.append(
            f"{base_claim_id}\t{framing}\t{_copy_escape(text)}\t{verification}\t"
            f"{_copy_escape(generator)}\n"
        )
        if len(self.framed_claims) >= 8192:
            self._send_framed_claims()

    def _send_framed_claims(self) -> None:
        if self._copy is None:
            self._start_framed_copy()
        self._copy.write("".join(self.framed_claims).encode())
        self.framed_claims = []

    def flush(self) -> None:
        self._end_framed_copy()

    def abort(self, error: BaseException) -> None:
        super().abort(error)
        if self._copy_context is not None:
            context, self._copy_context, self._copy = self._copy_context, None, None
            # Ends the COPY with an error, which aborts the transaction the caller rolls back.
            context.__exit__(type(error), error, error.__traceback__)

    def _start_framed_copy(self) -> None:
        from psycopg.copy import QueuedLibpqWriter

        self.connection.ensure_connection()
        cursor = self.connection.connection.cursor()
        self._copy_context = cursor.copy(
            f"COPY {self.framed_table} ({', '.join(FRAMED_CLAIM_COLUMNS)}) FROM STDIN",
            writer=QueuedLibpqWriter(cursor),
        )
        self._copy = self._copy_context.__enter__()

    def _end_framed_copy(self) -> None:
        if self.framed_claims:
            self._send_framed_claims()
        if self._copy_context is not None:
            context, self._copy_context, self._copy = self._copy_context, None, None
            context.__exit__(None, None, None)
        if self.base_claims:
            self._write(self.base_table, BASE_CLAIM_COLUMNS, self.base_claims)
            self.base_claims = []

    def _allocate_base_claim_ids(self, count: int) -> list[int]:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [self.base_table, count],
            )
            return [row[0] for row in cursor.fetchall()]

    def _write(self, table: str, columns: Iterable[str], rows: list[tuple]) -> None:
        with self.connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                write_row = copy.write_row
                for row in rows:
                    write_row(row)


def _copy_escape(value: str) -> str:
    """`value` in the text format of PostgreSQL's COPY (backslash, tab, newline, return)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return (value.replace("\\", "\\\\").replace("\t", "\\t")
                .replace("\n", "\\n").replace("\r", "\\r"))
    return value


def claim_writer_for(db_connection) -> ClaimWriter:
    if db_connection.vendor == "postgresql":
        return PostgresClaimWriter(db_connection)
    if db_connection.vendor == "sqlite":
        return SqliteClaimWriter(db_connection)
    return ClaimWriter(db_connection)
