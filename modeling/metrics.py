"""Persona metrics per framing (method.md section 3.4) computed from a score table.

A score table (see modeling/scoring.py and score_services.py) has one row per framed claim
with at least `framing`, `true_label`, `p_supports`, `p_refutes`, `predicted_label` and
`confidence`; `p_supports_norm` is derived when missing. Per framing this module reports:

- accuracy, and balanced accuracy: the mean of the recall on true (SUPPORTS) and on false
  (REFUTES) claims, so a persona that says SUPPORTS to everything scores 0.5 whatever the
  mix of true and false claims;
- MSPR, the mean probability of SUPPORTS on REFUTES claims. `mspr` uses the raw conditional
  probability of the SUPPORTS token sequence after the prompt, as FrameRef does;
  `mspr_normalised` uses p(S) / (p(S) + p(R)), which is what a two-way choice implies and
  is comparable across base models whose probability mass leaks to other words. For a
  fine-tuned persona the two are close; for an untrained base model they are not;
- false acceptance and false rejection rates of the predicted labels;
- mean confidence (the raw probability of the predicted label) and its normalised form.

`compare_personas` stacks these tables for several personas, with each framing's effect
(framing minus original) beside it; `paired_differences` gives how one persona differs from
another claim for claim, per framing, with a paired bootstrap. The plots use matplotlib's object API only.

Pure pandas/numpy (matplotlib imported lazily for plots); no Django.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd

from core.vocabulary import FRAMINGS

SUPPORTS, REFUTES = "SUPPORTS", "REFUTES"
ALL = "all"
METRIC_COLUMNS = (
    "n", "n_true", "n_false", "accuracy", "balanced_accuracy", "mspr", "mspr_normalised",
    "false_acceptance_rate", "false_rejection_rate", "mean_confidence",
    "mean_confidence_normalised",
)
METRIC_LABELS = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "mspr": "MSPR (raw p(SUPPORTS) on false claims)",
    "mspr_normalised": "MSPR, normalised p(S)/(p(S)+p(R))",
    "false_acceptance_rate": "False acceptance rate",
    "false_rejection_rate": "False rejection rate",
    "mean_confidence": "Mean confidence (raw)",
    "mean_confidence_normalised": "Mean confidence (normalised)",
}


class MetricsError(ValueError):
    """A score table that lacks what the metrics need."""


def with_normalised(scores: pd.DataFrame) -> pd.DataFrame:
    """The table with `p_supports_norm` present (derived from p_supports and p_refutes)."""
    required = {"framing", "true_label", "p_supports", "predicted_label", "confidence"}
    missing = sorted(required - set(scores.columns))
    if missing:
        raise MetricsError(f"score table: missing column(s) {', '.join(missing)}")
    if "p_supports_norm" in scores.columns:
        return scores
    if "p_refutes" not in scores.columns:
        raise MetricsError("score table: needs p_supports_norm or p_refutes")
    out = scores.copy()
    total = out["p_supports"] + out["p_refutes"]
    out["p_supports_norm"] = np.where(total > 0, out["p_supports"] / total.where(total > 0, 1), 0.5)
    return out


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else math.nan


def framing_metrics_row(rows: pd.DataFrame) -> dict[str, float]:
    """The metrics of one group of score rows (one framing, or all)."""
    truth = rows["true_label"].to_numpy()
    predicted = rows["predicted_label"].to_numpy()
    is_true, is_false = truth == SUPPORTS, truth == REFUTES
    correct = predicted == truth
    recall_true = _mean(correct[is_true])
    recall_false = _mean(correct[is_false])
    p_norm = rows["p_supports_norm"].to_numpy(dtype=float)
    return {
        "n": int(len(rows)),
        "n_true": int(is_true.sum()),
        "n_false": int(is_false.sum()),
        "accuracy": _mean(correct),
        # Undefined (NaN) unless both true and false claims are present.
        "balanced_accuracy": (recall_true + recall_false) / 2,
        "mspr": _mean(rows["p_supports"].to_numpy(dtype=float)[is_false]),
        "mspr_normalised": _mean(p_norm[is_false]),
        "false_acceptance_rate": _mean((predicted == SUPPORTS)[is_false]),
        "false_rejection_rate": _mean((predicted == REFUTES)[is_true]),
        "mean_confidence": _mean(rows["confidence"].to_numpy(dtype=float)),
        "mean_confidence_normalised": _mean(np.maximum(p_norm, 1 - p_norm)),
    }


def framing_metrics(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per framing present (canonical order) plus an `all` row; METRIC_COLUMNS."""
    scores = with_normalised(scores)
    rows = []
    present = set(scores["framing"].unique())
    for framing in [f for f in FRAMINGS if f in present] + sorted(present - set(FRAMINGS)):
        rows.append({"framing": framing, **framing_metrics_row(scores[scores["framing"] == framing])})
    rows.append({"framing": ALL, **framing_metrics_row(scores)})
    return pd.DataFrame(rows, columns=["framing", *METRIC_COLUMNS])


def framing_effects(metrics: pd.DataFrame, metric: str = "mspr") -> pd.Series:
    """Each framing's value of `metric` minus the original framing's (NaN without original)."""
    table = metrics.set_index("framing")
    framings = [f for f in table.index if f not in (ALL, "original")]
    base = table.loc["original", metric] if "original" in table.index else math.nan
    return pd.Series({f: table.loc[f, metric] - base for f in framings}, name=metric, dtype=float)


def bootstrap_interval(scores: pd.DataFrame, metric: str, *, framing: str | None = None,
                       reps: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of one metric; see :func:`bootstrap_intervals`."""
    return bootstrap_intervals(scores, (metric,), framing=framing, reps=reps, seed=seed, level=level)[metric]


def bootstrap_intervals(scores: pd.DataFrame, metrics, *, framing: str | None = None, reps: int = 1000,
                        seed: int = 0, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of several metrics from the same resamples of base
    claims (all their rows).

    Rows of one base claim are not independent, so whole base claims are resampled when a
    `base_id` column is present; otherwise rows. A metric's resamples where it is undefined
    (NaN) are left out of its interval.
    """
    scores = with_normalised(scores)
    if framing is not None:
        scores = scores[scores["framing"] == framing]
    if not len(scores):
        return {metric: (math.nan, math.nan) for metric in metrics}
    rng = np.random.default_rng(seed)
    groups = scores.groupby("base_id").indices if "base_id" in scores.columns else {
        i: np.array([i]) for i in range(len(scores))}
    blocks = list(groups.values())
    values = {metric: [] for metric in metrics}
    for _ in range(reps):
        picked = rng.integers(0, len(blocks), size=len(blocks))
        row = framing_metrics_row(scores.iloc[np.concatenate([blocks[i] for i in picked])])
        for metric in metrics:
            if not math.isnan(row[metric]):
                values[metric].append(row[metric])
    tail = (1 - level) / 2 * 100
    intervals = {}
    for metric, sample in values.items():
        low, high = np.percentile(sample, [tail, 100 - tail]) if sample else (math.nan, math.nan)
        intervals[metric] = (float(low), float(high))
    return intervals


PAIRED_METRICS = ("mspr", "mspr_normalised", "balanced_accuracy")


def paired_differences(reference: pd.DataFrame, other: pd.DataFrame, *, reps: int = 0, seed: int = 0,
                       level: float = 0.95) -> pd.DataFrame:
    """How `other` differs from `reference` per framing, claim for claim (method.md section 3.4).

    Both score tables must hold the same claims (`claim_id`). For each framing (and `all`):
    the difference `other - reference` of MSPR (raw and normalised) and balanced accuracy,
    and, for MSPR, that framing's difference minus the mean difference of the other
    framings (`mspr_vs_others`): how much more a persona's credulity rose on one framing
    than on the rest, which is what attenuating one framing should do. With `reps` > 0,
    percentile intervals from a paired bootstrap that resamples base claims (all framings
    of a base claim move together; both personas see the same resample).
    """
    keys = ["claim_id", "base_id", "framing", "true_label"]
    a = with_normalised(reference)[keys + ["p_supports", "p_supports_norm", "predicted_label"]]
    b = with_normalised(other)[["claim_id", "p_supports", "p_supports_norm", "predicted_label"]]
    rows = a.merge(b, on="claim_id", suffixes=("_a", "_b"), validate="one_to_one")
    if len(rows) != len(a) or len(rows) != len(b):
        raise MetricsError(f"the two score tables hold different claims ({len(a)} and {len(b)} rows, "
                           f"{len(rows)} in common); score the same dataset split with both")
    present = set(rows["framing"])
    framings = [f for f in FRAMINGS if f in present] + sorted(present - set(FRAMINGS))
    bases, base_index = np.unique(rows["base_id"].to_numpy(), return_inverse=True)
    n_base = len(bases)
    weights = np.ones((1, n_base))
    if reps > 0:
        rng = np.random.default_rng(seed)
        weights = np.vstack([weights, rng.multinomial(n_base, np.full(n_base, 1 / n_base), size=reps)])
    is_false = (rows["true_label"] == REFUTES).to_numpy()
    is_true = (rows["true_label"] == SUPPORTS).to_numpy()

    def per_base(values, mask):
        return np.bincount(base_index[mask], weights=values[mask], minlength=n_base)

    def ratio(values, mask):  # [1 + reps] weighted means over the rows in mask
        with np.errstate(invalid="ignore", divide="ignore"):
            return (weights @ per_base(values, mask)) / (weights @ per_base(np.ones(len(rows)), mask))

    def statistics(mask):
        out = {}
        for metric, column in (("mspr", "p_supports"), ("mspr_normalised", "p_supports_norm")):
            diff = rows[f"{column}_b"].to_numpy(float) - rows[f"{column}_a"].to_numpy(float)
            out[metric] = ratio(diff, mask & is_false)
        truth = rows["true_label"].to_numpy()

        def balanced(suffix):
            correct = (rows[f"predicted_label_{suffix}"].to_numpy() == truth).astype(float)
            return (ratio(correct, mask & is_true) + ratio(correct, mask & is_false)) / 2

        out["balanced_accuracy"] = balanced("b") - balanced("a")
        return out

    framing = rows["framing"].to_numpy()
    draws = {f: statistics(framing == f) for f in framings}
    draws[ALL] = statistics(np.ones(len(rows), dtype=bool))
    for f in framings:
        others = [draws[g]["mspr"] for g in framings if g != f]
        draws[f]["mspr_vs_others"] = draws[f]["mspr"] - np.mean(others, axis=0) if others else \
            np.full(len(weights), math.nan)
    tail = (1 - level) / 2 * 100
    table = []
    for f in framings + [ALL]:
        row = {"framing": f}
        for metric, values in draws[f].items():
            row[metric] = float(values[0])
            if reps > 0:
                sample = values[1:][~np.isnan(values[1:])]
                low, high = np.percentile(sample, [tail, 100 - tail]) if len(sample) else (math.nan, math.nan)
                row[f"{metric}_low"], row[f"{metric}_high"] = float(low), float(high)
        table.append(row)
    return pd.DataFrame(table)


def compare_personas(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Long table: one row per (persona, framing) with METRIC_COLUMNS and MSPR/BAcc effects.

    tables: persona name -> score table (the same dataset and split, for a fair comparison).
    """
    frames = []
    for persona, scores in tables.items():
        metrics = framing_metrics(scores)
        mspr_effect = framing_effects(metrics, "mspr")
        bacc_effect = framing_effects(metrics, "balanced_accuracy")
        metrics.insert(0, "persona", persona)
        metrics["mspr_effect"] = metrics["framing"].map(mspr_effect)
        metrics["balanced_accuracy_effect"] = metrics["framing"].map(bacc_effect)
        frames.append(metrics)
    if not frames:
        return pd.DataFrame(columns=["persona", "framing", *METRIC_COLUMNS,
                                     "mspr_effect", "balanced_accuracy_effect"])
    return pd.concat(frames, ignore_index=True)


def comparison_matrix(comparison: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Personas as rows, framings as columns, for one metric (keeps the personas' order)."""
    order = list(dict.fromkeys(comparison["persona"]))
    framings = list(dict.fromkeys(comparison["framing"]))
    return comparison.pivot(index="persona", columns="framing", values=metric).loc[order, framings]
