"""A persona against the human raters of a study, and its adjustment to them (method.md 5).

Inputs: the persona's scores on the very items the humans saw (one row per framed claim:
`claim_id`, `framing`, `true_label`, `p_supports_norm`, `predicted_label`, `confidence`;
`base_id` if known) and the study's `HumanProfile` (annotation/analysis/human_profile.py).

What is compared, per framing:

- false acceptance (P(accept | false claim)) and false rejection (P(reject | true claim)).
  The persona's rates are given two ways, both from the same probabilities (raw before,
  calibrated after): `hard`, the share of claims whose P(SUPPORTS) is at least 0.5 (an
  argmax persona), and `expected`, the mean of its P(SUPPORTS): the rate of a persona that
  samples its answer from that probability, which is how a calibrated persona agent or
  rater behaves (`modeling.decisions`). Both are weighted by judgments, as the humans'
  rate is: an item n raters judged counts n times. 95% intervals: Wilson for the humans'
  rates, and a bootstrap over items for the differences;
- mean confidence, with humans' 1..5 levels mapped to the probability of their chosen label
  by `confidence_probability` (1 -> 0.5, ..., 5 -> 1.0; annotation/analysis/human_profile.py) and the
  persona's confidence taken as the normalised probability of its predicted label;
- the framing effects (each framing minus original) of false acceptance, side by side, with
  their Pearson correlation and the share of framings whose effects have the same sign;
- the distance between the confidence distributions on the 1..5 scale: the persona's
  probability is mapped to the nearest level (`confidence_level`, the inverse of the rule
  above), then Wasserstein-1 (in levels) and Jensen-Shannon distance (base 2, in [0, 1]);
- ECE (10 equal-width bins; humans binned by their level) and Brier score against the truth,
  the human's P(SUPPORTS) being the mapped confidence if they accepted, one minus it if not;
- item-level agreement: Pearson and Spearman correlation between the persona's P(SUPPORTS)
  and each item's human acceptance rate, and agreement with the human majority label
  (items whose raters tied are left out).

The adjustment rescales the persona's normalised P(SUPPORTS) per framing, on the logit scale:
temperature `sigmoid(logit(p) / T)`, Platt `sigmoid(a * logit(p) + b)` or a per-framing
intercept shift `sigmoid(logit(p) + b)`, fitted by maximum likelihood to the humans'
acceptances of each item (binomial: k of n raters accepted). Temperature keeps every
probability on its side of 0.5 and cannot move a framing's acceptance far (a persona that
gives every false claim p > 0.5 accepts at least half of them whatever T), so a gap in
credulity needs an intercept: `intercept` (one parameter per framing, whose fit makes the
framing's judgment-weighted mean equal the humans' rate exactly, and keeps the persona's
ranking and spread) or `platt` (also rescales the spread). The gaps after adjustment are
measured on held-out items (two-fold cross-fitting by base claim, so no base claim is both
fitted and judged); the stored parameters are fitted on all items. `apply_calibration`
applies stored parameters to any P(SUPPORTS).

Pure numpy/scipy/pandas; no Django.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy import stats

from annotation.analysis.human_profile import (
    HumanProfile,
    confidence_level,
    confidence_probability,
)
from core.vocabulary import FRAMINGS

SUPPORTS, REFUTES = "SUPPORTS", "REFUTES"
METHODS = ("temperature", "platt", "intercept", "none")
EPS = 1e-6
LOGIT_LIMIT = math.log((1 - EPS) / EPS)


class CalibrationError(ValueError):
    """Persona scores and human judgments that cannot be compared; the message says why."""


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))


def rescale(p: np.ndarray, *, method: str, parameters: Mapping[str, float]) -> np.ndarray:
    """Rescaled P(SUPPORTS) under one framing's parameters."""
    z = logit(p)
    if method == "temperature":
        return sigmoid(z / parameters["temperature"])
    if method == "platt":
        return sigmoid(parameters["a"] * z + parameters["b"])
    if method == "intercept":
        return sigmoid(z + parameters["b"])
    if method == "none":
        return np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    raise CalibrationError(f"calibration method {method!r}; accepted: {', '.join(METHODS)}")


def apply_calibration(p_supports, framing: str, params: Mapping[str, Any]):
    """The calibrated P(SUPPORTS) of claims in one framing.

    p_supports: the persona's normalised P(SUPPORTS), a float or float[n].
    params: a calibration's `parameters` ({"method": ..., "per_framing": {framing: {...}}}),
    as stored in `Calibration.result["parameters"]`. A framing without its own parameters
    uses the parameters fitted on all framings pooled (`pooled`), so nothing is left raw
    by accident.
    """
    method = params.get("method", "none")
    per_framing = params.get("per_framing", {})
    chosen = per_framing.get(framing) or params.get("pooled") or {}
    scalar = np.ndim(p_supports) == 0
    result = rescale(np.atleast_1d(p_supports), method=method, parameters=chosen) \
        if method != "none" else np.clip(np.atleast_1d(np.asarray(p_supports, dtype=float)), 0, 1)
    return float(result[0]) if scalar else result


# --- fitting --------------------------------------------------------------------------------

def _negative_log_likelihood(q: np.ndarray, accepted: np.ndarray, n: np.ndarray) -> float:
    q = np.clip(q, EPS, 1 - EPS)
    return float(-(accepted * np.log(q) + (n - accepted) * np.log1p(-q)).sum())


def _binomial_logistic_fit(features: np.ndarray, accepted: np.ndarray, n: np.ndarray, *,
                           start: np.ndarray, lower: np.ndarray | None = None,
                           iterations: int = 100) -> np.ndarray:
    """Maximum-likelihood coefficients w of P(accept) = sigmoid(features @ w), k of n per item.

    Newton-Raphson with step halving (the log-likelihood is concave, so it converges in a
    handful of steps); `lower` bounds coefficients from below. A tiny ridge keeps the
    Hessian invertible when the data cannot identify a coefficient.
    """
    w = start.astype(float).copy()

    def loglik(coefficients):
        return -_negative_log_likelihood(sigmoid(features @ coefficients), accepted, n)

    current = loglik(w)
    for _ in range(iterations):
        q = sigmoid(features @ w)
        gradient = features.T @ (accepted - n * q)
        hessian = -(features.T * (n * q * (1 - q))) @ features - 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, -gradient)
        scale = 1.0
        while scale > 1e-6:
            candidate = w + scale * step
            if lower is not None:
                candidate = np.maximum(candidate, lower)
            value = loglik(candidate)
            if value >= current - 1e-12:
                break
            scale /= 2
        if scale <= 1e-6:
            break
        moved = np.abs(candidate - w).max()
        w, current = candidate, value
        if moved < 1e-10:
            break
    return w


def fit_temperature(p: np.ndarray, accepted: np.ndarray, n: np.ndarray) -> dict[str, float]:
    """T > 0 maximising the binomial likelihood of k of n acceptances per item.

    Fitted as u = 1/T on logit(p); u is kept at 1e-3 or more (T at most 1000, i.e. every
    probability pulled to 0.5) when the humans' acceptance runs against the persona's.
    """
    z = logit(p)[:, None]
    u = _binomial_logistic_fit(z, np.asarray(accepted, float), np.asarray(n, float),
                               start=np.array([1.0]), lower=np.array([1e-3]))[0]
    q = sigmoid(u * z[:, 0])
    return {"temperature": float(1.0 / u), "nll": _negative_log_likelihood(q, accepted, n)}


def fit_platt(p: np.ndarray, accepted: np.ndarray, n: np.ndarray) -> dict[str, float]:
    """(a, b) maximising the binomial likelihood of sigmoid(a * logit(p) + b)."""
    z = logit(p)
    features = np.column_stack([z, np.ones_like(z)])
    a, b = _binomial_logistic_fit(features, np.asarray(accepted, float), np.asarray(n, float),
                                  start=np.array([1.0, 0.0]))
    # Perfectly separable data drive the coefficients without bound; keep them finite.
    a, b = float(np.clip(a, -50, 50)), float(np.clip(b, -50, 50))
    return {"a": a, "b": b, "nll": _negative_log_likelihood(sigmoid(a * z + b), accepted, n)}


def fit_intercept(p: np.ndarray, accepted: np.ndarray, n: np.ndarray) -> dict[str, float]:
    """The shift b of sigmoid(logit(p) + b) maximising the binomial likelihood.

    Its score equation makes the judgment-weighted mean of the shifted probabilities equal
    the humans' acceptance rate exactly, so a persona that samples from them accepts as
    often as the humans in that framing, whatever side of 0.5 its scores lie on; the
    persona's ranking and spread of items are kept. b is kept within [-50, 50].
    """
    from scipy.optimize import brentq

    z = logit(p)
    k, n = np.asarray(accepted, float), np.asarray(n, float)

    def score(b):
        return float((k - n * sigmoid(z + b)).sum())

    if n.sum() == 0:
        b = 0.0
    elif score(-50.0) <= 0:
        b = -50.0
    elif score(50.0) >= 0:
        b = 50.0
    else:
        b = brentq(score, -50.0, 50.0, xtol=1e-12)
    return {"b": float(b), "nll": _negative_log_likelihood(sigmoid(z + b), k, n)}


def fit_parameters(items: pd.DataFrame, method: str) -> dict[str, Any]:
    """Per-framing (and pooled) parameters from an item table (p, accepted, n, framing)."""
    if method not in METHODS:
        raise CalibrationError(f"calibration method {method!r}; accepted: {', '.join(METHODS)}")
    if method == "none":
        return {"method": "none", "per_framing": {}, "pooled": {}}
    fit = {"temperature": fit_temperature, "platt": fit_platt, "intercept": fit_intercept}[method]

    def fitted(rows):
        return fit(rows["p"].to_numpy(float), rows["accepted"].to_numpy(float),
                   rows["n"].to_numpy(float))

    per_framing = {framing: fitted(rows) for framing, rows in items.groupby("framing", sort=False)}
    return {"method": method, "per_framing": per_framing, "pooled": fitted(items)}


# --- joining persona and humans -------------------------------------------------------------

def item_table(scores: pd.DataFrame, profile: HumanProfile) -> pd.DataFrame:
    """One row per item the humans judged: the persona's scores beside the humans' counts.

    Columns: claim_id, base_id, framing, true_label, p (persona's normalised P(SUPPORTS)),
    predicted_label, confidence (persona's normalised probability of its label),
    n (raters), accepted (raters who said accurate), human_rate.
    """
    humans = profile.item_acceptance()
    if humans.empty:
        raise CalibrationError("the study has no judgments of claims to calibrate against")
    if "p_supports_norm" not in scores.columns:
        raise CalibrationError("persona scores: missing column p_supports_norm")
    persona = scores.set_index("claim_id")
    missing = sorted(set(humans["claim_id"]) - set(persona.index))
    if missing:
        raise CalibrationError(
            f"persona scores lack {len(missing)} item(s) the humans judged, e.g. {missing[0]!r}; "
            "score the study's items first")
    joined = humans.set_index("claim_id").join(
        persona[["p_supports_norm", "predicted_label"] + (["base_id"] if "base_id" in persona else [])],
        how="left")
    truth_mismatch = joined.index[(persona.loc[joined.index, "true_label"].to_numpy()
                                   != joined["true_label"].to_numpy())]
    if len(truth_mismatch):
        raise CalibrationError(
            f"item {truth_mismatch[0]!r}: the score table and the study disagree on its true label")
    p = joined["p_supports_norm"].to_numpy(float)
    out = pd.DataFrame({
        "claim_id": joined.index.to_numpy(),
        "base_id": (joined["base_id"].to_numpy() if "base_id" in joined
                    else [c.split(":", 1)[0] for c in joined.index]),
        "framing": joined["framing"].to_numpy(),
        "true_label": joined["true_label"].to_numpy(),
        "p": p,
        "predicted_label": joined["predicted_label"].to_numpy(),
        "confidence": np.maximum(p, 1 - p),
        "n": joined["n"].to_numpy(int),
        "accepted": joined["accepted"].to_numpy(int),
    })
    out["human_rate"] = out["accepted"] / out["n"]
    return out


# --- comparison -----------------------------------------------------------------------------

def _framings(items: pd.DataFrame) -> list[str]:
    present = set(items["framing"])
    return [f for f in FRAMINGS if f in present]


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _mean_ci(values: np.ndarray, z: float = 1.959963984540054) -> tuple[float, float, float]:
    if len(values) == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(values.mean())
    if len(values) < 2:
        return (mean, math.nan, math.nan)
    half = z * float(values.std(ddof=1)) / math.sqrt(len(values))
    return (mean, mean - half, mean + half)


def _human_confidence_values(profile: HumanProfile, framing: str | None = None,
                             truth: str | None = None) -> np.ndarray:
    counts = profile.confidence_counts(framing, truth)
    return np.repeat(confidence_probability(np.arange(1, 6)), counts)


def _bootstrap_gap(rows: pd.DataFrame, persona_col: str, reps: int, rng) -> tuple[float, float]:
    """95% interval of (persona rate - human rate) resampling items of one cell; both
    rates weighted by the item's judgments, as in `rate_table`."""
    if len(rows) < 2:
        return (math.nan, math.nan)
    persona = rows[persona_col].to_numpy(float)
    accepted, n = rows["accepted"].to_numpy(float), rows["n"].to_numpy(float)
    picks = rng.integers(0, len(rows), size=(reps, len(rows)))
    gaps = (persona[picks] * n[picks]).sum(1) / n[picks].sum(1) - accepted[picks].sum(1) / n[picks].sum(1)
    low, high = np.percentile(gaps, [2.5, 97.5])
    return (float(low), float(high))


def rate_table(items: pd.DataFrame, profile: HumanProfile, *, p_column: str = "p",
               reps: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per framing: human vs persona false acceptance / rejection and mean confidence.

    `p_column` names the persona's P(SUPPORTS) column (the raw `p`, or a calibrated one);
    both persona rates come from it: `..._persona` is the expected rate of a persona that
    samples from it (its mean), `..._persona_hard` that of one taking the more probable label
    (p >= 0.5). Human and persona rates alike are weighted by judgments: an item judged by
    n raters counts n times on both sides.
    """
    rng = np.random.default_rng(seed)
    items = items.copy()
    items["hard_accept"] = (items[p_column].to_numpy(float) >= 0.5).astype(float)
    rows = []
    for framing in _framings(items):
        row: dict[str, Any] = {"framing": framing}
        for truth, name in ((REFUTES, "false_acceptance"), (SUPPORTS, "false_rejection")):
            cell = items[(items["framing"] == framing) & (items["true_label"] == truth)]
            k, n = int(cell["accepted"].sum()), int(cell["n"].sum())
            human_accept = k / n if n else math.nan
            low, high = _wilson(k, n)
            weights = cell["n"].to_numpy(float)
            persona_expected = (float((cell[p_column].to_numpy(float) * weights).sum() / n)
                                if n else math.nan)
            persona_hard = float((cell["hard_accept"].to_numpy(float) * weights).sum() / n) if n else math.nan
            gap_low, gap_high = _bootstrap_gap(cell, p_column, reps, rng)
            if truth == REFUTES:
                row.update({
                    f"{name}_human": human_accept, f"{name}_human_low": low,
                    f"{name}_human_high": high,
                    f"{name}_persona": persona_expected, f"{name}_persona_hard": persona_hard,
                    f"{name}_gap": persona_expected - human_accept,
                    f"{name}_gap_low": gap_low, f"{name}_gap_high": gap_high,
                })
            else:  # rejection = 1 - acceptance; the gap's interval flips sign
                row.update({
                    f"{name}_human": 1 - human_accept, f"{name}_human_low": 1 - high,
                    f"{name}_human_high": 1 - low,
                    f"{name}_persona": 1 - persona_expected,
                    f"{name}_persona_hard": 1 - persona_hard,
                    f"{name}_gap": human_accept - persona_expected,
                    f"{name}_gap_low": -gap_high, f"{name}_gap_high": -gap_low,
                })
            row[f"n_items_{'false' if truth == REFUTES else 'true'}"] = int(len(cell))
            row[f"n_judgments_{'false' if truth == REFUTES else 'true'}"] = n
        human_conf = _mean_ci(_human_confidence_values(profile, framing))
        p = items.loc[items["framing"] == framing, p_column].to_numpy(float)
        persona_conf = _mean_ci(np.maximum(p, 1 - p))
        row.update({
            "confidence_human": human_conf[0], "confidence_human_low": human_conf[1],
            "confidence_human_high": human_conf[2],
            "confidence_persona": persona_conf[0], "confidence_persona_low": persona_conf[1],
            "confidence_persona_high": persona_conf[2],
        })
        rows.append(row)
    return pd.DataFrame(rows)


def framing_effect_table(rates: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """False-acceptance effects (framing minus original), humans vs persona, and agreement."""
    table = rates.set_index("framing")
    if "original" not in table.index:
        return pd.DataFrame(columns=["framing", "human_effect", "persona_effect"]), {
            "correlation": math.nan, "sign_agreement": math.nan, "rmse": math.nan}
    rows = []
    for framing in table.index:
        if framing == "original":
            continue
        rows.append({
            "framing": framing,
            "human_effect": table.loc[framing, "false_acceptance_human"]
            - table.loc["original", "false_acceptance_human"],
            "persona_effect": table.loc[framing, "false_acceptance_persona"]
            - table.loc["original", "false_acceptance_persona"],
        })
    effects = pd.DataFrame(rows, columns=["framing", "human_effect", "persona_effect"])
    h, p = effects["human_effect"].to_numpy(float), effects["persona_effect"].to_numpy(float)
    ok = ~(np.isnan(h) | np.isnan(p))
    h, p = h[ok], p[ok]
    correlation = (float(np.corrcoef(h, p)[0, 1])
                   if len(h) >= 2 and h.std() > 0 and p.std() > 0 else math.nan)
    summary = {
        "correlation": correlation,
        "sign_agreement": float((np.sign(h) == np.sign(p)).mean()) if len(h) else math.nan,
        "rmse": float(np.sqrt(((h - p) ** 2).mean())) if len(h) else math.nan,
    }
    return effects, summary


def _distribution(levels: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.asarray(levels, dtype=int) - 1, minlength=5)[:5].astype(float)
    return counts / counts.sum() if counts.sum() else np.full(5, math.nan)


def confidence_distances(items: pd.DataFrame, profile: HumanProfile, *,
                         p_column: str = "p") -> pd.DataFrame:
    """Per framing and overall: Wasserstein-1 (levels) and Jensen-Shannon distance (base 2).

    The persona's confidence is max(p, 1-p) mapped to the nearest 1..5 level.
    """
    rows = []
    for framing in [*_framings(items), None]:
        cell = items if framing is None else items[items["framing"] == framing]
        p = cell[p_column].to_numpy(float)
        persona_levels = confidence_level(np.maximum(p, 1 - p)) if len(p) else np.array([], int)
        human_counts = profile.confidence_counts(framing)
        persona_dist = _distribution(np.atleast_1d(persona_levels))
        human_dist = human_counts / human_counts.sum() if human_counts.sum() else np.full(5, math.nan)
        if np.isnan(persona_dist).any() or np.isnan(human_dist).any():
            w1 = js = math.nan
        else:
            levels = np.arange(1, 6)
            w1 = float(stats.wasserstein_distance(levels, levels, persona_dist, human_dist))
            js = float(_jensen_shannon(persona_dist, human_dist))
        rows.append({
            "framing": framing or "all",
            "wasserstein_1": w1, "jensen_shannon": js,
            **{f"persona_level_{k}": float(persona_dist[k - 1]) for k in range(1, 6)},
            **{f"human_level_{k}": float(human_dist[k - 1]) for k in range(1, 6)},
        })
    return pd.DataFrame(rows)


def _jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2

    def kl(a, b):
        mask = a > 0
        return float((a[mask] * np.log2(a[mask] / b[mask])).sum())

    return math.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2))


def expected_calibration_error(prob_supports: np.ndarray, truth_is_supports: np.ndarray,
                               weights: np.ndarray | None = None, bins: int = 10) -> float:
    """ECE of a two-way forecaster: |accuracy - confidence| of its chosen label, binned.

    Bins are equal-width on the chosen label's probability in [0.5, 1]; weights count
    repeated forecasts (humans: judgments at one level).
    """
    p = np.asarray(prob_supports, dtype=float)
    y = np.asarray(truth_is_supports, dtype=bool)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=float)
    if w.sum() == 0:
        return math.nan
    chose_supports = p >= 0.5
    confidence = np.where(chose_supports, p, 1 - p)
    correct = (chose_supports == y).astype(float)
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        weight = w[in_bin].sum()
        if weight:
            ece += weight / w.sum() * abs(
                (w[in_bin] * correct[in_bin]).sum() / weight
                - (w[in_bin] * confidence[in_bin]).sum() / weight)
    return float(ece)


def brier_score(prob_supports: np.ndarray, truth_is_supports: np.ndarray,
                weights: np.ndarray | None = None) -> float:
    p = np.asarray(prob_supports, dtype=float)
    y = np.asarray(truth_is_supports, dtype=float)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=float)
    return float((w * (p - y) ** 2).sum() / w.sum()) if w.sum() else math.nan


def human_forecasts(profile: HumanProfile) -> pd.DataFrame:
    """Humans' judgments as forecasts: P(SUPPORTS), truth and count, per framing and level."""
    rows = []
    for (framing, truth, decision), counts in profile.confidence.items():
        for level in range(1, 6):
            if counts[level - 1]:
                chosen = float(confidence_probability(level))
                rows.append({"framing": framing, "truth": truth,
                             "p": chosen if decision == "accepted" else 1 - chosen,
                             "weight": int(counts[level - 1])})
    return pd.DataFrame(rows, columns=["framing", "truth", "p", "weight"])


def scoring_rules(items: pd.DataFrame, profile: HumanProfile, *, p_column: str = "p") -> pd.DataFrame:
    """ECE and Brier score against the truth, persona and humans, per framing and overall."""
    humans = human_forecasts(profile)
    rows = []
    for framing in [*_framings(items), None]:
        cell = items if framing is None else items[items["framing"] == framing]
        h = humans if framing is None else humans[humans["framing"] == framing]
        y_persona = (cell["true_label"] == SUPPORTS).to_numpy()
        y_human = (h["truth"] == SUPPORTS).to_numpy()
        rows.append({
            "framing": framing or "all",
            "ece_persona": expected_calibration_error(cell[p_column].to_numpy(float), y_persona),
            "ece_human": expected_calibration_error(h["p"].to_numpy(float), y_human,
                                                    h["weight"].to_numpy(float), bins=5),
            "brier_persona": brier_score(cell[p_column].to_numpy(float), y_persona),
            "brier_human": brier_score(h["p"].to_numpy(float), y_human, h["weight"].to_numpy(float)),
        })
    return pd.DataFrame(rows)


def item_agreement(items: pd.DataFrame, *, p_column: str = "p") -> dict[str, float]:
    """Persona P(SUPPORTS) against each item's human acceptance rate; majority agreement."""
    p, rate = items[p_column].to_numpy(float), items["human_rate"].to_numpy(float)
    varied = len(p) >= 3 and p.std() > 0 and rate.std() > 0
    majority = np.sign(items["accepted"].to_numpy(float) * 2 - items["n"].to_numpy(float))
    decided = majority != 0
    persona_accepts = np.where(p >= 0.5, 1.0, -1.0)
    return {
        "items": int(len(items)),
        "pearson": float(stats.pearsonr(p, rate)[0]) if varied else math.nan,
        "spearman": float(stats.spearmanr(p, rate)[0]) if varied else math.nan,
        "items_with_majority": int(decided.sum()),
        "majority_agreement": float((persona_accepts[decided] == majority[decided]).mean())
        if decided.any() else math.nan,
    }


# --- the whole report -----------------------------------------------------------------------

def _cross_fitted(items: pd.DataFrame, method: str, seed: int, folds: int = 2) -> np.ndarray:
    """Each item's calibrated p from parameters fitted on the other fold(s) of base claims."""
    if method == "none":
        return items["p"].to_numpy(float)
    rng = np.random.default_rng(seed)
    bases = np.array(sorted(set(items["base_id"])))
    rng.shuffle(bases)
    fold_of = {base: i % folds for i, base in enumerate(bases)}
    fold = items["base_id"].map(fold_of).to_numpy()
    out = np.empty(len(items))
    for k in range(folds):
        train, test = items[fold != k], items[fold == k]
        if train.empty or test.empty:
            out[fold == k] = test["p"].to_numpy(float)
            continue
        params = fit_parameters(train, method)
        out[fold == k] = [apply_calibration(p, f, params)
                          for p, f in zip(test["p"].to_numpy(float), test["framing"])]
    return out


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe rows: NaN becomes None."""
    return [{k: (None if isinstance(v, float) and math.isnan(v) else
                 (v.item() if isinstance(v, np.generic) else v)) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


def _clean(value):
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def calibrate(scores: pd.DataFrame, profile: HumanProfile, *, method: str = "temperature",
              seed: int = 0, bootstrap_reps: int = 1000) -> dict[str, Any]:
    """Compare a persona with the humans, fit the adjustment, and report before and after.

    Returns a JSON-safe dict: `parameters` (for apply_calibration), `before` and `after`
    (rate tables, effects, distances, scoring rules, item agreement), `gap_summary`
    (mean absolute false acceptance / rejection gap before and after, held-out) and `items`.
    """
    if method not in METHODS:
        raise CalibrationError(f"calibration method {method!r}; accepted: {', '.join(METHODS)}")
    items = item_table(scores, profile)
    parameters = fit_parameters(items, method)
    items["p_calibrated_heldout"] = _cross_fitted(items, method, seed)
    items["p_calibrated"] = [apply_calibration(p, f, parameters)
                             for p, f in zip(items["p"].to_numpy(float), items["framing"])]

    def section(p_column: str) -> dict[str, Any]:
        rates = rate_table(items, profile, p_column=p_column, reps=bootstrap_reps, seed=seed)
        effects, effect_summary = framing_effect_table(rates)
        return {
            "rates": _records(rates),
            "effects": _records(effects),
            "effect_agreement": _clean(effect_summary),
            "confidence_distances": _records(confidence_distances(items, profile, p_column=p_column)),
            "scoring_rules": _records(scoring_rules(items, profile, p_column=p_column)),
            "item_agreement": _clean(item_agreement(items, p_column=p_column)),
            "mean_abs_false_acceptance_gap": _clean(float(rates["false_acceptance_gap"].abs().mean())),
            "mean_abs_false_rejection_gap": _clean(float(rates["false_rejection_gap"].abs().mean())),
        }

    before = section("p")
    after = section("p_calibrated_heldout")
    in_sample = section("p_calibrated")
    return _clean({
        "method": method,
        "seed": seed,
        "confidence_rule": "human level k -> probability 0.5 + 0.125*(k-1); persona probability "
                           "max(p, 1-p) -> nearest level",
        "parameters": parameters,
        "before": before,
        "after": after,
        "after_in_sample": {k: in_sample[k] for k in (
            "mean_abs_false_acceptance_gap", "mean_abs_false_rejection_gap", "effect_agreement")},
        "gap_summary": {
            "false_acceptance_before": before["mean_abs_false_acceptance_gap"],
            "false_acceptance_after": after["mean_abs_false_acceptance_gap"],
            "false_rejection_before": before["mean_abs_false_rejection_gap"],
            "false_rejection_after": after["mean_abs_false_rejection_gap"],
        },
        "n_items": int(len(items)),
        "n_judgments": int(items["n"].sum()),
        # Which raters the human side counts: the profile's exclusion policy and what each
        # rule removed (annotation/analysis/exclusions.py), as the study's report applies it.
        "raters": {"n_raters": profile.n_raters, "n_judgments": profile.n_judgments,
                   "exclusions": profile.exclusions},
        "items": _records(items[["claim_id", "framing", "true_label", "p", "p_calibrated",
                                 "p_calibrated_heldout", "n", "accepted"]]),
    })


def nearest_to_humans(results: Mapping[str, Mapping[str, Any]]) -> tuple[str | None, dict[str, float]]:
    """From an alpha sweep: the persona whose false-acceptance framing effects are nearest
    the humans' (smallest RMSE over framings), with every persona's RMSE."""
    distances = {}
    for name, result in results.items():
        rmse = result["before"]["effect_agreement"].get("rmse")
        distances[name] = math.inf if rmse is None else float(rmse)
    if not distances:
        return None, {}
    best = min(distances, key=distances.get)
    return (best if math.isfinite(distances[best]) else None), distances
