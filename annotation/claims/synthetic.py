"""Generate synthetic datasets shaped like FrameRef's JSON Lines release, for benchmarks and scale tests."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import orjson

from core.vocabulary import FRAMINGS, SPLITS, TRUTH_LABELS

__all__ = ["FRAMINGS", "SyntheticSummary", "write_synthetic_claims"]

# Share of non-original framings removed, close to what FrameRef lost to failed
# verification; it sets how many base claims a given row count needs.
_DROP_RATE = 0.045
# How often an original claim carries a source tail; tuned so originals average ~85 chars.
_TAIL_RATE = 0.68
_MIN_CHARS, _MAX_CHARS = 40, 160
_SPLIT_SHARES = (0.8, 0.9)  # cumulative row shares at which dev and then test begin
# Rows per write/progress call, and base claims converted from numpy to lists at a time:
# large enough to amortise the calls, small enough to keep memory flat.
_CHUNK_ROWS = 8192
_BLOCK_BASES = 16384
# The vocabulary must not change with the caller's seed, so that two seeds differ only in
# how the same pieces are combined.
_VOCAB_SEED = 20240517
_EXPANSIONS_PER_TEMPLATE = 160


@dataclass(frozen=True)
class SyntheticSummary:
    rows: int
    base_claims: int
    rows_per_split: dict[str, int]
    files: list[Path]


# ---------------------------------------------------------------------------------------
# Vocabulary

_CITIES = (
    "Zürich", "São Paulo", "Kraków", "Malmö", "Gdansk", "Reykjavik", "Bogotá", "Cordoba",
    "Lisbon", "Porto", "Lyon", "Leipzig", "Utrecht", "Bergen", "Tartu", "Valparaiso", "Brno",
    "Ljubljana", "Thessaloniki", "Montreal", "Quebec City", "Kyoto", "Osaka", "Hanoi",
    "Nairobi", "Accra", "Mombasa", "Cusco", "Mendoza", "Adelaide", "Hobart", "Wellington",
    "Tromso", "Aarhus", "Gothenburg", "Pilsen", "Kosice", "Timisoara", "Edinburgh", "Cork",
    "Galway", "Bilbao", "Granada", "Seville", "Naples", "Bologna", "Trieste", "Marseille",
    "Nantes", "Ghent", "Antwerp", "Salzburg", "Graz", "Innsbruck", "Coimbra", "Braga",
    "Port Ellisbury", "Valdemora", "Norrevik", "Castelmar", "Brennhaven", "Santa Olvida",
    "Kirkwall Ness", "Novy Dvur", "Alderwick", "Monteverra", "Lindholm", "Ostrehavn",
)
_COUNTRIES = (
    "Portugal", "Spain", "Italy", "France", "Germany", "Poland", "Norway", "Sweden",
    "Finland", "Chile", "Argentina", "Brazil", "Peru", "Kenya", "Ghana", "Japan", "Vietnam",
    "Canada", "Australia", "New Zealand", "Austria", "Czechia", "Romania", "Greece",
    "Croatia", "Scotland", "Ireland", "Iceland", "Morocco", "Türkiye", "Colombia", "Denmark",
)
_REGIONS = (
    "northern", "southern", "eastern", "western", "central", "north-eastern",
    "south-western", "north-western", "south-eastern",
)
_NUMWORDS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "eleven", "twelve")
_FIRST_NAMES = (
    "Marta", "Jonas", "Ingrid", "Tomas", "Elodie", "Henrik", "Amara", "Kenji", "Lucia",
    "Piotr", "Søren", "Zoë", "Anselm", "Beatriz", "Oskar", "Nadia", "Matteo", "Halima",
    "Rafael", "Greta", "Dmitri", "Aoife", "Joaquim", "Lena", "Tobias", "Ines", "Kwame",
    "Vera", "Emil", "Clara", "Bohumil", "Yuki", "Selma", "Arturo", "Ida", "Felix",
)
_SURNAMES = (
    "Halvorsen", "Novak", "Ferreira", "Lindqvist", "Moreau", "Kowalski", "Okafor", "Tanaka",
    "Castellano", "Müller", "Dvořák", "Brennan", "Vasquez", "Eriksen", "Rossi", "Mensah",
    "Lukas", "Van der Berg", "Almeida", "Keller", "Nieminen", "O'Sullivan", "Horvat",
    "Petrescu", "Szabo", "Andersson", "Costa", "Fischer", "Jankowski", "Oyelaran",
)
_FAMOUS_PEOPLE = (
    "Marie Curie", "Isaac Newton", "Ada Lovelace", "Antonín Dvořák", "Frida Kahlo",
    "Nikola Tesla", "Leonhard Euler", "Gabriela Mistral", "Fernando Pessoa", "Alan Turing",
    "Rosalind Franklin", "Jean Sibelius", "Hypatia of Alexandria", "Carl Linnaeus",
    "Emmy Noether", "Niels Bohr", "Clara Schumann", "Gustav Klimt", "Sofia Kovalevskaya",
    "Alexander von Humboldt", "Wangari Maathai", "Santiago Ramón y Cajal", "Béla Bartók",
)
_ROLES = (
    "The composer", "The physicist", "The Brazilian novelist", "The Polish chemist",
    "The explorer", "The painter", "The mathematician", "The architect", "The poet",
    "The Norwegian botanist", "The economist", "The Chilean astronomer", "The sculptor",
)
_WATERS = (
    "The river Danube", "The river Douro", "The river Vltava", "The river Oskava",
    "The river Thames", "The river Loire", "The river Ebro", "The river Tagus",
    "Lake Bled", "Lake Titicaca", "Lake Ohrid", "Lake Constance", "Lake Vänern",
    "Lake Maracaibo", "The Bay of Kotor", "Lake Myvatn", "The river Almenar",
    "Lake Ostervall", "The Skjærgård channel", "The river Brennach", "Lake Saimaa",
)
_MOUNTAINS = (
    "Mount Kilimanjaro", "Mount Ararat", "Mount Olympus", "The Matterhorn", "Mont Blanc",
    "Mount Aconcagua", "Mount Triglav", "Mount Fuji", "The Großglockner", "Mount Hekla",
    "Mount Kenya", "Pico de Orizaba", "Mount Eldrith", "The Serra do Caldeirão",
    "Mount Varnholt", "The Atacama plateau", "The Vatnajökull glacier", "Mount Corvana",
)
_FAMOUS_BUILDINGS = (
    "The Eiffel Tower", "The University of Coimbra", "The National Museum of Brazil",
    "St. Vitus Cathedral", "The Alhambra", "The Charles Bridge", "The Royal Library",
    "The Sagrada Família", "The Hagia Sophia", "The Rijksmuseum", "The Acropolis Museum",
    "The Palace of Culture", "The Halvorsen Institute", "The Old Customs House",
)
_BUILDING_PATTERNS = (
    "The {CITY} Cathedral", "The University of {CITY}", "The {CITY} Observatory",
    "The Museum of Modern Art in {CITY}", "The central railway station of {CITY}",
    "The {CITY} Opera House", "The old town hall of {CITY}", "The {CITY} Botanical Garden",
)
_TITLES = (
    "The Salt Road", "The Quiet Harbour", "A Winter in Lisbon", "The Glass Orchard",
    "Northern Lights Over Bergen", "The Last Cartographer", "Letters from Cracow",
    "The Iron Bell", "Songs of the Lowlands", "The Clockmaker's Daughter", "Żelazna Wieża",
    "A House by the Douro", "The Silent Valley", "Autumn in Zürich", "The Paper Kingdom",
)
_WORK_KINDS = (
    "The novel", "The opera", "The film", "The play", "The symphonic poem", "The documentary",
)

_SLOTS: dict[str, tuple[str, ...]] = {
    "CITY": _CITIES,
    "COUNTRY": _COUNTRIES,
    "REGION": _REGIONS,
    "NUMWORD": _NUMWORDS,
    "PERSON": tuple(f"{f} {s}" for f in _FIRST_NAMES for s in _SURNAMES),
    "YEAR_OLD": tuple(str(y) for y in range(1100, 1900)),
    "YEAR_BORN": tuple(str(y) for y in range(1700, 1991)),
    "YEAR": tuple(str(y) for y in range(1850, 2016)),
    "YEAR_NOBEL": tuple(str(y) for y in range(1901, 2016)),
    "YEAR_UNESCO": tuple(str(y) for y in range(1978, 2020)),
    "AGE": tuple(str(a) for a in range(41, 99)),
    "FIELD": ("Physics", "Chemistry", "Medicine", "Literature", "Economics", "Peace"),
    "SUBJECT": (
        "mathematics", "law", "medicine", "philosophy", "botany", "architecture",
        "astronomy", "linguistics", "music", "chemistry", "geology", "economics",
    ),
    "INSTRUMENT": ("violin", "cello", "piano", "organ", "flute", "oboe", "double bass"),
    "POP": tuple(f"{n:,}" for n in (
        1_200, 3_500, 8_000, 12_000, 18_500, 25_000, 40_000, 65_000, 90_000, 120_000,
        250_000, 410_000, 600_000, 850_000, 1_300_000, 2_100_000, 3_400_000,
    )),
    "SPORTEVENT": (
        "Winter Olympics", "World Athletics Championships", "European Rowing Championships",
        "Tour de France finish", "World Chess Olympiad", "Commonwealth Games",
    ),
    "ALT": tuple(f"{n:,}" for n in range(120, 6900, 37)),
    "KM": tuple(f"{n:,}" for n in range(12, 3100, 13)),
    "DEPTH": tuple(str(n) for n in range(18, 410, 7)),
    "HEIGHT": tuple(str(n) for n in range(21, 330, 3)),
    "MANY": tuple(f"{n:,}" for n in (
        1_500, 4_000, 12_000, 30_000, 75_000, 200_000, 450_000, 1_000_000, 2_500_000,
    )),
    "LANGS": tuple(str(n) for n in range(12, 81)),
    "MINUTES": tuple(str(n) for n in range(74, 241, 4)),
    "SPECIES": tuple(str(n) for n in range(60, 420, 10)),
}

# Subjects and predicates grouped by kind of thing, so that a person is never said to lie
# on a river: the claims should read as plausible even when they are false.
_CATEGORIES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (  # people
        ("{PERSON}", "{PERSON}", "{ROLE} {PERSON}", "{FAMOUS_PERSON}"),
        (
            "was born in {CITY} in {YEAR_BORN}", "was born in {YEAR_BORN}",
            "died in {CITY} at the age of {AGE}", "won {NUMWORD} Olympic medals",
            "won the Nobel Prize in {FIELD} in {YEAR_NOBEL}",
            "studied {SUBJECT} at the University of {CITY}",
            "wrote {NUMWORD} novels before turning forty",
            "composed {NUMWORD} symphonies and an unfinished opera",
            "served as mayor of {CITY} for {NUMWORD} years",
            "was the first person to map the coastline of {COUNTRY}",
            "spoke {NUMWORD} languages fluently", "emigrated to {COUNTRY} in {YEAR}",
            "taught {SUBJECT} in {CITY} for over a decade",
            "played the {INSTRUMENT} in the {CITY} Philharmonic",
            "held the national marathon record for {NUMWORD} years",
            "founded a school of {SUBJECT} in {CITY} in {YEAR}",
        ),
    ),
    (  # cities and towns
        ("{CITY}", "{CITY}", "The town of {CITY}", "The port city of {CITY}"),
        (
            "is located in {REGION} {COUNTRY}", "has a population of about {POP}",
            "was founded in {YEAR_OLD}", "lies on the banks of the river {RIVER}",
            "hosted the {SPORTEVENT} in {YEAR}", "is twinned with {CITY}",
            "was the capital of {COUNTRY} until {YEAR}",
            "sits at an altitude of {ALT} metres above sea level",
            "has the oldest botanical garden in {COUNTRY}",
            "was almost entirely rebuilt after a fire in {YEAR_OLD}",
            "is home to {NUMWORD} universities", "lies about {KM} kilometres from {CITY}",
        ),
    ),
    (  # rivers and lakes
        ("{WATER}",),
        (
            "is about {KM} kilometres long", "flows through {NUMWORD} countries",
            "reaches a maximum depth of {DEPTH} metres",
            "was first surveyed by {PERSON} in {YEAR_BORN}",
            "forms part of the border between {COUNTRY} and {COUNTRY}",
            "has been a protected nature reserve since {YEAR}",
            "freezes over completely in most winters",
            "is home to more than {SPECIES} species of birds",
            "is located in {REGION} {COUNTRY}", "supplies drinking water to {CITY}",
        ),
    ),
    (  # mountains
        ("{MOUNTAIN}",),
        (
            "rises to {ALT} metres above sea level", "was first climbed in {YEAR}",
            "was first climbed by {PERSON} in {YEAR}", "is located in {REGION} {COUNTRY}",
            "last erupted in {YEAR}", "appears on the national flag of {COUNTRY}",
            "has been a national park since {YEAR}",
            "can be seen from {CITY} on a clear day",
            "is home to more than {SPECIES} species of alpine plants",
        ),
    ),
    (  # buildings and institutions
        ("{FAMOUS_BUILDING}", "{BUILDING}", "{BUILDING}"),
        (
            "was founded in {YEAR_OLD}", "was completed in {YEAR}",
            "was designed by the architect {PERSON}", "is located in {REGION} {COUNTRY}",
            "attracts about {MANY} visitors each year", "is {HEIGHT} metres tall",
            "was damaged by an earthquake in {YEAR}", "holds more than {MANY} manuscripts",
            "was declared a UNESCO World Heritage Site in {YEAR_UNESCO}",
            "took {NUMWORD} decades to build", "once served as a military hospital",
        ),
    ),
    (  # creative works
        ("{WORK_KIND} '{TITLE}'", "{WORK_KIND} '{TITLE}'", "{WORK_KIND} {TITLE}"),
        (
            "was first published in {YEAR}", "premiered in {CITY} in {YEAR}",
            "was written by {PERSON}", "has been translated into {LANGS} languages",
            "won the Golden Lion at the Venice Film Festival in {YEAR}",
            "was banned in {COUNTRY} for {NUMWORD} years",
            "sold more than {MANY} copies in its first year",
            "was adapted into a stage musical in {YEAR}", "runs for about {MINUTES} minutes",
            "is set in {CITY} during the winter of {YEAR}",
        ),
    ),
)
_SLOTS.update({
    "ROLE": _ROLES,
    "FAMOUS_PERSON": _FAMOUS_PEOPLE,
    "WATER": _WATERS,
    "RIVER": tuple(w.removeprefix("The river ") for w in _WATERS if w.startswith("The river ")),
    "MOUNTAIN": _MOUNTAINS,
    "FAMOUS_BUILDING": _FAMOUS_BUILDINGS,
    "BUILDING": _BUILDING_PATTERNS,  # expanded again below, since it holds {CITY}
    "TITLE": _TITLES,
    "WORK_KIND": _WORK_KINDS,
})

# Appended to about half the originals; they lengthen the sentence the way FrameRef's
# source-bearing claims do.  The first one doubles as the filler for claims that would
# otherwise come out under _MIN_CHARS, so it is the longest.
_TAILS = (
    ", as recorded in several contemporary sources",
    ", according to official records",
    ", according to the national archives",
    ", as several encyclopaedias note",
    ", according to a survey published in {YEAR}",
    ", as local newspapers reported at the time",
    ", according to records kept in {CITY}",
    ", as described in a {YEAR} guidebook",
    ", according to the regional statistics office",
    ", as a plaque near the entrance records",
)

# "{C}" inserts the claim as it stands (sentence start); "{c}" lower-cases a leading
# article so it reads mid-sentence.  Each adds 20-80 characters, as FrameRef's
# restatements do.
_FRAMING_TEMPLATES: dict[str, tuple[str, ...]] = {
    "authoritative": (
        "According to leading historians, {c}.",
        "{C}, experts at major universities confirm.",
        "Official government records confirm that {c}.",
        "As documented by the national academy of sciences, {c}.",
        "{C}. This has been verified by independent fact-checkers.",
        "Peer-reviewed research has firmly established that {c}.",
        "The standard reference works all state plainly that {c}.",
        "{C}, as confirmed by the state archive's chief curator.",
    ),
    "consensus": (
        "It is widely accepted that {c}.",
        "Most people agree that {c}.",
        "{C}, as almost everyone already knows.",
        "There is broad agreement among scholars that {c}.",
        "Virtually every source you will find agrees that {c}.",
        "{C}; this is simply common knowledge, of course.",
        "Ask anyone and they will tell you that {c}.",
        "Everybody in the field takes it for granted that {c}.",
    ),
    "emotional": (
        "It breaks my heart to say it, but {c}.",
        "I was genuinely moved to learn that {c}.",
        "{C}, and honestly that fills me with pride.",
        "It is heartwarming to know that {c}.",
        "{C}. I can't stop thinking about it, it means so much to me.",
        "My grandmother cried when she told me that {c}.",
        "It still gives me chills to remember that {c}.",
    ),
    "prestige": (
        "As a Nobel laureate once remarked, {c}.",
        "Harvard and Oxford professors have long taught that {c}.",
        "In a lecture at the Sorbonne, a renowned scholar explained that {c}.",
        "{C}, as noted in a celebrated Royal Society address.",
        "Award-winning journalists have reported that {c}.",
        "A bestselling author and Cambridge fellow wrote that {c}.",
        "{C}, according to a prize-winning BBC documentary.",
        "The world’s most cited scientist has said that {c}.",
    ),
    "sensationalist": (
        "SHOCKING: you won't believe that {c}!",
        "BREAKING: new evidence reveals that {c}!",
        "Unbelievable! {C} — and nobody is talking about it!",
        "The truth they don't want you to know: {c}.",
        "{C}! This mind-blowing fact will change everything you thought you knew.",
        "You'll never guess what insiders just admitted: {c}!!!",
        "{C}?! Experts are stunned and the internet is going wild.",
    ),
}

_SLOT_RE = re.compile(r"\{([A-Z_]+)\}")
_FORBIDDEN = re.compile(r"[\t\n\r\x00]")


@dataclass(frozen=True)
class _Vocabulary:
    subjects: tuple[str, ...]  # all categories, concatenated
    subjects_mid: tuple[str, ...]  # the same with a leading article lower-cased
    subject_len: np.ndarray
    subject_offset: np.ndarray  # per category
    subject_count: np.ndarray
    predicates: tuple[str, ...]  # each with its leading space
    predicate_len: np.ndarray
    predicate_offset: np.ndarray
    predicate_count: np.ndarray
    tails: tuple[str, ...]  # index 0 is the empty tail
    tail_len: np.ndarray
    # per non-original framing: (prefix, uses the mid-sentence form, suffix)
    templates: tuple[tuple[tuple[str, bool, str], ...], ...]
    template_count: np.ndarray


def _expand(pattern: str, draw: Callable[[int], int], times: int) -> list[str]:
    # Fixed-size expansion per pattern (duplicates kept) gives every pattern the same
    # weight, whether it has one filling or a million.
    if not _SLOT_RE.search(pattern):
        return [pattern] * times
    out = []
    for _ in range(times):
        text = pattern
        # re-search after each fill: a filling may itself hold slots
        while (m := _SLOT_RE.search(text)) is not None:
            choices = _SLOTS[m.group(1)]
            text = text[: m.start()] + choices[draw(len(choices))] + text[m.end() :]
        out.append(text)
    return out


def _mid_sentence(text: str) -> str:
    for article in ("The ", "A "):
        if text.startswith(article):
            return article.lower() + text[len(article) :]
    return text


@lru_cache(maxsize=1)
def _vocabulary() -> _Vocabulary:
    vocab_rng = np.random.default_rng(_VOCAB_SEED)
    # One array of uniforms consumed in order: scalar rng calls would dominate the build.
    uniforms = iter(vocab_rng.random(1 << 20).tolist())

    def draw(n: int) -> int:
        return int(next(uniforms) * n)

    subjects: list[str] = []
    predicates: list[str] = []
    s_off, s_cnt, p_off, p_cnt = [], [], [], []
    for subject_patterns, predicate_patterns in _CATEGORIES:
        s_off.append(len(subjects))
        for pattern in subject_patterns:
            subjects.extend(_expand(pattern, draw, _EXPANSIONS_PER_TEMPLATE))
        s_cnt.append(len(subjects) - s_off[-1])
        p_off.append(len(predicates))
        for pattern in predicate_patterns:
            predicates.extend(" " + t for t in _expand(pattern, draw, _EXPANSIONS_PER_TEMPLATE))
        p_cnt.append(len(predicates) - p_off[-1])

    tails = [""]
    for pattern in _TAILS:
        tails.extend(_expand(pattern, draw, 8))

    templates = []
    for framing in FRAMINGS[1:]:
        parsed = []
        for template in _FRAMING_TEMPLATES[framing]:
            mid = "{c}" in template
            prefix, suffix = template.split("{c}" if mid else "{C}")
            # the original ends in "." which the template replaces
            assert 20 <= len(prefix) + len(suffix) - 1 <= 80, template
            parsed.append((prefix, mid, suffix))
        templates.append(tuple(parsed))

    for text in (*subjects, *predicates, *tails, *(p + s for t in templates for p, _, s in t)):
        assert not _FORBIDDEN.search(text) and "{" not in text, repr(text)
    longest = max(map(len, subjects)) + max(map(len, predicates)) + 1
    assert longest <= _MAX_CHARS, longest  # so dropping the tail always fits
    assert len(tails[1]) == max(map(len, tails))

    def lengths(items: list[str]) -> np.ndarray:
        return np.fromiter(map(len, items), dtype=np.int32, count=len(items))

    return _Vocabulary(
        subjects=tuple(subjects),
        subjects_mid=tuple(_mid_sentence(s) for s in subjects),
        subject_len=lengths(subjects),
        subject_offset=np.array(s_off, dtype=np.int64),
        subject_count=np.array(s_cnt, dtype=np.int64),
        predicates=tuple(predicates),
        predicate_len=lengths(predicates),
        predicate_offset=np.array(p_off, dtype=np.int64),
        predicate_count=np.array(p_cnt, dtype=np.int64),
        tails=tuple(tails),
        tail_len=lengths(tails),
        templates=tuple(templates),
        template_count=np.array([len(t) for t in templates], dtype=np.int64),
    )


# ---------------------------------------------------------------------------------------
# Writing


class _ShardWriter:
    """Lines of one split into numbered shards, opening each only when it gets a row."""

    def __init__(self, out_dir: Path, split: str, shard_size: int, files: list[Path],
                 progress: Callable[[int], object] | None) -> None:
        self._out_dir = out_dir
        self._split = split
        self._shard_size = shard_size
        self._files = files
        self._progress = progress
        self._shard_index = 0
        self._in_shard = 0
        self._fh = None

    def write(self, lines: list[bytes]) -> None:
        pos, total = 0, len(lines)
        while pos < total:
            if self._fh is None:
                rel = Path(self._split) / f"{self._split}-{self._shard_index:04d}.jsonl"
                self._fh = open(self._out_dir / rel, "wb")
                self._files.append(rel)
                self._shard_index += 1
                self._in_shard = 0
            take = min(total - pos, self._shard_size - self._in_shard)
            self._fh.write(b"".join(lines[pos : pos + take]))
            pos += take
            self._in_shard += take
            if self._in_shard == self._shard_size:
                self.close()
        if self._progress is not None and total:
            self._progress(total)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _base_claim_count(rows: int) -> int:
    target = round(rows / (1 + (len(FRAMINGS) - 1) * (1 - _DROP_RATE)))
    # at most six rows per base claim, at least one
    return min(rows, max(-(-rows // len(FRAMINGS)), target))


def write_synthetic_claims(
    *,
    rows: int,
    out_dir: Path,
    seed: int = 0,
    shard_size: int = 100_000,
    progress: Callable[[int], object] | None = None,
) -> SyntheticSummary:
    """Write exactly ``rows`` FrameRef-shaped rows under ``out_dir``/{train,dev,test}.

    Same (rows, seed, shard_size) gives byte-identical files.  ``progress``, if given,
    is called with the number of rows just written, every few thousand rows.
    """
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ValueError(f"rows must be a positive integer, got {rows!r}")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be a positive integer, got {shard_size!r}")
    out_dir = Path(out_dir)
    for split in SPLITS:
        folder = out_dir / split
        if folder.is_dir() and any(folder.glob("*.jsonl")):
            raise FileExistsError(f"{folder} already holds .jsonl files")

    vocab = _vocabulary()
    n_framed = len(FRAMINGS) - 1
    base_claims = _base_claim_count(rows)
    drops = len(FRAMINGS) * base_claims - rows

    # Every per-claim draw happens here, in a fixed order, so the output depends only on
    # (rows, seed) and the writing loop below touches no rng.
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, base_claims, dtype=np.int8)
    category = rng.integers(0, len(vocab.subject_count), base_claims)
    subject = vocab.subject_offset[category] + (
        rng.random(base_claims) * vocab.subject_count[category]).astype(np.int64)
    predicate = vocab.predicate_offset[category] + (
        rng.random(base_claims) * vocab.predicate_count[category]).astype(np.int64)
    tail = np.where(rng.random(base_claims) < _TAIL_RATE,
                    rng.integers(1, len(vocab.tails), base_claims), 0)
    keep = np.ones(n_framed * base_claims, dtype=bool)
    keep[rng.choice(n_framed * base_claims, size=drops, replace=False)] = False
    keep = keep.reshape(base_claims, n_framed)
    template = (rng.random((base_claims, n_framed)) * vocab.template_count).astype(np.int8)
    order = rng.permutation(base_claims)
    del category

    # Keep originals within [_MIN_CHARS, _MAX_CHARS] (the trailing "." included): pad the
    # short ones with the longest tail, strip the tail from the long ones.
    core = vocab.subject_len[subject] + vocab.predicate_len[predicate] + 1
    tail[core + vocab.tail_len[tail] > _MAX_CHARS] = 0
    tail[core + vocab.tail_len[tail] < _MIN_CHARS] = 1
    del core

    # Splits are cut by rows, not claims, walking claims in shuffled order so each split
    # gets a random set of whole claims.
    counts = 1 + keep.sum(axis=1)
    starts = np.cumsum(counts[order]) - counts[order]
    cuts = [int(np.searchsorted(starts, round(rows * share), side="left"))
            for share in _SPLIT_SHARES]
    bounds = list(zip([0, *cuts], [*cuts, base_claims]))
    rows_per_split = {split: int(counts[order[lo:hi]].sum())
                      for split, (lo, hi) in zip(SPLITS, bounds)}
    del starts, counts

    out_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        (out_dir / split).mkdir(exist_ok=True)

    files: list[Path] = []
    subjects, subjects_mid = vocab.subjects, vocab.subjects_mid
    predicates, tails = vocab.predicates, vocab.tails
    framed = [(":" + name, name, vocab.templates[i]) for i, name in enumerate(FRAMINGS[1:])]
    label_names = TRUTH_LABELS
    # OPT_APPEND_NEWLINE yields exactly orjson.dumps(obj) + b"\n", minus a copy per row.
    dumps, opt = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    for split, (lo, hi) in zip(SPLITS, bounds):
        writer = _ShardWriter(out_dir, split, shard_size, files, progress)
        buf: list[bytes] = []
        add = buf.append
        try:
            for block in range(lo, hi, _BLOCK_BASES):
                ids = order[block : min(hi, block + _BLOCK_BASES)]
                for b, s, p, t, lab, kp, tp in zip(
                    ids.tolist(), subject[ids].tolist(), predicate[ids].tolist(),
                    tail[ids].tolist(), labels[ids].tolist(), keep[ids].tolist(),
                    template[ids].tolist(),
                ):
                    bid = f"synth-{b:06d}"
                    label = label_names[lab]
                    rest = predicates[p] + tails[t]
                    claim = subjects[s] + rest
                    text = claim + "."
                    add(dumps({
                        "claim_id": bid + ":original",
                        "restated_claim": text,
                        "framing_type": "original",
                        "true_label": label,
                        "messages": [{"role": "user", "content": text},
                                     {"role": "assistant", "content": label}],
                    }, option=opt))
                    claim_mid = subjects_mid[s] + rest
                    for (suffix_id, name, options), k, ti in zip(framed, kp, tp):
                        if not k:
                            continue
                        prefix, mid, suffix = options[ti]
                        text = prefix + (claim_mid if mid else claim) + suffix
                        add(dumps({
                            "claim_id": bid + suffix_id,
                            "restated_claim": text,
                            "framing_type": name,
                            "true_label": label,
                            "messages": [{"role": "user", "content": text},
                                         {"role": "assistant", "content": label}],
                        }, option=opt))
                    if len(buf) >= _CHUNK_ROWS:
                        writer.write(buf)
                        buf.clear()
            writer.write(buf)
            buf.clear()
        finally:
            writer.close()

    return SyntheticSummary(
        rows=rows,
        base_claims=base_claims,
        rows_per_split=rows_per_split,
        files=files,
    )
