"""The options of a study analysis: what to exclude and how to estimate, parsed from a query
string, a command line or code, with errors that name the parameter and the value.

Pure: no Django. `annotation.analysis.statistics.analyze` takes an `AnalysisOptions`.
"""
from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from annotation.analysis.exclusions import (
    DEFAULT_MIN_MEDIAN_RESPONSE_MS,
    EXCLUDED_STATUSES,
    FALSE_WORDS,
    RULES,
    TRUE_WORDS,
    ExclusionPolicy,
)

REFERENCE_FRAMING = "original"
ALL = "all"
# The named exclusion rules and their defaults live in one place, `exclusions.py`, shared by
# the analysis, the human profile, calibration and the simulation's human agents.
EXCLUSION_RULES = RULES
__all__ = ["EXCLUDED_STATUSES", "EXCLUSION_RULES", "FALSE_WORDS", "TRUE_WORDS", "AnalysisOptions",
           "OptionError", "ExclusionPolicy"]

# How the per-framing rates, means and differences from the original get their intervals
# (docs/analysis.md, "Intervals and tests"). The first is the default.
INTERVAL_METHODS = {
    "two-way": "two-way cluster-robust t (clustered by participant and by base claim)",
    "participant-bootstrap": "percentile cluster-bootstrap (over participants only)",
    "two-way-bootstrap": "percentile pigeonhole-bootstrap (over participants and base claims)",
}
DEFAULT_INTERVAL = "two-way"



# --- Options -----------------------------------------------------------------------------

class OptionError(ValueError):
    """A bad analysis option: the message names the parameter, the value and what is accepted."""

    def __init__(self, parameter: str, value, reason: str) -> None:
        super().__init__(f"parameter '{parameter}': value '{value}': {reason}")
        self.parameter, self.value, self.reason = parameter, value, reason


@dataclass(frozen=True)
class AnalysisOptions:
    """What to exclude and how to estimate; every field has the default a paper would use.

    `interval`: how rates, means and differences from the original get their intervals, one
    of `INTERVAL_METHODS`; the default accounts for clustering by participant and by base
    claim. `bootstrap_resamples` applies to the two bootstrap methods only.
    `permutations`: permutations of framing labels within base claims for the primary test
    of each framing's effect on false acceptance (0: no test).

    `exclusions` and `min_median_response_ms` are the exclusion policy (`policy`, an
    `exclusions.ExclusionPolicy`; every rule on by default): the "implausibly fast" rule
    flags a participant whose median time per item is below `min_median_response_ms`.
    """

    exclusions: frozenset[str] = frozenset(EXCLUSION_RULES)
    min_median_response_ms: float = DEFAULT_MIN_MEDIAN_RESPONSE_MS
    familiarity_levels: tuple[int, ...] = (4, 5)
    bootstrap_resamples: int = 2000
    confidence_level: float = 0.95
    seed: int = 0
    mixed_model: bool = True
    interval: str = DEFAULT_INTERVAL
    permutations: int = 2000

    # Query-string names (first) and the aliases `from_params` also accepts.
    PARAMETERS = {
        "exclusions": ("exclusions", "exclude"),
        "min_median_response_ms": ("min_median_response_ms",),
        "familiarity_levels": ("familiarity", "familiarity_levels"),
        "bootstrap_resamples": ("bootstrap", "bootstrap_resamples"),
        "confidence_level": ("confidence_level",),
        "seed": ("seed",),
        "mixed_model": ("mixed_model",),
        "interval": ("interval",),
        "permutations": ("permutations",),
    }

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclusions", frozenset(self.exclusions))
        object.__setattr__(self, "familiarity_levels", tuple(sorted(set(self.familiarity_levels))))
        unknown = sorted(self.exclusions - set(EXCLUSION_RULES))
        if unknown:
            raise OptionError("exclusions", ",".join(unknown), f"unknown rule; accepted: "
                              f"{', '.join(EXCLUSION_RULES)}, all or none")
        if not self.familiarity_levels or not all(
                isinstance(level, numbers.Integral) and 1 <= level <= 5 for level in self.familiarity_levels):
            raise OptionError("familiarity", self.familiarity_levels,
                              "give one or more integer levels from 1 to 5")
        if not (isinstance(self.bootstrap_resamples, numbers.Integral)
                and 0 <= self.bootstrap_resamples <= 100_000):
            raise OptionError("bootstrap", self.bootstrap_resamples, "an integer from 0 (no intervals) to 100000")
        if self.interval not in INTERVAL_METHODS:
            raise OptionError("interval", self.interval, f"accepted: {', '.join(INTERVAL_METHODS)}")
        if not (isinstance(self.permutations, numbers.Integral) and 0 <= self.permutations <= 100_000):
            raise OptionError("permutations", self.permutations,
                              "an integer from 0 (no permutation test) to 100000")
        if not 0.5 <= self.confidence_level < 1:
            raise OptionError("confidence_level", self.confidence_level, "a number from 0.5 to below 1, e.g. 0.95")
        if not (isinstance(self.seed, numbers.Integral) and 0 <= self.seed < 2**63):
            raise OptionError("seed", self.seed, "a non-negative integer")
        if not (math.isfinite(self.min_median_response_ms) and self.min_median_response_ms >= 0):
            raise OptionError("min_median_response_ms", self.min_median_response_ms,
                              "a non-negative number of milliseconds")

    @property
    def policy(self) -> ExclusionPolicy:
        """The exclusion policy these options stand for (the one the human profile applies too)."""
        return ExclusionPolicy(rules=self.exclusions, min_median_response_ms=self.min_median_response_ms)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "AnalysisOptions":
        """Options from query-string-like values; absent parameters keep their defaults.

        Accepts a plain mapping of strings (or lists of strings, or already typed values)
        and Django's QueryDict (repeated keys, as checkboxes send them). `exclusions` is a
        comma-separated list or repeated key of rule names; `none` (or an empty value
        alone) switches every rule off, `all` switches every rule on. An empty value of a
        number parameter (a number field left blank) keeps its default; an empty `interval` (a
        choice, never blank in the form) is an error. Unknown keys
        are ignored, so a page's other parameters can share the query string. A bad value
        raises `ValueError` naming the parameter and the value.
        """
        values: dict[str, Any] = {}
        for name, keys in cls.PARAMETERS.items():
            key = next((k for k in keys if k in params), None)
            if key is None:
                continue
            if hasattr(params, "getlist"):
                raw = params.getlist(key)
            else:
                raw = params[key]
            parts = _split_parameter(raw)
            if not parts and name not in ("exclusions", "familiarity_levels", "interval"):
                continue  # a number field left empty in a form: keep the default
            shown = ",".join(parts)
            try:
                values[name] = _PARSERS[name](parts)
                cls(**{name: values[name]})  # the range checks, reported with the value as given
            except OptionError as exc:
                raise OptionError(key, shown, exc.reason) from None
            except (TypeError, ValueError) as exc:
                raise OptionError(key, shown, str(exc)) from None
        return cls(**values)

    def to_params(self) -> dict[str, str]:
        """The query-string form `from_params` reads back to the same options."""
        return {
            "exclusions": ",".join(rule for rule in EXCLUSION_RULES if rule in self.exclusions) or "none",
            "min_median_response_ms": f"{self.min_median_response_ms:g}",
            "familiarity": ",".join(str(level) for level in self.familiarity_levels),
            "bootstrap": str(self.bootstrap_resamples),
            "confidence_level": f"{self.confidence_level:g}",
            "seed": str(self.seed),
            "mixed_model": "1" if self.mixed_model else "0",
            "interval": self.interval,
            "permutations": str(self.permutations),
        }

    def to_dict(self) -> dict:
        data = asdict(self)
        data["exclusions"] = [rule for rule in EXCLUSION_RULES if rule in self.exclusions]
        data["familiarity_levels"] = list(self.familiarity_levels)
        return data


def _split_parameter(raw) -> list[str]:
    if isinstance(raw, (list, tuple)):
        items = raw
    else:
        items = [raw]
    parts: list[str] = []
    for item in items:
        if isinstance(item, (bool, numbers.Real)):
            parts.append(str(item))
            continue
        if isinstance(item, (set, frozenset)):
            parts.extend(str(x) for x in item)
            continue
        parts.extend(piece.strip() for piece in str(item).split(","))
    return [part for part in parts if part != ""]


def _parse_exclusions(parts: list[str]) -> frozenset[str]:
    lowered = [part.lower() for part in parts]
    if not lowered or lowered == ["none"]:
        return frozenset()
    if lowered == ["all"]:
        return frozenset(EXCLUSION_RULES)
    unknown = [part for part in lowered if part not in EXCLUSION_RULES]
    if unknown:
        raise ValueError(f"unknown rule '{unknown[0]}'; accepted: {', '.join(EXCLUSION_RULES)}, all or none")
    return frozenset(lowered)


def _single(parts: list[str]) -> str:
    if len(parts) != 1:
        raise ValueError("give exactly one value")
    return parts[0]


def _parse_int(parts: list[str]) -> int:
    text = _single(parts)
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError("not an integer")
    return int(text)


def _parse_float(parts: list[str]) -> float:
    value = float(_single(parts))
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _parse_levels(parts: list[str]) -> tuple[int, ...]:
    if not parts:
        raise ValueError("give one or more familiarity levels from 1 to 5, e.g. 4,5")
    levels = []
    for part in parts:
        if not re.fullmatch(r"\d+", part) or not 1 <= int(part) <= 5:
            raise ValueError(f"'{part}' is not a familiarity level; accepted: integers 1 to 5")
        levels.append(int(part))
    return tuple(levels)


def _parse_bool(parts: list[str]) -> bool:
    text = _single(parts).lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError("accepted: 1/0, true/false, yes/no, on/off")


_PARSERS = {
    "exclusions": _parse_exclusions,
    "min_median_response_ms": _parse_float,
    "familiarity_levels": _parse_levels,
    "bootstrap_resamples": _parse_int,
    "confidence_level": _parse_float,
    "seed": _parse_int,
    "mixed_model": _parse_bool,
    "interval": lambda parts: _single(parts).lower(),
    "permutations": _parse_int,
}
