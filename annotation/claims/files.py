"""Reading claim files (FrameRef JSON Lines, Parquet, CSV) as a stream of checked rows.

Each reader yields one `ClaimRow` per record and raises `ClaimFileError` at the first record
that breaks a rule of method.md section 1, naming the file, the line (or Parquet row), the
field and its value, and what is accepted instead. Rules that need more than one row (a
duplicate claim id, framings of one base claim that disagree on the label) are checked by
the importer, which sees every row. No Django here: the readers are tested alone.
"""
from __future__ import annotations

import csv
import io
import os
import re
import zlib
from contextlib import contextmanager
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
# Bytes a reader asks the file (or the decompressor) for at a time.
_READ_BUFFER = 1 << 16
# A compressed file is judged by its compression ratio only once it has given this much: small
# files of repetitive text compress well and could never be a bomb.
RATIO_FLOOR_BYTES = 1 << 20
# Blank lines between records are harmless; a file of little else is a way to burn CPU time.
MAX_BLANK_LINES = 10_000


@dataclass(frozen=True)
class ReadLimits:
    """What a claim file may make a reader hold or do; each limit names its setting.

    The defaults take every honest FrameRef file (lines of a few KB, claims of a few hundred
    characters, gzip ratios near 20) and refuse a bomb within a few MB of reading.
    """

    line_bytes: int = 1_000_000  # FRAMELAB_MAX_LINE_BYTES
    claim_chars: int = 10_000  # FRAMELAB_MAX_CLAIM_CHARS
    csv_field_chars: int = 131_072  # FRAMELAB_MAX_CSV_FIELD_CHARS (Python's own default)
    decompressed_bytes: int = 4 << 30  # FRAMELAB_MAX_DECOMPRESSED_BYTES, per file
    compression_ratio: float = 200  # FRAMELAB_MAX_COMPRESSION_RATIO


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
    if isinstance(value, (str, bytes)) and len(value) > 10_000:
        value = value[:10_000]  # a 20 MB claim is not copied to be cut to 80 characters
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


def discover_claim_files(
    paths: list[str | os.PathLike], names: list[str] | None = None
) -> list[ClaimFile]:
    """The claim files named by `paths`: files as given, folders searched recursively.

    Inside a folder, files are read in natural order of their relative path, and a
    `train/`, `dev/` or `test/` folder (or a `train-0000.jsonl`-style name) gives the split.
    `names`, one per path, name the files in messages instead of their paths (an upload is
    named as the researcher uploaded it, never by its place in the store).
    """
    found: list[ClaimFile] = []
    if names is not None and len(names) != len(paths):
        raise ValueError("one name per path")
    for index, given in enumerate(paths):
        root = Path(given)
        if names is not None:
            given = names[index]
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
        limits: ReadLimits | None = None,
    ) -> None:
        self.claim_file = claim_file
        self.default_split = default_split
        self.verification = verification
        self.generator = generator
        self.limits = limits or ReadLimits()
        self.max_claim_chars = self.limits.claim_chars
        self.max_lengths = {**MAX_LENGTHS, "restated_claim": self.max_claim_chars}
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
        limit = self.max_lengths.get(field)
        if limit is not None and len(value) > limit:
            setting = " (FRAMELAB_MAX_CLAIM_CHARS)" if field == "restated_claim" else ""
            raise self.error(line, field=field, value=value,
                             problem=f"too long ({len(value):,} characters)",
                             accepted=f"at most {limit:,} characters{setting}")
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
            and len(claim_id) <= MAX_BASE_ID_LENGTH and len(text) <= self.max_claim_chars
            and "\x00" not in text and text.strip()
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


class _ReadProblem(Exception):
    """Raised inside a stream; the reader adds the file and line it happened at."""


def _is_gzip(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


class _BoundedGunzip(io.RawIOBase):
    """Decompresses a gzip file as it is read, counting bytes in and out.

    Refuses, as soon as it happens, to give more than `limits.decompressed_bytes` or more
    than `limits.compression_ratio` times the compressed bytes consumed so far (judged past
    RATIO_FLOOR_BYTES), so a bomb costs a few MB of reading and never the whole file. Reads
    multi-member files and zero padding as gzip(1) does; a truncated, corrupt or non-gzip
    file is a `_ReadProblem` saying which, never an EOFError or zlib.error.
    """

    def __init__(self, raw, limits: ReadLimits) -> None:
        self._raw = raw
        self._max_bytes = limits.decompressed_bytes
        self._max_ratio = limits.compression_ratio
        self._inflate = None  # the member being read; None between members
        self._input = b""  # compressed bytes read from the file and not yet decompressed
        self._members = 0
        self._read = 0  # compressed bytes read from the file
        self.bytes_out = 0

    def readable(self) -> bool:
        return True

    @property
    def bytes_in(self) -> int:
        """Compressed bytes consumed so far."""
        return self._read - len(self._input)

    def _fill(self) -> bool:
        data = self._raw.read(_READ_BUFFER)
        self._read += len(data)
        self._input += data
        return bool(data)

    def readinto(self, buffer) -> int:
        while True:
            if self._inflate is None:
                if self._members:
                    self._input = self._input.lstrip(b"\0")  # padding after a member
                if not self._input and not self._fill():
                    return 0  # the end, between members
                if self._members and not self._input.lstrip(b"\0"):
                    self._input = b""
                    continue
                if not self._members:
                    while len(self._input) < 2 and self._fill():
                        pass
                    if self._input[:2] != b"\x1f\x8b":
                        raise _ReadProblem("not a gzip file, although its name ends in .gz")
                self._inflate = zlib.decompressobj(wbits=31)  # gzip header and trailer checked
            inflate = self._inflate
            if not self._input and not self._fill():
                raise _ReadProblem("the compressed data ends early: the .gz file is truncated "
                                   "(an incomplete upload or copy?)")
            pending = len(self._input)
            try:
                data = inflate.decompress(self._input, len(buffer))
            except zlib.error as exc:
                raise _ReadProblem(f"corrupt compressed data (zlib: {_zlib_reason(exc)})") from None
            if inflate.eof:
                self._input = inflate.unused_data
                self._inflate = None
                self._members += 1
            else:
                self._input = inflate.unconsumed_tail
                if not data and len(self._input) == pending and not self._fill():
                    # Nothing consumed and nothing more to give: the stream was cut short.
                    raise _ReadProblem("the compressed data ends early: the .gz file is "
                                       "truncated (an incomplete upload or copy?)")
            if data:
                size = len(data)
                buffer[:size] = data
                self.bytes_out += size
                if self.bytes_out > RATIO_FLOOR_BYTES or self.bytes_out > self._max_bytes:
                    self._check_size()
                return size

    def _check_size(self) -> None:
        if self.bytes_out > self._max_bytes:
            raise _ReadProblem(f"decompresses to more than {self._max_bytes:,} bytes "
                               f"(FRAMELAB_MAX_DECOMPRESSED_BYTES)")
        consumed = max(self.bytes_in, 1)
        if self.bytes_out > self._max_ratio * consumed:
            raise _ReadProblem(
                f"decompresses to more than {self._max_ratio:,g} times its compressed size "
                f"({self.bytes_out:,} bytes from the first {consumed:,}), a gzip bomb? "
                f"(FRAMELAB_MAX_COMPRESSION_RATIO)")


def _zlib_reason(exc: zlib.error) -> str:
    # "Error -3 while decompressing data: incorrect header check" -> "incorrect header check"
    return str(exc).rpartition(": ")[2] or str(exc)


@contextmanager
def _open_binary(claim_file: ClaimFile, limits: ReadLimits):
    """(binary handle, the gunzip stream or None): lines read with `readline(limit)`."""
    if not _is_gzip(claim_file.path):
        with open(claim_file.path, "rb", buffering=_READ_BUFFER) as handle:
            yield handle, None
        return
    with open(claim_file.path, "rb", buffering=0) as raw:
        stream = _BoundedGunzip(raw, limits)
        with io.BufferedReader(stream, _READ_BUFFER) as handle:
            yield handle, stream


def _line_too_long(checker: RowChecker, line: int) -> ClaimFileError:
    return checker.error(line, problem=f"line longer than {checker.limits.line_bytes:,} bytes "
                                       f"(FRAMELAB_MAX_LINE_BYTES)")


def _too_many_blank_lines(checker: RowChecker, line: int, blank: int) -> ClaimFileError:
    return checker.error(line, problem=f"more blank lines ({blank:,}) than records "
                                       f"({line - blank:,}): not a claim file",
                         accepted=f"at most {MAX_BLANK_LINES:,} blank lines, or fewer blank "
                                  f"lines than records")


def _undecodable(checker: RowChecker, line: int, raw: bytes, exc: UnicodeDecodeError):
    return checker.error(
        line,
        value=raw[max(0, exc.start - 20): exc.end + 20],
        problem=f"undecodable bytes at column {exc.start + 1}: the file must be UTF-8",
    )


def _read_jsonl(claim_file: ClaimFile, checker: RowChecker, progress) -> Iterator[ClaimRow]:
    check = checker.check
    missing = _MISSING
    max_line = checker.limits.line_bytes
    with _open_binary(claim_file, checker.limits) as (handle, gunzip):
        pending = 0
        consumed = 0  # compressed bytes reported so far
        line = 0
        blank = 0
        # readline(max_line + 1) never holds more than the limit: one 8 GB line is refused
        # after reading max_line + 1 bytes of it.
        lines = iter(partial(handle.readline, max_line + 1), b"")
        try:
            for line, raw in enumerate(lines, 1):
                if len(raw) > max_line and raw[-1] != 10:  # 10: b"\n"
                    raise _line_too_long(checker, line)
                pending += len(raw)
                if line % PROGRESS_EVERY == 0:
                    if gunzip is None:
                        progress(pending)
                    else:
                        progress(gunzip.bytes_in - consumed)
                        consumed = gunzip.bytes_in
                    pending = 0
                try:
                    record = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    if not raw.strip():
                        blank += 1  # blank lines between records are harmless; a file of them is not
                        if blank > MAX_BLANK_LINES and blank > line - blank:
                            raise _too_many_blank_lines(checker, line, blank) from None
                        continue
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
        except _ReadProblem as problem:
            raise checker.error(line + 1, problem=str(problem)) from None
        progress(pending if gunzip is None else claim_file.size - consumed)


def _read_csv(claim_file: ClaimFile, checker: RowChecker, progress) -> Iterator[ClaimRow]:
    state = {"line": 0, "pending": 0}
    limits = checker.limits
    max_line = limits.line_bytes

    def decoded_lines(handle):
        for raw in iter(partial(handle.readline, max_line + 1), b""):
            state["line"] += 1
            if len(raw) > max_line and raw[-1] != 10:
                raise _line_too_long(checker, state["line"])
            state["pending"] += len(raw)
            try:
                yield raw.decode("utf-8-sig" if state["line"] == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise _undecodable(checker, state["line"], raw, exc) from None

    # The csv module's limit is one per process; every CSV reader of the platform sets its own.
    csv.field_size_limit(limits.csv_field_chars)
    with _open_binary(claim_file, limits) as (handle, gunzip):
        reader = csv.reader(decoded_lines(handle), strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise checker.error(1, problem="the file is empty",
                                accepted="a header line naming " + ", ".join(REQUIRED_FIELDS)) from None
        except csv.Error as exc:
            raise _malformed_csv(checker, 1, exc) from None
        except _ReadProblem as problem:
            raise checker.error(state["line"] + 1, problem=str(problem)) from None
        header = [name.strip() for name in header]
        for name in REQUIRED_FIELDS:
            if name not in header:
                raise checker.error(1, field=name, problem="the header has no such column",
                                    accepted="a header naming " + ", ".join(REQUIRED_FIELDS))
        columns = [header.index(name) if name in header else None
                   for name in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)]
        width = len(header)
        rows_seen = 0
        blank = 0
        consumed = 0
        line = 1
        try:
            for record in reader:
                line = reader.line_num
                if not record:
                    blank += 1
                    if blank > MAX_BLANK_LINES and blank > line - blank:
                        raise _too_many_blank_lines(checker, line, blank)
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
                    if gunzip is None:
                        progress(state["pending"])
                    else:
                        progress(gunzip.bytes_in - consumed)
                        consumed = gunzip.bytes_in
                    state["pending"] = 0
        except csv.Error as exc:
            # A field over the limit is named by the line its record starts on.
            raise _malformed_csv(checker, line + 1 if "field limit" in str(exc)
                                 else reader.line_num, exc) from None
        except _ReadProblem as problem:
            raise checker.error(state["line"] + 1, problem=str(problem)) from None
        progress(state["pending"] if gunzip is None else claim_file.size - consumed)


def _malformed_csv(checker: RowChecker, line: int, exc: csv.Error) -> ClaimFileError:
    if str(exc).startswith("field larger than field limit"):
        return checker.error(line, problem=f"a field is longer than "
                                           f"{checker.limits.csv_field_chars:,} characters "
                                           f"(FRAMELAB_MAX_CSV_FIELD_CHARS)")
    return checker.error(line, problem=f"malformed CSV ({exc})")


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
    _check_parquet_size(checker, parquet.metadata, size)
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


def _check_parquet_size(checker: RowChecker, metadata, size: int) -> None:
    """Parquet's pages are compressed too: the sizes its metadata declares meet the same limits
    as a .gz (a file that lies about them fails when its pages are decoded)."""
    limits = checker.limits
    declared = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if declared > limits.decompressed_bytes:
        raise checker.error(None, problem=f"decompresses to more than "
                                          f"{limits.decompressed_bytes:,} bytes "
                                          f"(FRAMELAB_MAX_DECOMPRESSED_BYTES)")
    if declared > RATIO_FLOOR_BYTES and declared > limits.compression_ratio * max(size, 1):
        raise checker.error(None, problem=f"decompresses to more than "
                                          f"{limits.compression_ratio:,g} times its size "
                                          f"({declared:,} bytes from {size:,}), a bomb? "
                                          f"(FRAMELAB_MAX_COMPRESSION_RATIO)")


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
