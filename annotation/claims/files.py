"""Reading claim files (FrameRef JSON Lines, Parquet, CSV) as a stream of checked rows.

Each reader yields one `ClaimRow` per record and raises `ClaimFileError` at the first record
that breaks a rule of method.md section 1, naming the file, the line (or Parquet row), the
field and its value, and what is accepted instead. Rules that need more than one row (a
duplicate claim id, framings of one base claim that disagree on the label) are checked by
the importer, which sees every row. No Django here: the readers are tested alone.
"""
from __future__ import annotations

import csv
import gzip
import os
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import orjson

from core.vocabulary import FRAMINGS, NO_SPLIT, SPLITS, TRUTH_LABELS

FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".jsonl.gz": "jsonl",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
REQUIRED_FIELDS = ("claim_id", "restated_claim", "framing_type", "true_label")
OPTIONAL_FIELDS = ("split", "topic", "source", "verification", "generator")
VERIFICATION_STATES = ("not_applicable", "unverified", "passed", "failed")
# Folder names that carry a split; `unsplit` holds base claims outside any split, and is
# what the exporter writes for them.
SPLIT_FOLDERS = {**{name: name for name in SPLITS}, "unsplit": NO_SPLIT, NO_SPLIT: NO_SPLIT}
MAX_BASE_ID_LENGTH = 200
MAX_LENGTHS = {"topic": 200, "source": 500, "generator": 200}
NOT_ENOUGH_INFO = {"NOT ENOUGH INFO", "NOT_ENOUGH_INFO", "NEI", "NOTENOUGHINFO"}

_FRAMING_SET = frozenset(FRAMINGS)
_LABEL_SET = frozenset(TRUTH_LABELS)
_ROW_SPLITS = frozenset((*SPLITS, NO_SPLIT))
_VERIFICATION_SET = frozenset(VERIFICATION_STATES)
_MISSING = object()
# How many records a reader handles between two progress reports.
PROGRESS_EVERY = 8192


class ClaimFileError(ValueError):
    """A record that cannot be imported, with everything a person needs to fix it."""

    def __init__(
        self,
        *,
        path: str,
        line: int | None,
        problem: str,
        field: str | None = None,
        value: object = _MISSING,
        accepted: str | None = None,
        unit: str = "line",
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.value = None if value is _MISSING else value
        self.problem = problem
        self.accepted = accepted
        where = path if line is None else (f"{path}:{line}" if unit == "line" else f"{path}: row {line}")
        parts = [where]
        if field is not None:
            parts.append(f"field '{field}'")
        if value is not _MISSING:
            parts.append(f"value {_shorten(value)}")
        message = ": ".join(parts) + f": {problem}"
        if accepted:
            message += f"; accepted: {accepted}"
        super().__init__(message)


def _shorten(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...'"


class ClaimRow(NamedTuple):
    line: int
    base_id: str
    framing: str
    text: str
    true_label: str
    split: str
    topic: str
    source: str
    verification: str
    generator: str


# Building the tuple directly skips the keyword handling of the generated __new__.
_new_row = partial(tuple.__new__, ClaimRow)


@dataclass(frozen=True)
class ClaimFile:
    path: Path
    display: str  # how messages name the file: the path as the user gave it
    format: str  # jsonl, csv or parquet
    split: str | None  # the split its folder or name implies, if any

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def file_format(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    return None


def _split_from_path(relative: Path) -> str | None:
    for part in reversed(relative.parent.parts):
        if part in SPLIT_FOLDERS:
            return SPLIT_FOLDERS[part]
    match = re.match(r"(train|dev|test)[-_.]", relative.name)
    return match.group(1) if match else None


def _natural_key(path: Path) -> list:
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", str(path))]


def discover_claim_files(paths: list[str | os.PathLike]) -> list[ClaimFile]:
    """The claim files named by `paths`: files as given, folders searched recursively.

    Inside a folder, files are read in natural order of their relative path, and a
    `train/`, `dev/` or `test/` folder (or a `train-0000.jsonl`-style name) gives the split.
    """
    found: list[ClaimFile] = []
    for given in paths:
        root = Path(given)
        if root.is_dir():
            members = [p for p in root.rglob("*") if p.is_file() and file_format(p)]
            if not members:
                raise ClaimFileError(
                    path=str(given),
                    line=None,
                    problem="the folder holds no claim files",
                    accepted="files ending in " + ", ".join(sorted(FORMATS)),
                )
            for member in sorted(members, key=lambda p: _natural_key(p.relative_to(root))):
                relative = member.relative_to(root)
                found.append(
                    ClaimFile(
                        path=member,
                        display=str(Path(given) / relative),
                        format=file_format(member),
                        split=_split_from_path(relative),
                    )
                )
        elif root.is_file():
            fmt = file_format(root)
            if fmt is None:
                raise ClaimFileError(
                    path=str(given),
                    line=None,
                    problem="unknown file type",
                    accepted="files ending in " + ", ".join(sorted(FORMATS)),
                )
            found.append(
                ClaimFile(
                    path=root,
                    display=str(given),
                    format=fmt,
                    split=_split_from_path(Path(root.parent.name) / root.name),
                )
            )
        else:
            raise ClaimFileError(path=str(given), line=None, problem="no such file or folder")
    seen: set[Path] = set()
    for claim_file in found:
        resolved = claim_file.path.resolve()
        if resolved in seen:
            raise ClaimFileError(
                path=claim_file.display, line=None, problem="the same file is named twice"
            )
        seen.add(resolved)
    return found


class RowChecker:
    """Checks one record's fields and turns them into a `ClaimRow`.

    `default_split` applies to records whose folder, file name and `split` field say
    nothing; `verification` and `generator` to records without those fields (originals are
    never restatements, so they default to `not_applicable`).
    """

    def __init__(
        self,
        *,
        claim_file: ClaimFile,
        default_split: str = NO_SPLIT,
        verification: str = "unverified",
        generator: str = "",
    ) -> None:
        self.claim_file = claim_file
        self.default_split = default_split
        self.verification = verification
        self.generator = generator
        self.unit = "row" if claim_file.format == "parquet" else "line"

    def error(self, line: int | None, **details) -> ClaimFileError:
        return ClaimFileError(path=self.claim_file.display, line=line, unit=self.unit, **details)

    def _string(self, line: int, field: str, value: object, *, required: bool) -> str:
        if value is _MISSING or value is None:
            if required:
                raise self.error(line, field=field, problem="the field is missing",
                                 accepted="a non-empty string")
            return ""
        if type(value) is not str:
            raise self.error(line, field=field, value=value,
                             problem=f"expected a string, found {type(value).__name__}")
        limit = MAX_LENGTHS.get(field)
        if limit is not None and len(value) > limit:
            raise self.error(line, field=field, value=value,
                             problem=f"too long ({len(value)} characters)",
                             accepted=f"at most {limit} characters")
        return value

    def check(self, line, claim_id, text, framing, label, split=_MISSING, topic=_MISSING,
              source=_MISSING, verification=_MISSING, generator=_MISSING) -> ClaimRow:
        # Fast path for the common record: FrameRef's four fields, well formed, nothing
        # optional. Anything else takes the careful path, which also words the errors.
        if (
            split is _MISSING and topic is _MISSING and source is _MISSING
            and verification is _MISSING and generator is _MISSING
            and type(claim_id) is str and type(text) is str and type(framing) is str
            and type(label) is str and framing in _FRAMING_SET and label in _LABEL_SET
            and len(claim_id) <= MAX_BASE_ID_LENGTH and "\x00" not in text and text.strip()
        ):
            base_id, colon, suffix = claim_id.partition(":")
            if (suffix == framing or not colon) and base_id.strip():
                split = self.claim_file.split or self.default_split
                return _new_row((line, base_id, framing, text, label, split, "", "",
                                 "not_applicable" if framing == "original" else self.verification,
                                 self.generator))
        return self._check_carefully(line, claim_id, text, framing, label, split, topic, source,
                                     verification, generator)

    def _check_carefully(self, line, claim_id, text, framing, label, split, topic, source,
                         verification, generator) -> ClaimRow:
        claim_id = self._string(line, "claim_id", claim_id, required=True)
        framing = self._string(line, "framing_type", framing, required=True)
        if framing not in _FRAMING_SET:
            raise self.error(line, field="framing_type", value=framing, problem="unknown framing",
                             accepted=", ".join(FRAMINGS))
        base_id, colon, suffix = claim_id.partition(":")
        if not base_id.strip():
            raise self.error(line, field="claim_id", value=claim_id,
                             problem="the base id (the part before the first ':') is empty",
                             accepted="ids like fever-75397:authoritative")
        if len(base_id) > MAX_BASE_ID_LENGTH:
            raise self.error(line, field="claim_id", value=claim_id,
                             problem=f"the base id is too long ({len(base_id)} characters)",
                             accepted=f"at most {MAX_BASE_ID_LENGTH} characters before the ':'")
        if colon and suffix != framing:
            raise self.error(line, field="claim_id", value=claim_id,
                             problem=f"the framing suffix '{suffix}' disagrees with "
                                     f"framing_type '{framing}'",
                             accepted=f"{base_id}:{framing}")
        label = self._string(line, "true_label", label, required=True)
        if label not in _LABEL_SET:
            if label.strip().upper() in NOT_ENOUGH_INFO:
                raise self.error(line, field="true_label", value=label,
                                 problem="NOT ENOUGH INFO claims are not supported: every claim "
                                         "needs a ground truth (FrameRef dropped them too); "
                                         "remove these rows",
                                 accepted="SUPPORTS or REFUTES")
            raise self.error(line, field="true_label", value=label, problem="unknown label",
                             accepted="SUPPORTS or REFUTES")
        text = self._string(line, "restated_claim", text, required=True)
        if not text.strip():
            raise self.error(line, field="restated_claim", value=text,
                             problem="the claim text is empty", accepted="non-empty text")
        if "\x00" in text:
            raise self.error(line, field="restated_claim", value=text,
                             problem="the text holds a NUL character", accepted="printable text")
        split = self._split(line, split)
        verification = self._string(line, "verification", verification, required=False)
        if not verification:
            verification = "not_applicable" if framing == "original" else self.verification
        elif verification not in _VERIFICATION_SET:
            raise self.error(line, field="verification", value=verification,
                             problem="unknown verification state",
                             accepted=", ".join(VERIFICATION_STATES))
        return ClaimRow(
            line,
            base_id,
            framing,
            text,
            label,
            split,
            self._string(line, "topic", topic, required=False),
            self._string(line, "source", source, required=False),
            verification,
            self._string(line, "generator", generator, required=False) or self.generator,
        )

    def _split(self, line: int, value: object) -> str:
        from_path = self.claim_file.split
        if value is _MISSING or value is None or value == "":
            return from_path or self.default_split
        if type(value) is not str or value not in _ROW_SPLITS:
            raise self.error(line, field="split", value=value, problem="unknown split",
                             accepted=", ".join((*SPLITS, NO_SPLIT)))
        if from_path is not None and value != from_path:
            raise self.error(line, field="split", value=value,
                             problem=f"disagrees with the split '{from_path}' that the file's "
                                     f"folder or name gives")
        return value


def read_claim_rows(
    claim_file: ClaimFile,
    checker: RowChecker,
    progress: Callable[[int], None] | None = None,
) -> Iterator[ClaimRow]:
    """Every record of `claim_file`, checked, in file order.

    `progress`, if given, is called with the number of bytes read since its last call.
    """
    reader = {"jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet}[claim_file.format]
    return reader(claim_file, checker, progress or (lambda n: None))


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _undecodable(checker: RowChecker, line: int, raw: bytes, exc: UnicodeDecodeError):
    return checker.error(
        line,
        value=raw[max(0, exc.start - 20): exc.end + 20],
        problem=f"undecodable bytes at column {exc.start + 1}: the file must be UTF-8",
    )


def _read_jsonl(claim_file: ClaimFile, checker: RowChecker, progress) -> Iterator[ClaimRow]:
    check = checker.check
    missing = _MISSING
    with _open_binary(claim_file.path) as handle:
        compressed = claim_file.path.name.lower().endswith(".gz")
        pending = 0
        line = 0
        for line, raw in enumerate(handle, 1):
            pending += len(raw)
            if line % PROGRESS_EVERY == 0:
                progress(pending if not compressed else 0)
                pending = 0
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                if not raw.strip():
                    continue  # blank lines between records are harmless
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as decode_error:
                    raise _undecodable(checker, line, raw, decode_error) from None
                raise checker.error(line, problem=f"invalid JSON ({exc})",
                                    accepted="one JSON object per line") from None
            if type(record) is not dict:
                raise checker.error(line, value=record, problem="the line is not a JSON object",
                                    accepted="one JSON object per line")
            get = record.get
            if len(record) <= 5 and "messages" in record:
                # FrameRef's own record: its four fields and `messages`, nothing optional.
                yield check(line, get("claim_id", missing), get("restated_claim", missing),
                            get("framing_type", missing), get("true_label", missing))
                continue
            yield check(
                line,
                get("claim_id", missing),
                get("restated_claim", missing),
                get("framing_type", missing),
                get("true_label", missing),
                get("split", missing),
                get("topic", missing),
                get("source", missing),
                get("verification", missing),
                get("generator", missing),
            )
        progress(claim_file.size if compressed else pending)


def _read_csv(claim_file: ClaimFile, checker: RowChecker, progress) -> Iterator[ClaimRow]:
    state = {"line": 0, "pending": 0}

    def decoded_lines(handle):
        for raw in handle:
            state["line"] += 1
            state["pending"] += len(raw)
            try:
                yield raw.decode("utf-8-sig" if state["line"] == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise _undecodable(checker, state["line"], raw, exc) from None

    with _open_binary(claim_file.path) as handle:
        reader = csv.reader(decoded_lines(handle), strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise checker.error(1, problem="the file is empty",
                                accepted="a header line naming " + ", ".join(REQUIRED_FIELDS)) from None
        header = [name.strip() for name in header]
        for name in REQUIRED_FIELDS:
            if name not in header:
                raise checker.error(1, field=name, problem="the header has no such column",
                                    accepted="a header naming " + ", ".join(REQUIRED_FIELDS))
        columns = [header.index(name) if name in header else None
                   for name in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)]
        width = len(header)
        rows_seen = 0
        try:
            for record in reader:
                line = reader.line_num
                if not record:
                    continue
                if len(record) != width:
                    raise checker.error(line, problem=f"expected {width} columns as in the header, "
                                                      f"found {len(record)}")
                values = [record[i] if i is not None else _MISSING for i in columns]
                for position in range(4):
                    if values[position] == "":
                        values[position] = _MISSING if position != 1 else ""
                yield checker.check(line, values[0], values[1], values[2], values[3], *values[4:])
                rows_seen += 1
                if rows_seen % PROGRESS_EVERY == 0:
                    progress(state["pending"])
                    state["pending"] = 0
        except csv.Error as exc:
            raise checker.error(reader.line_num, problem=f"malformed CSV ({exc})") from None
        progress(state["pending"] if not claim_file.path.name.lower().endswith(".gz")
                 else claim_file.size)


def _read_parquet(claim_file: ClaimFile, checker: RowChecker, progress) -> Iterator[ClaimRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(claim_file.path)
    except (pa.ArrowException, OSError) as exc:
        raise checker.error(None, problem=f"not a readable Parquet file ({exc})") from None
    names = parquet.schema_arrow.names
    for name in REQUIRED_FIELDS:
        if name not in names:
            raise checker.error(None, field=name, problem="the file has no such column",
                                accepted="columns " + ", ".join(REQUIRED_FIELDS))
    wanted = [name for name in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS) if name in names]
    total_rows = max(parquet.metadata.num_rows, 1)
    size = claim_file.size
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=PROGRESS_EVERY, columns=wanted):
            columns = {}
            for name in wanted:
                column = batch.column(name)
                values = column.to_pylist()
                if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
                    values = _decode_binary_column(checker, row, name, values)
                columns[name] = values
            default = [_MISSING] * batch.num_rows
            fields = [columns.get(name, default) for name in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)]
            for offset, record in enumerate(zip(*fields)):
                yield checker.check(row + offset + 1, *record)
            row += batch.num_rows
            progress(int(size * batch.num_rows / total_rows))
    except pa.ArrowException as exc:
        raise checker.error(row + 1, problem=f"unreadable Parquet data ({exc})") from None


def _decode_binary_column(checker: RowChecker, first_row: int, name: str, values: list) -> list:
    decoded = []
    for offset, value in enumerate(values):
        if value is None:
            decoded.append(None)
            continue
        try:
            decoded.append(value.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ClaimFileError(
                path=checker.claim_file.display, line=first_row + offset + 1, unit="row",
                field=name, value=value[max(0, exc.start - 20): exc.end + 20],
                problem=f"undecodable bytes at byte {exc.start + 1}: text must be UTF-8",
            ) from None
    return decoded
