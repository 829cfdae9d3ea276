"""What a study's human raters did, summarised so that models and simulations can match it.

A `HumanProfile` condenses the tidy judgment table of method.md section 2.4 (one row per
rater and item) into the quantities that calibration (modeling/calibration.py) and the
human-calibrated simulation agent need:

- per (framing, truth): how many judgments and how many acceptances ("Yes, accurate");
  the false acceptance rate of a framing is the acceptance rate on its REFUTES claims and
  the false rejection rate is one minus the acceptance rate on its SUPPORTS claims;
- the same per familiarity level 1..5, for analyses among raters who know a topic;
- the counts of confidence levels 1..5, split by whether the rater accepted or rejected,
  and the same split by familiarity level too (`confidence_by_familiarity`);
- per base claim (the id before the last ':' of the framed claim id): the counts of the
  familiarity levels 1..5 its raters reported, in any framing (`base_familiarity`): how
  well known the claim's topic is, which the familiarity-aware simulation agent reads;
- per item (framed claim id): the acceptance rate and the number of raters.

The builder `human_profile(table)` is pure (pandas only) and tested on hand-made tables;
`study_human_profile(study=...)` is the Django entry point that reads a study's judgments
and leaves out the raters and judgments the analysis leaves out, by the same policy
(`annotation.analysis.exclusions`: persona, status, attention, fast, design-violations);
the profile's `exclusions` says which rules were applied and what each removed.

Confidence is asked on a 1..5 scale; models express it as the probability of their chosen
label, which lies in [0.5, 1] for a two-way choice. `confidence_probability` maps level k
linearly onto that range, 1 -> 0.5 ("a guess") ... 5 -> 1.0 ("certain"), in steps of 0.125,
and `confidence_level` is its inverse for probabilities (the nearest level). The same rule
is used wherever human and model confidence are compared.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from annotation.analysis.exclusions import ExclusionPolicy, apply_exclusions
from core.vocabulary import FRAMINGS, TRUTH_LABELS

SUPPORTS, REFUTES = TRUTH_LABELS
CONFIDENCE_LEVELS = (1, 2, 3, 4, 5)
REQUIRED_COLUMNS = (
    "Annotator_ID", "full_claim_id", "framing_type", "true_label",
    "accurate_response", "confidence_response", "familiarity_response",
)
PROFILE_FORMAT = 1


class HumanProfileError(ValueError):
    """The judgment table cannot be summarised: the message names the row, field and value."""


def confidence_probability(level: int | float | np.ndarray) -> float | np.ndarray:
    """The probability of the chosen label that a confidence level 1..5 stands for.

    `0.5 + 0.125 * (level - 1)`: level 1 ("not at all confident") is a coin toss, 0.5;
    level 5 ("very confident") is certainty, 1.0; the levels between are evenly spaced.
    """
    arr = np.asarray(level, dtype=float)
    if np.any((arr < 1) | (arr > 5)) or np.any(np.isnan(arr)):
        raise ValueError(f"confidence level must lie in 1..5, got {level!r}")
    result = 0.5 + 0.125 * (arr - 1.0)
    return float(result) if result.ndim == 0 else result


def confidence_level(probability: float | np.ndarray) -> int | np.ndarray:
    """The 1..5 level nearest to a chosen-label probability in [0.5, 1] (inverse of the above).

    Probabilities below 0.5 (possible when the caller passes the probability of a label it
    did not choose) are clipped to level 1.
    """
    arr = np.asarray(probability, dtype=float)
    levels = np.clip(np.rint((arr - 0.5) / 0.125) + 1, 1, 5).astype(int)
    return int(levels) if levels.ndim == 0 else levels


@dataclass(frozen=True)
class Rate:
    """Acceptances out of judgments; `rate` is NaN when there are none."""

    n: int
    accepted: int

    @property
    def rate(self) -> float:
        return self.accepted / self.n if self.n else math.nan

    def wilson_interval(self, z: float = 1.959963984540054) -> tuple[float, float]:
        """95% Wilson score interval of the rate (sound for small n and rates near 0 or 1)."""
        if not self.n:
            return (math.nan, math.nan)
        p, n = self.rate, self.n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class HumanProfile:
    """Human acceptance and confidence per framing and truth, per familiarity and per item.

    cells:       (framing, truth) -> Rate
    familiarity: (framing, truth, level 1..5) -> Rate
    confidence:  (framing, truth, "accepted" | "rejected") -> int64[5] counts of levels 1..5
    items:       full claim id -> ItemRate (framing, truth, n, accepted)
    confidence_by_familiarity: (framing, truth, decision, familiarity level) -> int64[5]
    base_familiarity: base claim id -> int64[5] counts of the familiarity levels reported
    """

    cells: dict[tuple[str, str], Rate]
    familiarity: dict[tuple[str, str, int], Rate]
    confidence: dict[tuple[str, str, str], np.ndarray]
    items: dict[str, "ItemRate"]
    n_raters: int
    n_judgments: int
    source: dict[str, Any] = field(default_factory=dict)
    confidence_by_familiarity: dict[tuple[str, str, str, int], np.ndarray] = field(default_factory=dict)
    base_familiarity: dict[str, np.ndarray] = field(default_factory=dict)

    # --- reading --------------------------------------------------------------------------

    @property
    def exclusions(self) -> dict[str, Any] | None:
        """Which exclusion rules made this profile and what each removed (None if unknown:
        a profile built from a table the caller had already filtered)."""
        return self.source.get("exclusions")

    @property
    def framings(self) -> list[str]:
        """The framings present, in the canonical order."""
        present = {framing for framing, _ in self.cells}
        return [f for f in FRAMINGS if f in present]

    def rate(self, framing: str, truth: str, familiarity: int | None = None) -> Rate:
        """The acceptance count of a cell; an empty Rate when nobody judged it."""
        _check_truth(truth)
        if familiarity is None:
            return self.cells.get((framing, truth), Rate(0, 0))
        return self.familiarity.get((framing, truth, int(familiarity)), Rate(0, 0))

    def acceptance_rate(self, framing: str, truth: str, familiarity: int | None = None) -> float:
        """P(rater says "accurate" | framing, truth[, familiarity]); NaN without data."""
        return self.rate(framing, truth, familiarity).rate

    def false_acceptance_rate(self, framing: str) -> float:
        """P(Yes | false claim) in this framing."""
        return self.acceptance_rate(framing, REFUTES)

    def false_rejection_rate(self, framing: str) -> float:
        """P(No | true claim) in this framing."""
        return 1.0 - self.acceptance_rate(framing, SUPPORTS)

    def confidence_counts(self, framing: str | None = None, truth: str | None = None,
                          accepted: bool | None = None) -> np.ndarray:
        """Counts of confidence levels 1..5 (int64[5]), pooled over what is left as None."""
        total = np.zeros(5, dtype=np.int64)
        for (f, t, decision), counts in self.confidence.items():
            if framing is not None and f != framing:
                continue
            if truth is not None and t != truth:
                continue
            if accepted is not None and decision != ("accepted" if accepted else "rejected"):
                continue
            total += counts
        return total

    def confidence_distribution(self, framing: str | None = None, truth: str | None = None,
                                accepted: bool | None = None) -> np.ndarray:
        """Proportions of levels 1..5 (float64[5]); pooled over all judgments if the cell is empty.

        The fallback keeps a simulation running on a framing nobody happened to judge
        with a given decision; callers that must know can read `confidence_counts`.
        """
        counts = self.confidence_counts(framing, truth, accepted)
        if counts.sum() == 0:
            counts = self.confidence_counts()
        if counts.sum() == 0:
            return np.full(5, 0.2)
        return counts / counts.sum()

    def mean_confidence_probability(self, framing: str | None = None, truth: str | None = None,
                                    accepted: bool | None = None) -> float:
        """Mean of the humans' confidence mapped to a probability (see confidence_probability)."""
        counts = self.confidence_counts(framing, truth, accepted)
        if counts.sum() == 0:
            return math.nan
        return float(counts @ confidence_probability(np.arange(1, 6)) / counts.sum())

    def item_acceptance(self) -> pd.DataFrame:
        """One row per item: claim_id, framing, true_label, n, accepted, acceptance_rate."""
        rows = [
            {"claim_id": claim_id, "framing": item.framing, "true_label": item.truth,
             "n": item.n, "accepted": item.accepted, "acceptance_rate": item.rate}
            for claim_id, item in self.items.items()
        ]
        columns = ["claim_id", "framing", "true_label", "n", "accepted", "acceptance_rate"]
        return pd.DataFrame(rows, columns=columns)

    def table(self) -> pd.DataFrame:
        """Per framing: n, acceptance on true and false claims, FAR and FRR with 95% intervals."""
        rows = []
        for framing in self.framings:
            false_cell = self.rate(framing, REFUTES)
            true_cell = self.rate(framing, SUPPORTS)
            far_low, far_high = false_cell.wilson_interval()
            acc_low, acc_high = true_cell.wilson_interval()
            rows.append({
                "framing": framing,
                "n_false": false_cell.n,
                "n_true": true_cell.n,
                "false_acceptance_rate": false_cell.rate,
                "false_acceptance_low": far_low,
                "false_acceptance_high": far_high,
                "false_rejection_rate": 1.0 - true_cell.rate if true_cell.n else math.nan,
                "false_rejection_low": 1.0 - acc_high if true_cell.n else math.nan,
                "false_rejection_high": 1.0 - acc_low if true_cell.n else math.nan,
                "mean_confidence_probability": self.mean_confidence_probability(framing),
            })
        return pd.DataFrame(rows)

    # --- storage --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form (lists and strings only) for a JSONField or a file."""
        return {
            "format": PROFILE_FORMAT,
            "n_raters": self.n_raters,
            "n_judgments": self.n_judgments,
            "source": dict(self.source),
            "cells": [[f, t, r.n, r.accepted] for (f, t), r in sorted(self.cells.items())],
            "familiarity": [[f, t, level, r.n, r.accepted]
                            for (f, t, level), r in sorted(self.familiarity.items())],
            "confidence": [[f, t, decision, [int(c) for c in counts]]
                           for (f, t, decision), counts in sorted(self.confidence.items())],
            "items": [[claim_id, i.framing, i.truth, i.n, i.accepted]
                      for claim_id, i in sorted(self.items.items())],
            "confidence_by_familiarity": [
                [f, t, decision, level, [int(c) for c in counts]]
                for (f, t, decision, level), counts in sorted(self.confidence_by_familiarity.items())],
            "base_familiarity": [[base, [int(c) for c in counts]]
                                 for base, counts in sorted(self.base_familiarity.items())],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HumanProfile":
        if data.get("format") != PROFILE_FORMAT:
            raise HumanProfileError(
                f"human profile: field 'format': value {data.get('format')!r}: "
                f"accepted: {PROFILE_FORMAT}")
        return cls(
            cells={(f, t): Rate(int(n), int(a)) for f, t, n, a in data["cells"]},
            familiarity={(f, t, int(level)): Rate(int(n), int(a))
                         for f, t, level, n, a in data["familiarity"]},
            confidence={(f, t, d): np.asarray(c, dtype=np.int64) for f, t, d, c in data["confidence"]},
            items={claim_id: ItemRate(f, t, int(n), int(a))
                   for claim_id, f, t, n, a in data["items"]},
            n_raters=int(data["n_raters"]),
            n_judgments=int(data["n_judgments"]),
            source=dict(data.get("source", {})),
            # Absent from profiles stored before they were kept: the familiarity-aware agent
            # then falls back to the framing's familiarity distribution.
            confidence_by_familiarity={(f, t, d, int(level)): np.asarray(c, dtype=np.int64)
                                       for f, t, d, level, c in data.get("confidence_by_familiarity", [])},
            base_familiarity={str(base): np.asarray(c, dtype=np.int64)
                              for base, c in data.get("base_familiarity", [])},
        )


@dataclass(frozen=True)
class ItemRate:
    framing: str
    truth: str
    n: int
    accepted: int

    @property
    def rate(self) -> float:
        return self.accepted / self.n if self.n else math.nan


def _check_truth(truth: str) -> None:
    if truth not in TRUTH_LABELS:
        raise ValueError(f"truth must be one of {TRUTH_LABELS}, got {truth!r}")


def _check_table(table: pd.DataFrame) -> pd.DataFrame:
    """Validate the tidy table; the first bad value stops with its row, field and value."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise HumanProfileError(
            f"judgment table: missing column(s) {', '.join(missing)}; "
            f"required: {', '.join(REQUIRED_COLUMNS)}")
    allowed = {
        "framing_type": set(FRAMINGS),
        "true_label": set(TRUTH_LABELS),
        "accurate_response": set(TRUTH_LABELS),
    }
    for column, values in allowed.items():
        bad = ~table[column].isin(values)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise HumanProfileError(
                f"judgment table row {row + 1}: field '{column}': value "
                f"{table[column].iloc[row]!r}; accepted: {', '.join(sorted(values))}")
    out = table.copy()
    for column in ("confidence_response", "familiarity_response"):
        numeric = pd.to_numeric(out[column], errors="coerce")
        bad = numeric.isna() | ~numeric.isin(CONFIDENCE_LEVELS)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise HumanProfileError(
                f"judgment table row {row + 1}: field '{column}': value "
                f"{table[column].iloc[row]!r}; accepted: an integer 1 to 5")
        out[column] = numeric.astype(int)
    return out


def human_profile(table: pd.DataFrame, *, source: Mapping[str, Any] | None = None) -> HumanProfile:
    """Summarise a tidy judgment table (method.md section 2.4) into a HumanProfile.

    table: one row per (rater, item) with REQUIRED_COLUMNS; rows the caller wants left
    out (returned or excluded participants) must already be removed.
    """
    table = _check_table(table)
    accepted = (table["accurate_response"] == SUPPORTS).to_numpy()
    frame = pd.DataFrame({
        "framing": table["framing_type"].astype(str).to_numpy(),
        "truth": table["true_label"].astype(str).to_numpy(),
        "claim_id": table["full_claim_id"].astype(str).to_numpy(),
        "accepted": accepted.astype(int),
        "confidence": table["confidence_response"].to_numpy(),
        "familiarity": table["familiarity_response"].to_numpy(),
    })

    def rates(keys: list[str]) -> dict:
        grouped = frame.groupby(keys, sort=True)["accepted"].agg(["size", "sum"])
        return {(key if isinstance(key, tuple) else (key,)): Rate(int(n), int(a))
                for key, (n, a) in zip(grouped.index, grouped.to_numpy())}

    cells = rates(["framing", "truth"])
    familiarity = {(f, t, int(level)): r
                   for (f, t, level), r in rates(["framing", "truth", "familiarity"]).items()}

    confidence: dict[tuple[str, str, str], np.ndarray] = {}
    decision = np.where(accepted, "accepted", "rejected")
    frame["decision"] = decision
    counted = frame.groupby(["framing", "truth", "decision", "confidence"]).size()
    for (f, t, d, level), n in counted.items():
        counts = confidence.setdefault((f, t, d), np.zeros(5, dtype=np.int64))
        counts[int(level) - 1] += int(n)
    confidence_by_familiarity: dict[tuple[str, str, str, int], np.ndarray] = {}
    counted = frame.groupby(["framing", "truth", "decision", "familiarity", "confidence"]).size()
    for (f, t, d, fam, level), n in counted.items():
        counts = confidence_by_familiarity.setdefault((f, t, d, int(fam)), np.zeros(5, dtype=np.int64))
        counts[int(level) - 1] += int(n)
    base_familiarity: dict[str, np.ndarray] = {}
    frame["base"] = [base_claim_id(c) for c in frame["claim_id"]]
    for (base, fam), n in frame.groupby(["base", "familiarity"]).size().items():
        counts = base_familiarity.setdefault(str(base), np.zeros(5, dtype=np.int64))
        counts[int(fam) - 1] += int(n)

    items: dict[str, ItemRate] = {}
    per_item = frame.groupby("claim_id", sort=True).agg(
        framing=("framing", "first"), truth=("truth", "first"),
        framings=("framing", "nunique"), truths=("truth", "nunique"),
        n=("accepted", "size"), accepted=("accepted", "sum"))
    inconsistent = per_item[(per_item["framings"] > 1) | (per_item["truths"] > 1)]
    if len(inconsistent):
        claim_id = inconsistent.index[0]
        raise HumanProfileError(
            f"judgment table: field 'full_claim_id': value {claim_id!r} appears with more than "
            f"one framing or truth label; each item must have one of each")
    for claim_id, row in per_item.iterrows():
        items[str(claim_id)] = ItemRate(row["framing"], row["truth"], int(row["n"]),
                                        int(row["accepted"]))

    return HumanProfile(
        cells={(f, t): r for (f, t), r in cells.items()},
        familiarity=familiarity,
        confidence=confidence,
        items=items,
        n_raters=int(table["Annotator_ID"].nunique()),
        n_judgments=int(len(table)),
        source=dict(source or {}),
        confidence_by_familiarity=confidence_by_familiarity,
        base_familiarity=base_familiarity,
    )


def base_claim_id(full_claim_id: str) -> str:
    """The base claim of a framed claim id `<base id>:<framing>` (the id itself without ':')."""
    base, sep, _ = str(full_claim_id).rpartition(":")
    return base if sep else str(full_claim_id)


# --- Django entry point ---------------------------------------------------------------------

def human_profile_with_exclusions(table: pd.DataFrame, policy: ExclusionPolicy | None = None, *,
                                  source: Mapping[str, Any] | None = None) -> HumanProfile:
    """The profile of a tidy table's judgments that count under `policy` (all rules by default).

    The same `exclusions.apply_exclusions` the analysis uses decides which raters and
    judgments count (personas never do: `ExclusionPolicy.for_humans`); the profile's
    `exclusions` (in `source`) records the policy and what each rule removed.
    """
    policy = (policy or ExclusionPolicy()).for_humans()
    outcome = apply_exclusions(table, policy)
    return human_profile(outcome.kept, source={**dict(source or {}), "exclusions": outcome.record()})


def study_judgment_table(*, study) -> pd.DataFrame:
    """The study's tidy judgment table (`judgment_table`, the exports' own) with attention
    checks, which the exclusion rules read; nothing left out yet."""
    from annotation.dataio.judgment_table import judgment_table

    return judgment_table(study=study, include_attention_checks=True)


def study_human_profile(*, study, policy: ExclusionPolicy | None = None,
                        apply_exclusions: bool = True) -> HumanProfile:
    """The HumanProfile of a study's human raters under the analysis's exclusion policy.

    `policy`: the rules to apply (default: `ExclusionPolicy()`, every rule, as the report
    applies them); `apply_exclusions=False` applies none but `persona`. The profile's
    `exclusions` says which rules were applied and what each removed.
    """
    if not apply_exclusions:
        policy = ExclusionPolicy(rules=())
    return human_profile_with_exclusions(study_judgment_table(study=study), policy, source={
        "study_id": study.pk, "study": study.name, "apply_exclusions": apply_exclusions,
    })


def profiles_pooled(profiles: Iterable[HumanProfile]) -> HumanProfile:
    """Several studies' profiles as one (counts added; items of the same id merged)."""
    profiles = list(profiles)
    cells: dict = {}
    familiarity: dict = {}
    confidence: dict = {}
    items: dict = {}
    by_familiarity: dict = {}
    bases: dict = {}
    for p in profiles:
        for key, counts in p.confidence_by_familiarity.items():
            by_familiarity[key] = by_familiarity.get(key, np.zeros(5, dtype=np.int64)) + counts
        for key, counts in p.base_familiarity.items():
            bases[key] = bases.get(key, np.zeros(5, dtype=np.int64)) + counts
        for key, r in p.cells.items():
            old = cells.get(key, Rate(0, 0))
            cells[key] = Rate(old.n + r.n, old.accepted + r.accepted)
        for key, r in p.familiarity.items():
            old = familiarity.get(key, Rate(0, 0))
            familiarity[key] = Rate(old.n + r.n, old.accepted + r.accepted)
        for key, counts in p.confidence.items():
            confidence[key] = confidence.get(key, np.zeros(5, dtype=np.int64)) + counts
        for key, i in p.items.items():
            old = items.get(key, ItemRate(i.framing, i.truth, 0, 0))
            items[key] = ItemRate(i.framing, i.truth, old.n + i.n, old.accepted + i.accepted)
    return HumanProfile(cells=cells, familiarity=familiarity, confidence=confidence, items=items,
                        n_raters=sum(p.n_raters for p in profiles),
                        n_judgments=sum(p.n_judgments for p in profiles),
                        source={"pooled": [p.source for p in profiles]},
                        confidence_by_familiarity=by_familiarity, base_familiarity=bases)
