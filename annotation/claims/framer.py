"""The template framer: restates a base claim in FrameRef's framings without changing what it asserts.

FrameRef restated claims with an LLM and kept only what a second LLM judged to assert the
same thing. Templates make that guarantee by construction: every restatement embeds the
base assertion word for word (only a sentence-initial function word such as "The" may be
lower-cased mid-sentence, and the final full stop is replaced by the template's own), and
the framing lives entirely in words around it that attribute, endorse or dramatise but add
no fact. `frame_claim` checks that invariant on every restatement it returns, which is the
verification this framer records (`verification: passed`).

Several templates per framing, chosen per claim from a hash of (seed, base id, framing),
so one seed gives one corpus on any machine and the wording varies across claims. Also
here: writing framed claims as FrameRef JSON Lines shards, and reading user base claims
(CSV or JSON Lines) with errors that name file, line, field and value. No Django.
"""
from __future__ import annotations

import csv
import hashlib
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import orjson

from annotation.claims.files import MAX_BASE_ID_LENGTH, MAX_LENGTHS, ClaimFileError
from core.vocabulary import FRAMINGS, NO_SPLIT, SPLITS, TRUTH_LABELS

TEMPLATE_VERSION = 1
GENERATOR = f"framelab-template-framer/{TEMPLATE_VERSION}"
RESTATEMENT_FRAMINGS = FRAMINGS[1:]

# "{C}": the assertion as a sentence start; "{c}": the assertion mid-sentence. Every
# template follows method.md section 1.2: authoritative attributes to a generic expert or
# institution (never a named one); consensus claims broad agreement (no polls, numbers or
# unanimity); emotional adds feeling, no consequences; prestige ties the claim to elite
# institutions (no invented titles); sensationalist dramatises. None adds a fact.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "authoritative": (
        "According to experts, {c}.",
        "Experts confirm that {c}.",
        "{C}, according to leading researchers.",
        "Specialists in the field state that {c}.",
        "{C}, as standard scholarly reference works record.",
        "Official records state that {c}.",
        "A respected academic institution confirms that {c}.",
        "{C}, as experts have documented.",
    ),
    "consensus": (
        "It is widely accepted that {c}.",
        "Most people agree that {c}.",
        "{C}, as most people would agree.",
        "It is generally agreed that {c}.",
        "There is broad agreement that {c}.",
        "{C}; this is widely accepted.",
        "Most sources agree that {c}.",
        "It is commonly held that {c}.",
    ),
    "emotional": (
        "It is truly heartwarming to know that {c}.",
        "I feel a real thrill every time I remember that {c}.",
        "{C}, and that fills me with wonder.",
        "It moves me deeply that {c}.",
        "Honestly, it delights me that {c}.",
        "How wonderful it is that {c}!",
        "{C}, and I find that genuinely touching.",
        "It warms my heart to think that {c}.",
    ),
    "prestige": (
        "As taught at the world's most prestigious universities, {c}.",
        "Leading figures in elite academic circles know that {c}.",
        "{C}, a fact familiar to the world's most influential thinkers.",
        "At the top research universities, students are taught that {c}.",
        "{C}, as discussed at the most exclusive academic gatherings.",
        "Among the world's most influential scholars, it is well known that {c}.",
        "{C}, as elite institutions teach their students.",
        "The most distinguished institutions in the world teach that {c}.",
    ),
    "sensationalist": (
        "BREAKING: {C}!",
        "You won't believe it, but {c}!",
        "Stop everything: {c}!",
        "{C}! This will blow your mind.",
        "Incredible: {c}!",
        "Jaw-dropping news: {c}!",
        "{C}, and it is absolutely stunning!",
        "Unbelievable but on the record: {c}!",
    ),
}

# Sentence-initial words that are lower-cased when the assertion moves mid-sentence.
# Only function words and generic nouns: a proper noun ("Paris", "Iron") keeps its capital.
_LOWERABLE = frozenset("""
a an the this that these those there it its one some many most all every each no
people in on at for from during after before since when while if although both
several few more less only their his her our my your we they he she you
""".split())
_ABBREVIATION_END = re.compile(
    r"(?:(?<![\w'’.])(?:[A-Za-z]\.){2,}|\b(?:etc|Inc|Ltd|Jr|approx)\.)$"
)
_CLOSERS = "\"'”’)]"


class FramingError(ValueError):
    """A claim the framer cannot restate faithfully (a question, an empty text)."""


@dataclass(frozen=True)
class Restatement:
    framing: str
    text: str
    template: int  # index into TEMPLATES[framing]; -1 for the original


def assertion_core(text: str) -> str:
    """The claim without trailing space and its sentence-final full stop or exclamation mark.

    A final "." that ends an initialism ("Washington, D.C.") or "etc.", "Inc.", "Ltd.",
    "Jr." stays: it is part of the words, and the template then adds no second full stop.
    Two-letter abbreviations are not guessed at: "Co." or "Sr." may be a chemical symbol.
    """
    core = text.strip()
    if not core:
        raise FramingError("the claim text is empty")
    if core.endswith("?"):
        raise FramingError("a question is not a claim: the text ends with '?'")
    if core.endswith("!") or (core.endswith(".") and not _ABBREVIATION_END.search(core)):
        core = core[:-1].rstrip()
    if not any(ch.isalnum() for ch in core):
        raise FramingError("the claim text holds no words")
    return core


def mid_sentence(core: str) -> str:
    """The assertion as it reads after "that": a leading function word lower-cased."""
    first, space, rest = core.partition(" ")
    if first.lower() in _LOWERABLE and first[:1].isupper() and (first[1:].islower() or len(first) == 1):
        return first.lower() + space + rest
    return core


def sentence_start(core: str) -> str:
    """The assertion as a sentence start: an all-lower-case first word gets a capital."""
    first = core.split(" ", 1)[0]
    if first.isalpha() and first.islower():
        return core[:1].upper() + core[1:]
    return core


def _fill(template: str, core: str) -> str:
    slot = "{C}" if "{C}" in template else "{c}"
    before, after = template.split(slot)
    insert = sentence_start(core) if slot == "{C}" else mid_sentence(core)
    # A core that already ends a sentence (abbreviation, closing quote after a stop) takes
    # no second full stop from the template.
    tail = insert.rstrip(_CLOSERS)
    if tail.endswith((".", "!", "?")) and after.startswith("."):
        after = after[1:]
    return before + insert + after


def contains_assertion(restated: str, base_text: str) -> bool:
    """The invariant every restatement keeps: it holds the base assertion word for word."""
    core = assertion_core(base_text)
    return any(form in restated for form in {core, mid_sentence(core), sentence_start(core)})


def choose_template(seed: int, base_id: str, framing: str) -> int:
    digest = hashlib.blake2b(f"{seed}\x1f{base_id}\x1f{framing}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % len(TEMPLATES[framing])


def frame_claim(
    base_id: str, text: str, *, seed: int = 0, framings: Iterable[str] = FRAMINGS
) -> list[Restatement]:
    """The claim in each of `framings` (the original always first, as given)."""
    core = assertion_core(text)
    result = [Restatement("original", text.strip(), -1)]
    for framing in framings:
        if framing == "original":
            continue
        if framing not in TEMPLATES:
            raise ValueError(f"unknown framing {framing!r}; accepted: {', '.join(FRAMINGS)}")
        index = choose_template(seed, base_id, framing)
        restated = _fill(TEMPLATES[framing][index], core)
        if not contains_assertion(restated, text):  # cannot happen; guards template edits
            raise FramingError(f"template {framing}#{index} lost the assertion of {base_id}")
        result.append(Restatement(framing, restated, index))
    return result


# ---------------------------------------------------------------------------------------
# Base claims in, FrameRef shards out


@dataclass(frozen=True)
class InputClaim:
    base_id: str
    text: str
    true_label: str
    split: str | None = None  # None: assign by topic
    topic: str = ""
    source: str = ""


@dataclass
class WriteSummary:
    files: list[Path]
    rows_by_split: Counter
    base_by_split_truth: Counter
    rows_by_framing: Counter
    templates_used: dict[str, Counter]

    @property
    def rows(self) -> int:
        return sum(self.rows_by_split.values())


@dataclass(frozen=True)
class FramedRow:
    """One framed claim as written: its text and its provenance."""

    framing: str
    text: str
    verification: str
    generator: str
    template: int = -1  # the template framer's choice; -1 otherwise


def template_rows(claim: InputClaim, *, seed: int, framings: Iterable[str]) -> list[FramedRow]:
    """The template framer's rows for one claim: the original, then each framing."""
    return [
        FramedRow(r.framing, r.text, "not_applicable", "", -1) if r.framing == "original" else
        FramedRow(r.framing, r.text, "passed", f"{GENERATOR} {r.framing}#{r.template} seed {seed}",
                  r.template)
        for r in frame_claim(claim.base_id, claim.text, seed=seed, framings=framings)
    ]


def _folder(split: str) -> str:
    return "unsplit" if split == NO_SPLIT else split


def write_framed_claims(
    claims: Iterable[InputClaim],
    out_dir: Path,
    *,
    seed: int = 0,
    framings: Iterable[str] = FRAMINGS,
    shard_size: int = 100_000,
    progress: Callable[[int], object] | None = None,
    framer: Callable[..., list["FramedRow"]] | None = None,
) -> WriteSummary:
    """Frames every claim and writes FrameRef shards: OUT/train/train-0000.jsonl, dev/, test/.

    Records are those of method.md section 1.4 (claim_id `base:framing`, restated_claim, framing_type,
    true_label, messages) plus the fields import_claims also reads: topic, source,
    verification and generator. All or nothing: the files appear only once all are
    written, and an out folder that already holds claim shards is refused. `framer`
    (claim, seed=, framings=) -> rows replaces the template framer, e.g. with LLM
    restatements that passed verification.
    """
    out_dir = Path(out_dir)
    framings = tuple(framings)
    for name in framings:
        if name not in FRAMINGS:
            raise ValueError(f"unknown framing {name!r}; accepted: {', '.join(FRAMINGS)}")
    for split in (*SPLITS, NO_SPLIT):
        folder = out_dir / _folder(split)
        if folder.is_dir() and any(folder.glob("*.jsonl")):
            raise FileExistsError(f"{folder} already holds .jsonl files; choose an empty --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".framing-", dir=out_dir))
    summary = WriteSummary([], Counter(), Counter(), Counter(),
                           {f: Counter() for f in RESTATEMENT_FRAMINGS})
    handles: dict[str, tuple] = {}  # split -> (file handle, shard index, rows in shard)
    dumps, opt = orjson.dumps, orjson.OPT_APPEND_NEWLINE

    def emit(split: str, line: bytes) -> None:
        handle, index, count = handles.get(split, (None, -1, shard_size))
        if count >= shard_size:
            if handle is not None:
                handle.close()
            index += 1
            relative = Path(_folder(split)) / f"{_folder(split)}-{index:04d}.jsonl"
            (staging / relative).parent.mkdir(exist_ok=True)
            handle = open(staging / relative, "wb")
            summary.files.append(relative)
            count = 0
        handle.write(line)
        handles[split] = (handle, index, count + 1)

    try:
        for claim in claims:
            split = claim.split or NO_SPLIT
            summary.base_by_split_truth[(split, claim.true_label)] += 1
            for row in (framer or template_rows)(claim, seed=seed, framings=framings):
                record = {
                    "claim_id": f"{claim.base_id}:{row.framing}",
                    "restated_claim": row.text,
                    "framing_type": row.framing,
                    "true_label": claim.true_label,
                    "messages": [{"role": "user", "content": row.text},
                                 {"role": "assistant", "content": claim.true_label}],
                    "topic": claim.topic,
                    "source": claim.source,
                    "verification": row.verification,
                    "generator": row.generator,
                }
                emit(split, dumps(record, option=opt))
                summary.rows_by_split[split] += 1
                summary.rows_by_framing[row.framing] += 1
                if row.template >= 0:
                    summary.templates_used[row.framing][row.template] += 1
            if progress is not None:
                progress(1)
        for handle, _, _ in handles.values():
            handle.close()
        for relative in summary.files:
            (out_dir / relative).parent.mkdir(exist_ok=True)
            (staging / relative).rename(out_dir / relative)
    except BaseException:
        for handle, _, _ in handles.values():
            handle.close()
        for relative in summary.files:
            (out_dir / relative).unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


# ---------------------------------------------------------------------------------------
# Reading user base claims

INPUT_FIELDS = ("id", "text", "true_label")
INPUT_OPTIONAL = ("split", "topic", "source")


def read_base_claims(path: Path, *, display: str | None = None) -> list[InputClaim]:
    """Base claims from CSV or JSON Lines (`id,text,true_label[,split,topic,source]`).

    Raises `ClaimFileError` naming file, line, field and value at the first bad record,
    duplicate ids included.
    """
    path = Path(path)
    display = display or str(path)
    name = path.name.lower()
    if not path.is_file():
        raise ClaimFileError(path=display, line=None, problem="no such file")
    if name.endswith(".csv"):
        records = _csv_records(path, display)
    elif name.endswith((".jsonl", ".ndjson", ".json")):
        records = _jsonl_records(path, display)
    else:
        raise ClaimFileError(path=display, line=None, problem="unknown file type",
                             accepted="a .csv or .jsonl file")
    claims, first_line = [], {}
    for line, record in records:
        claim = _check_record(display, line, record)
        if claim.base_id in first_line:
            raise ClaimFileError(path=display, line=line, field="id", value=claim.base_id,
                                 problem=f"duplicate id (first on line {first_line[claim.base_id]})")
        first_line[claim.base_id] = line
        claims.append(claim)
    if not claims:
        raise ClaimFileError(path=display, line=None, problem="the file holds no claims")
    return claims


def _csv_records(path: Path, display: str) -> Iterator[tuple[int, dict]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, strict=True)
            header = [h.strip() for h in reader.fieldnames or ()]
            for field in INPUT_FIELDS:
                if field not in header:
                    raise ClaimFileError(path=display, line=1, field=field,
                                         problem="the header has no such column",
                                         accepted="a header naming " + ", ".join(INPUT_FIELDS))
            reader.fieldnames = header
            for record in reader:
                if None in record:
                    raise ClaimFileError(path=display, line=reader.line_num,
                                         problem="more values than header columns")
                yield reader.line_num, record
    except UnicodeDecodeError as exc:
        raise ClaimFileError(path=display, line=None,
                             problem=f"undecodable bytes at byte {exc.start + 1}: the file must be UTF-8") from None
    except csv.Error as exc:
        raise ClaimFileError(path=display, line=None, problem=f"malformed CSV ({exc})") from None


def _jsonl_records(path: Path, display: str) -> Iterator[tuple[int, dict]]:
    with open(path, "rb") as handle:
        for line, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise ClaimFileError(path=display, line=line, problem=f"invalid JSON ({exc})",
                                     accepted="one JSON object per line") from None
            if not isinstance(record, dict):
                raise ClaimFileError(path=display, line=line, value=record,
                                     problem="the line is not a JSON object",
                                     accepted="one JSON object per line")
            yield line, record


def _check_record(display: str, line: int, record: dict) -> InputClaim:
    def error(field, value, problem, accepted=None):
        return ClaimFileError(path=display, line=line, field=field, value=value,
                              problem=problem, accepted=accepted)

    values = {}
    for field in (*INPUT_FIELDS, *INPUT_OPTIONAL):
        value = record.get(field)
        if value is None or value == "":
            if field in INPUT_FIELDS:
                raise ClaimFileError(path=display, line=line, field=field,
                                     problem="the field is missing or empty",
                                     accepted="a non-empty string")
            values[field] = ""
            continue
        if not isinstance(value, str):
            raise error(field, value, f"expected a string, found {type(value).__name__}")
        values[field] = value.strip() if field != "text" else value
    base_id = values["id"]
    if ":" in base_id:
        raise error("id", base_id, "a base id may not contain ':' (it separates the framing "
                                   "in claim ids)", "ids like fact-0042")
    if len(base_id) > MAX_BASE_ID_LENGTH:
        raise error("id", base_id, f"too long ({len(base_id)} characters)",
                    f"at most {MAX_BASE_ID_LENGTH} characters")
    label = values["true_label"]
    if label not in TRUTH_LABELS:
        raise error("true_label", label, "unknown label", "SUPPORTS or REFUTES")
    text = values["text"]
    if "\x00" in text:
        raise error("text", text, "the text holds a NUL character", "printable text")
    try:
        assertion_core(text)
    except FramingError as exc:
        raise error("text", text, str(exc), "a declarative sentence") from None
    split = values["split"] or None
    if split is not None and split not in (*SPLITS, NO_SPLIT):
        raise error("split", split, "unknown split", ", ".join((*SPLITS, NO_SPLIT)))
    for field in ("topic", "source"):
        limit = MAX_LENGTHS[field]
        if len(values[field]) > limit:
            raise error(field, values[field], f"too long ({len(values[field])} characters)",
                        f"at most {limit} characters")
    return InputClaim(base_id, text.strip(), label, split, values["topic"], values["source"])


def assign_missing_splits(claims: list[InputClaim], seed: int) -> list[InputClaim]:
    """Claims without a split get one, 80/10/10 by topic (by id where there is no topic).

    A topic whose claims already name a split keeps it, so a topic is never divided.
    """
    from annotation.claims.facts import assign_splits

    if all(c.split is not None for c in claims):
        return claims
    fixed: dict[str, str] = {}
    for claim in claims:
        if claim.split is not None and claim.topic:
            fixed.setdefault(claim.topic, claim.split)
    sizes = Counter((c.topic or f"id:{c.base_id}") for c in claims
                    if c.split is None and not (c.topic and c.topic in fixed))
    assigned = assign_splits(dict(sizes), seed)
    result = []
    for claim in claims:
        if claim.split is None:
            key = claim.topic or f"id:{claim.base_id}"
            split = fixed.get(claim.topic) if claim.topic in fixed else assigned[key]
            claim = InputClaim(claim.base_id, claim.text, claim.true_label, split,
                               claim.topic, claim.source)
        result.append(claim)
    return result
