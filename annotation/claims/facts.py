"""Verifiable base claims generated from structured facts that ship inside registry packages.

The demo dataset is far too small to teach a persona anything, and FEVER-derived claims
cannot be checked offline. This module turns facts that well-known PyPI packages carry
(countries, their capitals, currencies, borders and subdivisions; the periodic table; US
states; units and physical constants) into short declarative claims with a ground truth.

Every claim is an *assertion* `(relation, subject, value)` rendered into English. A true
claim states the recorded value; a false one swaps in a plausible wrong value of the same
kind (another capital of the same subregion, a nearby atomic number, the statehood year of
another state) and is kept only if `FactBase.holds` says the swapped assertion is false
against the facts, so no false claim is accidentally true. `holds` is the single place
that decides truth, and the tests re-derive every label through it and, for a sample,
straight from the packages' raw data.

Claims carry a topic (`country:FR`, `element:Fe`, `us-state:TX`, `unit:mile`); splits are
cut by topic, 80/10/10 by base claims, and each topic's claims are as balanced between
true and false as its size allows, so every split is balanced too. One seed gives one
corpus. No Django here: the generator is tested alone.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import metadata, resources
from typing import Callable, Iterable, Iterator

from core.vocabulary import SPLITS, TRUTH_LABELS

SUPPORTS, REFUTES = TRUTH_LABELS
SPLIT_SHARES = {"train": 0.8, "dev": 0.1, "test": 0.1}
# ISO 3166-2 lists over 200 municipalities for some countries; a cap keeps one country's
# obscure subdivisions from dominating the corpus.
MAX_SUBDIVISIONS_PER_COUNTRY = 30
CLAIM_ID_PREFIX = "facts"


class FactsUnavailable(RuntimeError):
    """A fact package is not installed (see requirements/base.txt)."""


# ---------------------------------------------------------------------------------------
# Sources


@lru_cache(maxsize=None)
def _package_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class Source:
    package: str
    licence: str
    what: str

    @property
    def version(self) -> str:
        return _package_version(self.package)

    def label(self) -> str:
        return f"{self.package} {self.version} ({self.licence})"


SOURCES = {
    "countryinfo": Source("countryinfo", "MIT",
                          "country capitals, UN geoscheme subregions, currencies, calling codes, "
                          "top-level domains, demonyms and land borders"),
    "pycountry": Source("pycountry", "LGPL-2.1-only",
                        "ISO 3166-1 codes, ISO 3166-2 subdivisions, ISO 4217 currency names "
                        "(Debian iso-codes data)"),
    "periodictable": Source("periodictable", "public domain",
                            "element names, symbols, atomic numbers and standard atomic weights"),
    "us": Source("us", "BSD-3-Clause", "US state capitals, postal abbreviations and statehood years"),
    "scipy": Source("scipy", "BSD-3-Clause", "unit conversion factors and physical constants "
                                             "(scipy.constants, CODATA)"),
}
# The claims themselves are plain facts; we put our wording in the public domain.
CLAIMS_LICENCE = "CC0-1.0"


def dataset_licence() -> str:
    """The dataset's licence line, naming the licence of every source (fits 200 characters)."""
    parts = ", ".join(f"{s.package} {s.licence}" for s in SOURCES.values())
    return f"claims {CLAIMS_LICENCE}; facts from {parts}"


def dataset_source() -> str:
    return "FrameLab fact generator from " + "; ".join(s.label() for s in SOURCES.values())


# ---------------------------------------------------------------------------------------
# Facts


@dataclass(frozen=True)
class Country:
    code: str  # ISO 3166-1 alpha-2
    name: str
    alpha3: str
    capitals: frozenset[str]  # several for countries with more than one seat
    region: str
    subregion: str
    intermediate_region: str  # UN M49's finer grouping (South America, Caribbean), if any
    currencies: frozenset[str]
    calling_codes: frozenset[str]
    tlds: frozenset[str]
    demonym: str
    borders: frozenset[str]  # alpha-2 codes


@dataclass(frozen=True)
class Subdivision:
    code: str
    name: str
    country: str
    type: str
    top_level: bool  # no parent subdivision in ISO 3166-2


@dataclass(frozen=True)
class Element:
    number: int
    symbol: str
    name: str
    weight: float | None  # standard atomic weight; None for elements without one


@dataclass(frozen=True)
class State:
    abbr: str
    name: str
    capital: str
    statehood_year: int


@dataclass(frozen=True)
class Quantity:
    """A unit or constant: `value` of it is `amount` in `target_unit` (plural form)."""

    key: str
    subject: str  # "One mile", "The speed of light in a vacuum"
    amount: float
    target_unit: str
    copula: str = "is"


# Names countryinfo has outdated or awkward; ISO alpha-2 -> the name used in claims.
_COUNTRY_NAMES = {
    "SZ": "Eswatini", "MK": "North Macedonia", "VA": "Vatican City", "PS": "Palestine",
    "CW": "Curaçao", "VG": "British Virgin Islands", "VI": "United States Virgin Islands",
    "GS": "South Georgia and the South Sandwich Islands", "MF": "Saint Martin",
    "SX": "Sint Maarten", "US": "United States", "CZ": "Czechia",
}
# Names that take "the" in running text.
_THE_NAMES = re.compile(
    r"^(United |Republic |Democratic |Federated |Central African|Dominican Republic|Czech Republic"
    r"|Holy See|Isle of Man|Vatican)|(Islands|Netherlands|Bahamas|Philippines|Maldives|Comoros"
    r"|Seychelles|Gambia|Emirates|Territory|Lands|Kingdom|States)$"
)
# Land borders that run through overseas territories and that countryinfo does not list;
# a false border claim between these would be technically true.
_EXTRA_BORDERS = frozenset({
    frozenset({"FR", "NL"}), frozenset({"FR", "BR"}), frozenset({"FR", "SR"}),
    frozenset({"GB", "ES"}), frozenset({"GB", "CY"}), frozenset({"DK", "CA"}),
    frozenset({"ES", "MA"}),
})
# Borders countryinfo lists that do not exist (India-Sri Lanka, Myanmar-Bhutan, Kuwait-Iran,
# Chad-South Sudan) or run only through disputed territory (India-Afghanistan through
# Kashmir, Serbia-Albania through Kosovo): no claim, true or false, is made about them.
_DOUBTFUL_BORDERS = frozenset({
    frozenset({"IN", "LK"}), frozenset({"MM", "BT"}), frozenset({"KW", "IR"}),
    frozenset({"TD", "SS"}), frozenset({"IN", "AF"}), frozenset({"RS", "AL"}),
})
# ISO 3166-2 subdivision types that read naturally in English ("a province of").
_ENGLISH_SUBDIVISION_TYPES = frozenset({
    "province", "region", "district", "state", "department", "county", "governorate",
    "prefecture", "parish", "canton", "republic", "oblast", "emirate", "municipality",
    "autonomous region", "autonomous community", "voivodship", "city", "territory",
})
# Periods of the periodic table end at these atomic numbers.
_PERIOD_ENDS = (2, 10, 18, 36, 54, 86, 118)


def element_period(number: int) -> int:
    """The period (row) of the element with this atomic number."""
    for period, last in enumerate(_PERIOD_ENDS, 1):
        if number <= last:
            return period
    raise ValueError(f"no element has atomic number {number}")


def _fold(text: str) -> str:
    """Case- and accent-insensitive form, to compare names across sources."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _load_countries() -> dict[str, Country]:
    import pycountry

    folder = resources.files("countryinfo") / "data"
    records = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".json"):
            records.append(json.loads(entry.read_text(encoding="utf-8")))
    by_code: dict[str, dict] = {}
    for record in records:
        code = (record.get("ISO") or {}).get("alpha2")
        if not code or pycountry.countries.get(alpha_2=code) is None:
            continue  # dissolved states (Serbia and Montenegro, Netherlands Antilles)
        fullness = sum(1 for v in record.values() if v)
        if code not in by_code or fullness > sum(1 for v in by_code[code].values() if v):
            by_code[code] = record  # duplicates: keep the fuller record
    countries = {}
    for code, record in sorted(by_code.items()):
        iso = pycountry.countries.get(alpha_2=code)
        currencies = frozenset(
            c for c in record.get("currencies") or ()
            if pycountry.currencies.get(alpha_3=c) is not None  # drop withdrawn ones (HRK, ...)
        )
        demonym = record.get("demonym") or ""
        countries[code] = Country(
            code=code,
            name=_COUNTRY_NAMES.get(code, record["name"]).removeprefix("The "),
            alpha3=iso.alpha_3,
            capitals=_capitals(record.get("capital")),
            region=record.get("region") or "",
            subregion=record.get("subregion") or "",
            intermediate_region=record.get("intermediateregion") or "",
            currencies=currencies,
            calling_codes=frozenset(c for c in record.get("callingCodes") or () if c.isdigit()),
            tlds=frozenset(t for t in record.get("tld") or () if re.fullmatch(r"\.[a-z]{2}", t)),
            demonym="" if "," in demonym else demonym.strip(),
            borders=frozenset(),  # filled below, once alpha-3 codes resolve
        )
    alpha3_to_2 = {c.alpha3: c.code for c in countries.values()}
    result = {}
    for code, country in countries.items():
        borders = {alpha3_to_2[b] for b in by_code[code].get("borders") or () if b in alpha3_to_2
                   and frozenset({code, alpha3_to_2[b]}) not in _DOUBTFUL_BORDERS}
        result[code] = Country(**{**country.__dict__, "borders": frozenset(borders)})
    # Borders are symmetric: a border listed on one side only counts for both.
    for code, country in result.items():
        for other in country.borders:
            if code not in result[other].borders:
                result[other] = Country(**{**result[other].__dict__,
                                           "borders": result[other].borders | {code}})
    return result


def _capitals(value) -> frozenset[str]:
    values = value if isinstance(value, list) else [value]
    return frozenset(v.strip() for v in values if isinstance(v, str) and v.strip())


def _load_subdivisions() -> list[Subdivision]:
    import pycountry

    return [
        Subdivision(code=s.code, name=s.name, country=s.country_code, type=s.type,
                    top_level=s.parent_code is None)
        for s in sorted(pycountry.subdivisions, key=lambda s: s.code)
    ]


def _load_elements() -> list[Element]:
    import periodictable

    elements = []
    for element in periodictable.elements:
        if element.number < 1:
            continue  # periodictable's neutron
        mass = float(element.mass)
        # Elements without a standard atomic weight carry the mass number of their most
        # stable isotope, a whole number; they get no weight claim.
        weight = None if mass.is_integer() else mass
        elements.append(Element(element.number, element.symbol, element.name, weight))
    return elements


def _load_states() -> list[State]:
    import us

    return [State(s.abbr, s.name, s.capital, int(s.statehood_year)) for s in us.states.STATES]


def _load_quantities() -> list[Quantity]:
    import scipy.constants as c

    def q(key, subject, amount, unit, copula="is"):
        return Quantity(key, subject, amount, unit, copula)

    return [
        q("mile", "One mile", c.mile / 1e3, "kilometres"),
        q("inch", "One inch", c.inch / 1e-2, "centimetres"),
        q("foot", "One foot", c.foot, "metres"),
        q("yard", "One yard", c.yard, "metres"),
        q("nautical-mile", "One nautical mile", c.nautical_mile / 1e3, "kilometres"),
        q("pound", "One pound (avoirdupois)", c.pound, "kilograms"),
        q("ounce", "One ounce (avoirdupois)", c.ounce / 1e-3, "grams"),
        q("stone", "One stone", c.stone, "kilograms"),
        q("short-ton", "One short ton", c.short_ton, "kilograms"),
        q("long-ton", "One long ton", c.long_ton, "kilograms"),
        q("us-gallon", "One US gallon", c.gallon / 1e-3, "litres"),
        q("imperial-gallon", "One imperial gallon", c.gallon_imp / 1e-3, "litres"),
        q("us-fluid-ounce", "One US fluid ounce", c.fluid_ounce / 1e-6, "millilitres"),
        q("barrel", "One barrel of oil", c.bbl / 1e-3, "litres"),
        q("atmosphere", "One standard atmosphere", c.atm / 1e3, "kilopascals"),
        q("psi", "One pound per square inch", c.psi / 1e3, "kilopascals"),
        q("torr", "One torr", c.torr, "pascals"),
        q("calorie", "One thermochemical calorie", c.calorie, "joules"),
        q("btu", "One British thermal unit", c.Btu, "joules"),
        q("horsepower", "One mechanical horsepower", c.hp, "watts"),
        q("knot", "One knot", c.knot * 3.6, "kilometres per hour"),
        q("mph", "One mile per hour", c.mph * 3.6, "kilometres per hour"),
        q("light-year", "One light-year", c.light_year / 1e3, "kilometres"),
        q("astronomical-unit", "One astronomical unit", c.au / 1e3, "kilometres"),
        q("parsec", "One parsec", c.parsec / c.light_year, "light-years"),
        q("acre", "One acre", c.acre, "square metres"),
        q("hectare", "One hectare", c.hectare, "square metres"),
        q("carat", "One metric carat", c.carat / 1e-3, "grams"),
        q("grain", "One grain", c.grain / 1e-3, "grams"),
        q("electronvolt", "One electronvolt", c.eV, "joules"),
        q("speed-of-light", "The speed of light in a vacuum", c.c / 1e3, "kilometres per second"),
        q("standard-gravity", "Standard gravity", c.g, "metres per second squared"),
        q("avogadro", "The Avogadro constant", c.N_A, "per mole"),
        q("planck", "The Planck constant", c.h, "joule-seconds"),
        q("boltzmann", "The Boltzmann constant", c.k, "joules per kelvin"),
        q("elementary-charge", "The elementary charge", c.e, "coulombs"),
        q("gravitational", "The Newtonian constant of gravitation", c.G,
          "cubic metres per kilogram per second squared"),
        q("gas-constant", "The molar gas constant", c.R, "joules per mole per kelvin"),
        q("electron-mass", "The mass of an electron", c.m_e, "kilograms"),
        q("proton-mass", "The mass of a proton", c.m_p, "kilograms"),
        q("absolute-zero", "Absolute zero", -c.zero_Celsius, "degrees Celsius"),
        q("speed-of-sound", "One mach (the speed of sound in dry air at 15 degrees Celsius)",
          340.3, "metres per second"),
    ]


def format_amount(value: float) -> str:
    """Four significant figures, with a power of ten for very large or small numbers."""
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(abs(value)))
    if -3 <= exponent < 7:
        decimals = max(0, 3 - exponent)
        text = f"{value:,.{decimals}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text
    mantissa = value / 10 ** exponent
    return f"{mantissa:.4g} × 10^{exponent}"


def _parse_amount(text: str) -> float:
    if " × 10^" in text:
        mantissa, exponent = text.split(" × 10^")
        return float(mantissa) * 10 ** int(exponent)
    return float(text.replace(",", ""))


class FactBase:
    """The facts the claims come from, loaded from the installed packages (no network)."""

    def __init__(self, *, countries, subdivisions, elements, states, quantities) -> None:
        self.countries: dict[str, Country] = countries
        self.subdivisions: dict[str, Subdivision] = {s.code: s for s in subdivisions}
        self.elements: dict[int, Element] = {e.number: e for e in elements}
        self.states: dict[str, State] = {s.abbr: s for s in states}
        self.quantities: dict[str, Quantity] = {q.key: q for q in quantities}
        names = defaultdict(set)
        for sub in subdivisions:
            names[sub.country].add(_fold(sub.name))
        self.subdivision_names: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in names.items()}
        folded = Counter(_fold(s.name) for s in subdivisions)
        self.ambiguous_subdivision_names = frozenset(n for n, k in folded.items() if k > 1)
        self.folded_country_names = frozenset(_fold(c.name) for c in countries.values())

    @classmethod
    def load(cls) -> "FactBase":
        try:
            return cls(
                countries=_load_countries(),
                subdivisions=_load_subdivisions(),
                elements=_load_elements(),
                states=_load_states(),
                quantities=_load_quantities(),
            )
        except ModuleNotFoundError as exc:
            raise FactsUnavailable(
                f"the fact package '{exc.name}' is not installed; install requirements/base.txt"
            ) from None

    @cached_property
    def demonym_counts(self) -> Counter:
        return Counter(c.demonym for c in self.countries.values() if c.demonym)

    def holds(self, relation: str, subject: str, value: str) -> bool:
        """Whether the assertion is true according to the facts. The one arbiter of truth."""
        return RELATIONS[relation].holds(self, subject, value)


# ---------------------------------------------------------------------------------------
# Relations: which assertions exist, how they read, when they hold, what is a wrong value


def country_ref(country: Country, *, start: bool = False) -> str:
    """The country's name as it reads in running text ("the Netherlands")."""
    if _THE_NAMES.search(country.name):
        return ("The " if start else "the ") + country.name
    return country.name


def _article(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


@dataclass(frozen=True)
class Relation:
    """One kind of assertion.

    `slots(facts)` yields (topic, subject, true value) for every fact of this kind;
    `wrong_values` lists plausible wrong values of the same kind (each is checked with
    `holds` before use); `render` words an assertion as one sentence.
    """

    name: str
    source: str
    slots: Callable[[FactBase], Iterator[tuple[str, str, str]]]
    holds: Callable[[FactBase, str, str], bool]
    wrong_values: Callable[[FactBase, str, str], list[str]]
    render: Callable[[FactBase, str, str], str]


def _same_area(facts: FactBase, code: str, *, need: Callable[[Country], bool]) -> list[Country]:
    """Other countries near this one that pass `need`: of the same UN intermediate region,
    else subregion, else region, whichever first gives at least three."""
    me = facts.countries[code]
    others = [c for c in facts.countries.values() if c.code != code and need(c)]
    near = []
    for level in ("intermediate_region", "subregion", "region"):
        mine = getattr(me, level)
        near = [c for c in others if mine and getattr(c, level) == mine]
        if len(near) >= 3:
            break
    return near


def _country_slots(attribute: str, need: Callable[[Country], bool] | None = None):
    def slots(facts: FactBase):
        for country in facts.countries.values():
            value = getattr(country, attribute)
            if isinstance(value, frozenset):
                if len(value) != 1:
                    continue  # several official values: a single true claim would mislead
                (value,) = value
            if value and (need is None or need(country)):
                yield f"country:{country.code}", country.code, value
    return slots


def _in_set(attribute):
    return lambda facts, code, value: value in getattr(facts.countries[code], attribute)


def _equal(attribute):
    return lambda facts, code, value: _fold(getattr(facts.countries[code], attribute)) == _fold(value)


def _country_wrong(attribute):
    def wrong(facts: FactBase, code: str, value: str) -> list[str]:
        values = set()
        for other in _same_area(facts, code, need=lambda c: bool(getattr(c, attribute))):
            found = getattr(other, attribute)
            values.update(found if isinstance(found, frozenset) else {found})
        return sorted(values)
    return wrong


def _currency_name(code: str) -> str:
    import pycountry

    return pycountry.currencies.get(alpha_3=code).name


def _holds_border(facts: FactBase, code: str, other: str) -> bool:
    return (other in facts.countries[code].borders or code in facts.countries[other].borders
            or frozenset({code, other}) in _EXTRA_BORDERS)


def _border_slots(facts: FactBase):
    seen = set()
    for country in facts.countries.values():
        for other in sorted(country.borders):
            pair = frozenset({country.code, other})
            if pair in seen:
                continue
            seen.add(pair)
            yield f"country:{country.code}", country.code, other


def _border_wrong(facts: FactBase, code: str, value: str) -> list[str]:
    return [c.code for c in _same_area(facts, code, need=lambda c: bool(c.borders))
            if frozenset({code, c.code}) not in _DOUBTFUL_BORDERS]


def _subdivision_slots(facts: FactBase):
    per_country = defaultdict(list)
    for sub in facts.subdivisions.values():
        if sub.country in facts.countries:
            if _is_clean_subdivision(facts, sub):
                per_country[sub.country].append(sub)
    for country, subs in sorted(per_country.items()):
        # A fixed, seed-independent choice, so the corpus' facts never depend on the seed.
        subs.sort(key=lambda s: hashlib.blake2b(s.code.encode(), digest_size=8).digest())
        for sub in subs[:MAX_SUBDIVISIONS_PER_COUNTRY]:
            yield f"country:{country}", sub.code, country


def _is_clean_subdivision(facts: FactBase, sub: Subdivision) -> bool:
    if not sub.top_level:
        return False
    name = sub.name
    folded = _fold(name)
    country = facts.countries[sub.country]
    return bool(
        folded
        and not name[:1].islower()  # a few ISO names are descriptions, not names
        and not re.search(r"[;,()\[\]/]", name)
        and folded not in facts.ambiguous_subdivision_names
        and folded != _fold(country.name)
        and folded not in facts.folded_country_names
    )


def _holds_subdivision(facts: FactBase, code: str, country: str) -> bool:
    return _fold(facts.subdivisions[code].name) in facts.subdivision_names.get(country, frozenset())


def _subdivision_wrong(facts: FactBase, code: str, country: str) -> list[str]:
    return [c.code for c in _same_area(facts, country, need=lambda c: c.code in facts.subdivision_names)]


def _render_subdivision(facts: FactBase, code: str, country: str) -> str:
    sub = facts.subdivisions[code]
    kind = sub.type.lower()
    noun = kind if kind in _ENGLISH_SUBDIVISION_TYPES else "administrative division"
    return f"{sub.name} is {_article(noun)} of {country_ref(facts.countries[country])}."


def _element_slots(kind: str):
    def slots(facts: FactBase):
        for element in facts.elements.values():
            topic = f"element:{element.symbol}"
            if kind == "symbol":
                yield topic, str(element.number), element.symbol
            elif kind == "number":
                yield topic, str(element.number), str(element.number)
            elif kind == "weight" and element.weight is not None:
                yield topic, str(element.number), f"{element.weight:.1f}"
            elif kind == "period":
                yield topic, str(element.number), str(element_period(element.number))
    return slots


def _neighbours(facts: FactBase, number: str, spread: int) -> list[Element]:
    z = int(number)
    return [facts.elements[n] for n in range(z - spread, z + spread + 1)
            if n != z and n in facts.elements]


def _holds_weight(facts: FactBase, number: str, value: str) -> bool:
    weight = facts.elements[int(number)].weight
    return weight is not None and abs(weight - float(value)) < 0.05 + 1e-9


def _wrong_weights(facts: FactBase, number: str, value: str) -> list[str]:
    weight = facts.elements[int(number)].weight
    return sorted({f"{e.weight:.1f}" for e in _neighbours(facts, number, 3)
                   if e.weight is not None and abs(e.weight - weight) >= 0.5})


def _element_name(facts: FactBase, number: str, *, start: bool = False) -> str:
    name = facts.elements[int(number)].name
    return name[:1].upper() + name[1:] if start else name


def _state_wrong_abbr(facts: FactBase, abbr: str, value: str) -> list[str]:
    same_letter = [s.abbr for s in facts.states.values() if s.abbr[0] == abbr[0] and s.abbr != abbr]
    return sorted(same_letter) if len(same_letter) >= 2 else sorted(s.abbr for s in facts.states.values())


def _holds_quantity(facts: FactBase, key: str, value: str) -> bool:
    true = facts.quantities[key].amount
    return math.isclose(_parse_amount(value), true, rel_tol=0.005)


# Factors for wrong amounts: large enough to be plainly wrong at four significant figures,
# close enough to stay plausible.
_WRONG_FACTORS = (0.5, 0.8, 1.25, 1.5, 2.0, 3.0, 10.0, 0.1)


def _wrong_quantities(facts: FactBase, key: str, value: str) -> list[str]:
    true = facts.quantities[key].amount
    return [format_amount(true * f) for f in _WRONG_FACTORS]


def _render_quantity(facts: FactBase, key: str, value: str) -> str:
    q = facts.quantities[key]
    return f"{q.subject} {q.copula} about {value} {q.target_unit}."


def _country_render(template: str, value_fn=lambda facts, v: v):
    def render(facts: FactBase, code: str, value: str) -> str:
        country = facts.countries[code]
        return template.format(
            country=country_ref(country), Country=country_ref(country, start=True),
            value=value_fn(facts, value),
        )
    return render


RELATIONS: dict[str, Relation] = {}


def _relation(*args) -> None:
    relation = Relation(*args)
    RELATIONS[relation.name] = relation


_relation("capital", "countryinfo", _country_slots("capitals"),
          lambda facts, code, v: _fold(v) in {_fold(c) for c in facts.countries[code].capitals},
          _country_wrong("capitals"), _country_render("The capital of {country} is {value}."))
_relation("subregion", "countryinfo", _country_slots("subregion"), _equal("subregion"),
          lambda facts, code, v: sorted({c.subregion for c in facts.countries.values()
                                         if c.region == facts.countries[code].region and c.subregion}),
          _country_render("The United Nations geoscheme places {country} in the {value} region."))
_relation("currency", "countryinfo", _country_slots("currencies"), _in_set("currencies"),
          _country_wrong("currencies"),
          _country_render("The official currency of {country} is the {value}.",
                          lambda facts, v: _currency_name(v)))
_relation("calling-code", "countryinfo", _country_slots("calling_codes"), _in_set("calling_codes"),
          _country_wrong("calling_codes"),
          _country_render("The international dialling code of {country} is +{value}."))
_relation("tld", "countryinfo", _country_slots("tlds"), _in_set("tlds"), _country_wrong("tlds"),
          _country_render("The country code top-level domain of {country} is {value}."))
_relation("demonym", "countryinfo",
          lambda facts: ((t, s, v) for t, s, v in _country_slots("demonym")(facts)
                         if facts.demonym_counts[v] == 1),
          _equal("demonym"), _country_wrong("demonym"),
          _country_render("The demonym for people from {country} is {value}."))
_relation("alpha3", "pycountry", _country_slots("alpha3"), _equal("alpha3"),
          lambda facts, code, v: sorted(c.alpha3 for c in facts.countries.values()
                                        if c.alpha3[0] == v[0] and c.code != code),
          _country_render("The ISO 3166-1 alpha-3 code of {country} is {value}."))
_relation("border", "countryinfo", _border_slots, _holds_border, _border_wrong,
          lambda facts, code, other: (f"{country_ref(facts.countries[code], start=True)} shares a "
                                      f"land border with {country_ref(facts.countries[other])}."))
_relation("subdivision", "pycountry", _subdivision_slots, _holds_subdivision, _subdivision_wrong,
          _render_subdivision)
_relation("element-symbol", "periodictable", _element_slots("symbol"),
          lambda facts, n, v: facts.elements[int(n)].symbol == v,
          lambda facts, n, v: sorted(e.symbol for e in _neighbours(facts, n, 4)),
          lambda facts, n, v: f"The chemical symbol of {_element_name(facts, n)} is {v}.")
_relation("element-number", "periodictable", _element_slots("number"),
          lambda facts, n, v: int(n) == int(v),
          lambda facts, n, v: [str(e.number) for e in _neighbours(facts, n, 3)],
          lambda facts, n, v: f"{_element_name(facts, n, start=True)} has the atomic number {v}.")
_relation("element-weight", "periodictable", _element_slots("weight"), _holds_weight,
          _wrong_weights,
          lambda facts, n, v: (f"The standard atomic weight of {_element_name(facts, n)} "
                               f"is about {v}."))
_relation("element-period", "periodictable", _element_slots("period"),
          lambda facts, n, v: element_period(int(n)) == int(v),
          lambda facts, n, v: [str(p) for p in (int(v) - 1, int(v) + 1) if 1 <= p <= 7],
          lambda facts, n, v: (f"{_element_name(facts, n, start=True)} is in period {v} "
                               f"of the periodic table."))
_relation("state-capital", "us",
          lambda facts: ((f"us-state:{s.abbr}", s.abbr, s.capital) for s in facts.states.values()),
          lambda facts, abbr, v: facts.states[abbr].capital == v,
          lambda facts, abbr, v: sorted(s.capital for s in facts.states.values() if s.abbr != abbr),
          lambda facts, abbr, v: f"The capital of the US state of {facts.states[abbr].name} is {v}.")
_relation("state-abbreviation", "us",
          lambda facts: ((f"us-state:{s.abbr}", s.abbr, s.abbr) for s in facts.states.values()),
          lambda facts, abbr, v: abbr == v, _state_wrong_abbr,
          lambda facts, abbr, v: (f"The US postal abbreviation of {facts.states[abbr].name} "
                                  f"is {v}."))
_relation("state-statehood", "us",
          lambda facts: ((f"us-state:{s.abbr}", s.abbr, str(s.statehood_year))
                         for s in facts.states.values()),
          lambda facts, abbr, v: facts.states[abbr].statehood_year == int(v),
          lambda facts, abbr, v: sorted({str(s.statehood_year) for s in facts.states.values()
                                         if 0 < abs(s.statehood_year - int(v)) <= 30}),
          lambda facts, abbr, v: f"{facts.states[abbr].name} became a US state in {v}.")
_relation("quantity", "scipy",
          lambda facts: ((f"unit:{q.key}", q.key, format_amount(q.amount))
                         for q in facts.quantities.values()),
          _holds_quantity, _wrong_quantities, _render_quantity)


# ---------------------------------------------------------------------------------------
# Claims


@dataclass(frozen=True)
class BaseClaim:
    base_id: str
    text: str
    true_label: str
    topic: str
    source: str
    split: str
    relation: str
    subject: str
    value: str  # the value the claim asserts (the recorded one if true, the swapped one if false)
    true_value: str = field(default="")


@dataclass(frozen=True)
class _Slot:
    relation: str
    topic: str
    subject: str
    true_value: str

    @property
    def base_id(self) -> str:
        subject = re.sub(r"[^A-Za-z0-9]+", "-", self.subject).strip("-")
        suffix = f"-{self.true_value}" if self.relation == "border" else ""
        return f"{CLAIM_ID_PREFIX}-{self.relation}-{subject}{suffix}"


def enumerate_slots(facts: FactBase) -> list[_Slot]:
    """Every fact that can become a claim, in a fixed order."""
    slots = []
    for name, relation in RELATIONS.items():
        for topic, subject, value in relation.slots(facts):
            slots.append(_Slot(name, topic, subject, value))
    return slots


def _rng(seed: int, *parts: str) -> random.Random:
    digest = hashlib.blake2b(":".join((str(seed), *parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _wrong_value(facts: FactBase, slot: _Slot, rng: random.Random, taken: set) -> str | None:
    """A plausible wrong value for the slot that makes its assertion false and repeats no
    assertion already made (several border facts of one country share a subject)."""
    relation = RELATIONS[slot.relation]
    candidates = [v for v in relation.wrong_values(facts, slot.subject, slot.true_value)
                  if v != slot.true_value and (slot.relation, slot.subject, v) not in taken
                  and not relation.holds(facts, slot.subject, v)]
    if not candidates:
        return None
    value = rng.choice(candidates)
    taken.add((slot.relation, slot.subject, value))
    return value


def assign_splits(topic_sizes: dict[str, int], seed: int) -> dict[str, str]:
    """Topic -> split, 80/10/10 by base claims, whole topics only.

    Topics are taken largest first (ties in a seeded order) and each goes to the split
    furthest below its share, so the shares come out close even with a few big topics.
    """
    rng = _rng(seed, "splits")
    topics = sorted(topic_sizes)
    rng.shuffle(topics)
    topics.sort(key=lambda t: -topic_sizes[t])
    total = sum(topic_sizes.values())
    filled = dict.fromkeys(SPLITS, 0)
    assignment = {}
    for topic in topics:
        split = max(SPLITS, key=lambda s: (SPLIT_SHARES[s] * total - filled[s], -SPLITS.index(s)))
        assignment[topic] = split
        filled[split] += topic_sizes[topic]
    return assignment


def generate_base_claims(
    facts: FactBase,
    *,
    seed: int = 0,
    base_claims: int | None = None,
    progress: Callable[[int], object] | None = None,
) -> list[BaseClaim]:
    """The corpus of base claims: balanced true/false, topics kept within one split.

    With `base_claims`, a balanced subset of that size drawn with the seed (whole topics are
    not guaranteed then; the split of each topic is unchanged). The order of the result
    is by split, then base id.
    """
    slots = enumerate_slots(facts)
    by_topic: dict[str, list[_Slot]] = defaultdict(list)
    for slot in slots:
        by_topic[slot.topic].append(slot)
    split_of_topic = assign_splits({t: len(s) for t, s in by_topic.items()}, seed)

    # Within each split, odd-sized topics alternate which label gets the extra claim, so a
    # split's imbalance is at most one claim (plus facts with no possible wrong value).
    extra_label: dict[str, str] = {}
    for split in SPLITS:
        odd = sorted(t for t, s in by_topic.items() if split_of_topic[t] == split and len(s) % 2)
        _rng(seed, "odd", split).shuffle(odd)
        for i, topic in enumerate(odd):
            extra_label[topic] = TRUTH_LABELS[i % 2]

    claims: list[BaseClaim] = []
    for topic in sorted(by_topic):
        rng = _rng(seed, "topic", topic)
        members = sorted(by_topic[topic], key=lambda s: s.base_id)
        rng.shuffle(members)
        taken: set[tuple[str, str, str]] = set()  # assertions are per topic: a subject's topic
        wrong = {s.base_id: _wrong_value(facts, s, rng, taken) for s in members}
        n_false = len(members) // 2 + (1 if extra_label.get(topic) == REFUTES else 0)
        # Facts that have a wrong value come first in line to be stated falsely.
        can_be_false = [s for s in members if wrong[s.base_id] is not None]
        false_ids = {s.base_id for s in can_be_false[:n_false]}
        for slot in members:
            relation = RELATIONS[slot.relation]
            is_false = slot.base_id in false_ids
            value = wrong[slot.base_id] if is_false else slot.true_value
            source = SOURCES[relation.source]
            claims.append(BaseClaim(
                base_id=slot.base_id,
                text=relation.render(facts, slot.subject, value),
                true_label=REFUTES if is_false else SUPPORTS,
                topic=topic,
                source=f"{source.package} {source.version} ({source.licence}): {slot.relation}",
                split=split_of_topic[topic],
                relation=slot.relation,
                subject=slot.subject,
                value=value,
                true_value=slot.true_value,
            ))
        if progress is not None:
            progress(len(members))

    if base_claims is not None:
        claims = _balanced_subset(claims, base_claims, seed)
    claims.sort(key=lambda c: (SPLITS.index(c.split), c.base_id))
    return claims


def _balanced_subset(claims: list[BaseClaim], size: int, seed: int) -> list[BaseClaim]:
    if size < 2:
        raise ValueError(f"at least 2 base claims are needed, {size} were asked for")
    if size > len(claims):
        raise ValueError(f"the facts give {len(claims):,} base claims, {size:,} were asked for")
    rng = _rng(seed, "subset")
    chosen = []
    for split in SPLITS:
        want = round(size * SPLIT_SHARES[split]) if split != "test" else size - len(chosen)
        for i, label in enumerate(TRUTH_LABELS):
            pool = sorted((c for c in claims if c.split == split and c.true_label == label),
                          key=lambda c: c.base_id)
            rng.shuffle(pool)
            take = want // 2 + (want % 2 if i == 0 else 0)
            chosen.extend(pool[:take])
    return chosen


def summarize(claims: Iterable[BaseClaim]) -> dict[str, Counter]:
    """Counts by split x truth, by relation and by source, for reports and the dataset card."""
    by_split, by_relation = Counter(), Counter()
    for claim in claims:
        by_split[(claim.split, claim.true_label)] += 1
        by_relation[claim.relation] += 1
    return {"split_truth": by_split, "relation": by_relation}
