"""The statistics a framing study reports (method.md section 2.5), computed from a tidy table.

Pure: pandas, numpy, scipy and statsmodels only, no Django. The same function runs on a
study's export, on FrameRef's own ten-column tidy table read from a CSV, or in a notebook,
and is tested without a database. `annotation.analysis.study` feeds it from a study.

What `analyze` computes, per framing and over all framings:

- n (judgments, participants, items); accuracy overall, on true and on false claims; the
  acceptance rate; the **false acceptance rate** P(Yes | false claim) and the false
  rejection rate P(No | true claim); mean confidence and familiarity, overall and by truth
  value. Every rate and mean, and every difference from the original wording, has an
  interval that by default accounts for clustering by participant and by base claim (a
  two-way cluster-robust t interval, `two_way_cluster_variance`); a percentile cluster
  bootstrap over participants only, or a pigeonhole bootstrap over both, on request
  (`AnalysisOptions.interval`), seeded, vectorised over resamples.
- The primary test: per framing, does false acceptance differ from the original wording?
  A permutation test of framing labels within base claims (`permutation_framing_test`),
  Holm-adjusted across framings.
- Descriptive tests that assume independent judgments, as FrameRef reports them: Pearson
  chi-square tests of framing x response (Yes/No), separately for false and for true
  claims, with Cramer's V and the smallest expected count; per framing, false acceptance
  among judgments whose familiarity is at the chosen levels, with an exact two-sided
  binomial test against 0.5 (and Holm-adjusted p-values across framings).
- Krippendorff's alpha (nominal) on acceptance, the units being the framed items
  (`full_claim_id`), over all items and per framing.
- A Bayesian mixed-effects logistic regression (statsmodels' `BinomialBayesMixedGLM`,
  variational Bayes) of acceptance on framing (reference `original`) and truth, with
  crossed random intercepts for participant and base claim.

Exclusions are applied first, by the one policy the human profile, calibration and the
simulation's human agents apply too (`annotation.analysis.exclusions`), in a fixed order
(persona, status, attention, fast, design-violations); each rule reports how many
participants and judgments it flagged and how many it removed that an earlier rule had not
removed already (a CONSORT-style flow).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import sparse, stats

from annotation.analysis.exclusions import RaterFacts, exclusion_flow, rater_facts
from annotation.analysis.options import ALL, REFERENCE_FRAMING, AnalysisOptions
from annotation.analysis.text_report import format_text
from core.vocabulary import FRAMINGS

# --- The input ---------------------------------------------------------------------------

TIDY_COLUMNS = (
    "DataPoint_ID", "Task_Group_ID", "text", "Annotator_ID", "full_claim_id", "framing_type",
    "true_label", "accurate_response", "confidence_response", "familiarity_response",
)
# The analysis needs these; the other tidy columns are carried for the reader only.
REQUIRED_COLUMNS = (
    "Annotator_ID", "full_claim_id", "framing_type", "true_label", "accurate_response",
    "confidence_response", "familiarity_response",
)
# Optional platform columns the exclusion rules read: see `exclusions.py`.
_ACCEPT = {"SUPPORTS": True, "YES": True, "REFUTES": False, "NO": False}


# --- The result --------------------------------------------------------------------------

# Statistics of the per-framing summary: (name, label, kind). Rates are proportions of
# judgments; means are over the judgments that have the answer.
SUMMARY_STATISTICS = (
    ("accuracy", "accuracy", "rate"),
    ("accuracy_true", "accuracy on true claims", "rate"),
    ("accuracy_false", "accuracy on false claims", "rate"),
    ("acceptance_rate", "acceptance rate P(Yes)", "rate"),
    ("false_acceptance_rate", "false acceptance rate P(Yes | false)", "rate"),
    ("false_rejection_rate", "false rejection rate P(No | true)", "rate"),
    ("mean_confidence", "mean confidence", "mean"),
    ("mean_confidence_true", "mean confidence, true claims", "mean"),
    ("mean_confidence_false", "mean confidence, false claims", "mean"),
    ("mean_familiarity", "mean familiarity", "mean"),
    ("mean_familiarity_true", "mean familiarity, true claims", "mean"),
    ("mean_familiarity_false", "mean familiarity, false claims", "mean"),
)
STATISTIC_NAMES = tuple(name for name, _, _ in SUMMARY_STATISTICS)
# Reported per framing also as the difference from the original wording, with an interval.
DIFFERENCE_STATISTICS = ("false_acceptance_rate", "false_rejection_rate", "accuracy", "mean_confidence")


@dataclass
class AnalysisResult:
    """Everything `analyze` found; `to_dict` for JSON, `to_text` for a report, `tables` for CSV."""

    options: AnalysisOptions
    counts: dict
    exclusions: list[dict]
    framings: list[dict]
    framing_tests: dict
    chi_square: dict
    familiarity_tests: dict
    agreement: dict
    mixed_model: dict
    confidence_distribution: list[dict]
    notes: list[str] = field(default_factory=list)

    @property
    def has_judgments(self) -> bool:
        return self.counts["judgments_analysed"] > 0

    def summary(self, framing: str) -> dict:
        """The summary row of one framing (or `"all"`)."""
        for row in self.framings:
            if row["framing"] == framing:
                return row
        raise KeyError(framing)

    def to_dict(self) -> dict:
        """JSON-ready: plain floats, ints and strings; NaN and infinities become None."""
        return _jsonable({
            "options": self.options.to_dict(),
            "counts": self.counts,
            "exclusions": self.exclusions,
            "framings": self.framings,
            "framing_tests": self.framing_tests,
            "chi_square": self.chi_square,
            "familiarity_tests": self.familiarity_tests,
            "agreement": self.agreement,
            "mixed_model": self.mixed_model,
            "confidence_distribution": self.confidence_distribution,
            "notes": self.notes,
        })

    def tables(self) -> dict[str, pd.DataFrame]:
        """The report's tables as data frames, one per CSV a researcher downloads."""
        summary_rows = []
        for row in self.framings:
            flat = {key: row[key] for key in ("framing", "n", "n_true", "n_false", "participants", "items")}
            for name in STATISTIC_NAMES:
                estimate = row[name]
                flat[name] = estimate["estimate"]
                flat[f"{name}_ci_low"] = estimate["ci_low"]
                flat[f"{name}_ci_high"] = estimate["ci_high"]
            for name in DIFFERENCE_STATISTICS:
                difference = row["difference_from_original"].get(name, {})
                for key, suffix in (("estimate", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high")):
                    flat[f"{name}_minus_original{suffix}"] = difference.get(key)
            summary_rows.append(flat)
        chi_rows = []
        for claims, test in self.chi_square.items():
            chi_rows.append({"claims": claims, **{k: v for k, v in test.items() if k != "table"}})
        mixed_rows = [dict(term) for term in self.mixed_model.get("fixed_effects", [])]
        mixed_rows += [{"term": f"SD of random intercepts: {vc['name']}", **vc}
                       for vc in self.mixed_model.get("random_effects", [])]
        for row in mixed_rows:
            row.pop("name", None)
        rate_rows = []
        for row in self.mixed_model.get("implied_rates", []):
            flat = {"framing": row["framing"]}
            for name, estimate in row.items():
                if isinstance(estimate, dict):
                    flat.update({name: estimate["estimate"], f"{name}_ci_low": estimate["ci_low"],
                                 f"{name}_ci_high": estimate["ci_high"]})
            rate_rows.append(flat)
        agreement_rows = [{"framing": ALL, **self.agreement["overall"]}] + list(self.agreement["by_framing"])
        framing_test_rows = [{"method": self.framing_tests["method"], **row} for row in self.framing_tests["rows"]]
        return {
            "framing_summary": pd.DataFrame(summary_rows),
            "framing_tests": pd.DataFrame(framing_test_rows),
            "exclusions": pd.DataFrame(self.exclusions),
            "chi_square": pd.DataFrame(chi_rows),
            "familiarity_tests": pd.DataFrame(self.familiarity_tests["rows"]),
            "agreement": pd.DataFrame(agreement_rows),
            "mixed_model": pd.DataFrame(mixed_rows),
            "mixed_model_rates": pd.DataFrame(rate_rows),
            "confidence_distribution": pd.DataFrame(self.confidence_distribution),
        }

    def to_text(self) -> str:
        """A plain-text report in the order a results section reads."""
        return format_text(self)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


# --- Preparing the table ------------------------------------------------------------------

def _scale_column(series: pd.Series, column: str, rows: pd.Index) -> np.ndarray:
    """Answers on the 1-5 scales as floats (NaN where missing); '5 (Very familiar)' reads as 5."""
    numeric = pd.to_numeric(series, errors="coerce")
    text_rows = numeric.isna() & series.notna()
    if text_rows.any():
        leading = series[text_rows].astype(str).str.extract(r"^\s*(\d+)", expand=False)
        numeric.loc[text_rows] = pd.to_numeric(leading, errors="coerce")
        blank = series[text_rows].astype(str).str.strip().isin(["", "nan", "None", "<NA>"])
        bad = numeric.isna() & text_rows & ~blank.reindex(series.index, fill_value=False)
        if bad.any():
            where = bad.idxmax()
            raise ValueError(f"row {rows.get_loc(where) + 1}: column '{column}': value "
                             f"'{series[where]}': expected an answer from 1 to 5")
    values = numeric.to_numpy(dtype=float, na_value=np.nan)
    out_of_range = ~np.isnan(values) & ((values < 1) | (values > 5) | (values != np.round(values)))
    if out_of_range.any():
        position = int(np.flatnonzero(out_of_range)[0])
        raise ValueError(f"row {position + 1}: column '{column}': value '{series.iloc[position]}': "
                         "expected an answer from 1 to 5")
    return values


def _framing_order(framings) -> list[str]:
    present = set(framings)
    known = [f for f in FRAMINGS if f in present]
    return known + sorted(present - set(FRAMINGS))


@dataclass
class _Prepared:
    """The table in the analysis's own terms: one row per judgment, attention checks apart."""

    claims: pd.DataFrame  # participant, item, base_claim, framing, true_claim, accept, confidence, familiarity
    facts: RaterFacts  # what the exclusion rules read, per rater
    attention_rows: int


def _prepare(table: pd.DataFrame) -> _Prepared:
    if not isinstance(table, pd.DataFrame):
        raise TypeError("analyze expects a pandas DataFrame")
    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"the table lacks column(s) {', '.join(missing)}; a tidy table has "
                         f"{', '.join(TIDY_COLUMNS)}")
    table = table.reset_index(drop=True)
    rows = table.index
    participant = table["Annotator_ID"]
    if participant.isna().any():
        position = int(np.flatnonzero(participant.isna().to_numpy())[0])
        raise ValueError(f"row {position + 1}: column 'Annotator_ID': value is empty")
    participant = participant.astype(str)

    # Per-participant facts the exclusion rules read (from every row, checks included).
    facts = rater_facts(table)
    is_check = facts.is_check

    claim_rows = ~is_check
    claims = table.loc[claim_rows]
    for column in ("full_claim_id", "framing_type", "true_label", "accurate_response"):
        empty = claims[column].isna() | (claims[column].astype(str).str.strip() == "")
        if empty.any():
            where = empty.idxmax()
            raise ValueError(f"row {rows.get_loc(where) + 1}: column '{column}': value is empty")
    truth = claims["true_label"].astype(str).str.strip().str.upper()
    bad_truth = ~truth.isin(["SUPPORTS", "REFUTES"])
    if bad_truth.any():
        where = bad_truth.idxmax()
        raise ValueError(f"row {rows.get_loc(where) + 1}: column 'true_label': value "
                         f"'{claims.at[where, 'true_label']}': accepted: SUPPORTS or REFUTES")
    response = claims["accurate_response"].astype(str).str.strip().str.upper()
    bad_response = ~response.isin(list(_ACCEPT))
    if bad_response.any():
        where = bad_response.idxmax()
        raise ValueError(f"row {rows.get_loc(where) + 1}: column 'accurate_response': value "
                         f"'{claims.at[where, 'accurate_response']}': accepted: SUPPORTS or REFUTES "
                         "(Yes or No)")
    item = claims["full_claim_id"].astype(str).str.strip()
    prepared = pd.DataFrame({
        "participant": participant[claim_rows].to_numpy(),
        "item": item.to_numpy(),
        # The base claim is everything before the first ':' of the claim id (method.md section 1.4).
        "base_claim": item.str.split(":", n=1).str[0].to_numpy(),
        "framing": claims["framing_type"].astype(str).str.strip().to_numpy(),
        "true_claim": (truth == "SUPPORTS").to_numpy(),
        "accept": response.map(_ACCEPT).to_numpy(dtype=bool),
        "confidence": _scale_column(claims["confidence_response"], "confidence_response", rows),
        "familiarity": _scale_column(claims["familiarity_response"], "familiarity_response", rows),
    })
    return _Prepared(claims=prepared, facts=facts, attention_rows=int(is_check.sum()))


def _apply_exclusions(prepared: _Prepared, options: AnalysisOptions) -> tuple[pd.DataFrame, list[dict], list[str]]:
    """Removes the excluded judgments (`exclusions.exclusion_flow`); returns what is left and the flow."""
    claims = prepared.claims
    keep, flow, notes = exclusion_flow(
        participant=claims["participant"].to_numpy(), base_claim=claims["base_claim"].to_numpy(),
        framing=claims["framing"].to_numpy(), facts=prepared.facts, policy=options.policy)
    return claims[keep].reset_index(drop=True), flow, notes


# --- Per-framing rates with a cluster bootstrap -------------------------------------------

def _statistic_columns(claims: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per judgment and statistic: the numerator's value and whether it counts (denominator).

    Returns `value: float[n, S]` and `counts: float[n, S]` with S = len(SUMMARY_STATISTICS).
    """
    true_claim = claims["true_claim"].to_numpy(dtype=bool)
    accept = claims["accept"].to_numpy(dtype=bool)
    correct = accept == true_claim
    confidence = claims["confidence"].to_numpy(dtype=float)
    familiarity = claims["familiarity"].to_numpy(dtype=float)
    has_confidence = ~np.isnan(confidence)
    has_familiarity = ~np.isnan(familiarity)
    every = np.ones(len(claims), dtype=bool)
    columns = {
        "accuracy": (correct, every),
        "accuracy_true": (correct, true_claim),
        "accuracy_false": (correct, ~true_claim),
        "acceptance_rate": (accept, every),
        "false_acceptance_rate": (accept, ~true_claim),
        "false_rejection_rate": (~accept, true_claim),
        "mean_confidence": (confidence, has_confidence),
        "mean_confidence_true": (confidence, has_confidence & true_claim),
        "mean_confidence_false": (confidence, has_confidence & ~true_claim),
        "mean_familiarity": (familiarity, has_familiarity),
        "mean_familiarity_true": (familiarity, has_familiarity & true_claim),
        "mean_familiarity_false": (familiarity, has_familiarity & ~true_claim),
    }
    value = np.column_stack([np.where(mask, np.nan_to_num(np.asarray(v, dtype=float)), 0.0)
                             for v, mask in (columns[name] for name in STATISTIC_NAMES)])
    counts = np.column_stack([columns[name][1].astype(float) for name in STATISTIC_NAMES])
    return value, counts


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def cluster_bootstrap_weights(n_clusters: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each cluster is drawn in each resample: `int64[resamples, n_clusters]`.

    Drawing n clusters with replacement is a multinomial with equal probabilities, so one
    call gives every resample at once.
    """
    if n_clusters == 0 or resamples == 0:
        return np.zeros((resamples, n_clusters), dtype=np.int64)
    return rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=resamples)


def percentile_interval(samples: np.ndarray, confidence_level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile interval per column of `samples: float[B, K]`, ignoring NaN resamples.

    Returns (low, high, valid) arrays of length K; a column without valid resamples gets
    NaN bounds.
    """
    tail = (1 - confidence_level) / 2
    k = samples.shape[1]
    low, high = np.full(k, np.nan), np.full(k, np.nan)
    valid = np.sum(~np.isnan(samples), axis=0)
    for column in np.flatnonzero(valid):
        finite = samples[~np.isnan(samples[:, column]), column]
        low[column], high[column] = np.quantile(finite, [tail, 1 - tail])
    return low, high, valid


# Where an interval is clipped: the range each statistic can take (rates 0-1, answers 1-5).
_STATISTIC_RANGE = {name: ((0.0, 1.0) if kind == "rate" else (1.0, 5.0)) for name, _, kind in SUMMARY_STATISTICS}


def _sum_by(index: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Sums of the rows of `values` (any trailing shape) per group `index`: [n_groups, ...].

    A sparse indicator-matrix product: much faster than `np.add.at`, same numbers.
    """
    values = np.asarray(values, dtype=float)
    flat = values.reshape(values.shape[0], int(np.prod(values.shape[1:], dtype=int)))
    indicator = sparse.csr_matrix((np.ones(len(index)), (np.asarray(index), np.arange(len(index)))),
                                  shape=(n_groups, len(index)))
    return np.asarray(indicator @ flat).reshape((n_groups,) + values.shape[1:])


def two_way_cluster_variance(influence: np.ndarray, participant: np.ndarray, claim: np.ndarray,
                             n_participants: int, n_claims: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-way cluster-robust variances (Cameron, Gelbach & Miller 2011) and their df.

    `influence: float[K, M]` holds, per cell (one participant x one base claim) and per
    estimate, the cell's contribution to the linearised estimator (for a ratio of sums
    theta = sum v / sum n: (sum_cell v - theta sum_cell n) / sum n). With V_P the sum over
    participants of their squared summed contributions, V_C the same over base claims and
    V_PC the same over cells (their intersections),

        V = P/(P-1) V_P + C/(C-1) V_C - V_PC,

    P and C counting the clusters that contribute to the estimate. Where V is not positive
    (it can be, being a difference) the larger one-way term stands in, as CGM advise.
    Returns (variance, df) per column, df = min(P, C) - 1 for a t interval, NaN where there
    are fewer than two clusters of either kind.
    """
    influence = np.asarray(influence, dtype=float)
    n_columns = influence.shape[1]
    by_participant = _sum_by(participant, influence, n_participants)
    by_claim = _sum_by(claim, influence, n_claims)
    contributes = (influence != 0).astype(float)
    p_count = (_sum_by(participant, contributes, n_participants) > 0).sum(axis=0)
    c_count = (_sum_by(claim, contributes, n_claims) > 0).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        v_p = (by_participant ** 2).sum(axis=0) * p_count / (p_count - 1)
        v_c = (by_claim ** 2).sum(axis=0) * c_count / (c_count - 1)
    v_pc = (influence ** 2).sum(axis=0)
    variance = v_p + v_c - v_pc
    variance = np.where(variance > 0, variance, np.maximum(v_p, v_c))
    enough = (p_count >= 2) & (c_count >= 2)
    df = np.where(enough, np.minimum(p_count, c_count) - 1, np.nan).astype(float)
    return np.where(enough, variance, np.nan), df


def _t_interval(estimate: np.ndarray, variance: np.ndarray, df: np.ndarray,
                confidence_level: float) -> tuple[np.ndarray, np.ndarray]:
    valid = np.isfinite(estimate) & np.isfinite(variance) & np.isfinite(df)
    quantile = np.full(estimate.shape, np.nan)
    quantile[valid] = stats.t.ppf(1 - (1 - confidence_level) / 2, df[valid])
    half = np.full(estimate.shape, np.nan)
    half[valid] = quantile[valid] * np.sqrt(variance[valid])
    return estimate - half, estimate + half


def _bootstrap_samples(weights_for_block, cell_numerator: np.ndarray, cell_denominator: np.ndarray,
                       resamples: int, n_cells: int) -> np.ndarray:
    """Ratios of weighted sums, `float[resamples, M]`, in blocks so memory stays bounded."""
    block = max(1, min(resamples, 4_000_000 // max(1, n_cells * 4)))
    samples, done = [], 0
    while done < resamples:
        size = min(block, resamples - done)
        weights = weights_for_block(size)
        samples.append(_ratio(weights @ cell_numerator, weights @ cell_denominator))
        done += size
    return np.vstack(samples)


def _framing_summaries(claims: pd.DataFrame, framings: list[str], options: AnalysisOptions,
                       rng: np.random.Generator) -> tuple[list[dict], list[str]]:
    """Per framing and over all: every statistic with its interval, and differences from original.

    The interval depends on `options.interval` (see `INTERVAL_METHODS`): the default
    `two-way` is the two-way cluster-robust t interval (`two_way_cluster_variance`);
    `participant-bootstrap` is a percentile bootstrap resampling participants only (what
    FrameLab reported before); `two-way-bootstrap` is a percentile pigeonhole bootstrap that
    resamples participants and base claims independently (base claims within truth value),
    each judgment weighted by the product of its participant's and its claim's draws.
    """
    groups = framings + [ALL]
    n_groups, n_stats = len(groups), len(STATISTIC_NAMES)
    participants, participant_index = np.unique(claims["participant"].to_numpy(dtype=str), return_inverse=True)
    n_participants = len(participants)
    base_claims, claim_index = np.unique(claims["base_claim"].to_numpy(dtype=str), return_inverse=True)
    n_claims = len(base_claims)
    framing_index = pd.Categorical(claims["framing"], categories=framings).codes
    value, counts = _statistic_columns(claims)

    # Sums per cell (participant x base claim) and framing: float[K, G, S], "all" last.
    cell_codes, cell_of = np.unique(participant_index * max(1, n_claims) + claim_index, return_inverse=True)
    n_cells = len(cell_codes)
    cell_participant = cell_codes // max(1, n_claims)
    cell_claim = cell_codes % max(1, n_claims)
    slot = cell_of * n_groups + framing_index
    cell_numerator = _sum_by(slot, value, n_cells * n_groups).reshape(n_cells, n_groups, n_stats)
    cell_denominator = _sum_by(slot, counts, n_cells * n_groups).reshape(n_cells, n_groups, n_stats)
    cell_numerator[:, -1] = cell_numerator[:, :-1].sum(axis=1)
    cell_denominator[:, -1] = cell_denominator[:, :-1].sum(axis=1)
    # The same sums per participant (the participant bootstrap's clusters).
    numerator = _sum_by(cell_participant, cell_numerator, n_participants)
    denominator = _sum_by(cell_participant, cell_denominator, n_participants)
    total_denominator = denominator.sum(axis=0)
    estimate = _ratio(numerator.sum(axis=0), total_denominator)  # [G, S]

    low = np.full((n_groups, n_stats), np.nan)
    high = np.full((n_groups, n_stats), np.nan)
    # Differences from the reference framing, [G, D], for the statistics in DIFFERENCE_STATISTICS.
    reference = framings.index(REFERENCE_FRAMING) if REFERENCE_FRAMING in framings else None
    difference_columns = [STATISTIC_NAMES.index(name) for name in DIFFERENCE_STATISTICS]
    difference = np.full((n_groups, len(difference_columns)), np.nan)
    difference_low, difference_high = difference.copy(), difference.copy()
    if reference is not None:
        difference = estimate[:, difference_columns] - estimate[reference, difference_columns]
    notes = []
    resamples = options.bootstrap_resamples
    samples = None
    if options.interval == "two-way":
        if n_cells:
            # Each cell's contribution to the linearised ratio estimator, scaled by its total.
            with np.errstate(divide="ignore", invalid="ignore"):
                influence = (cell_numerator - np.nan_to_num(estimate) * cell_denominator) / total_denominator
            influence = np.where(total_denominator > 0, influence, 0.0)
            variance, df = two_way_cluster_variance(influence.reshape(n_cells, -1), cell_participant, cell_claim,
                                                    n_participants, n_claims)
            low_flat, high_flat = _t_interval(estimate.reshape(-1), variance, df, options.confidence_level)
            low, high = low_flat.reshape(n_groups, n_stats), high_flat.reshape(n_groups, n_stats)
            if reference is not None:
                chosen = influence[:, :, difference_columns]
                paired = (chosen - chosen[:, reference:reference + 1, :]).reshape(n_cells, -1)
                d_variance, d_df = two_way_cluster_variance(paired, cell_participant, cell_claim,
                                                            n_participants, n_claims)
                d_low, d_high = _t_interval(difference.reshape(-1), d_variance, d_df, options.confidence_level)
                difference_low, difference_high = d_low.reshape(n_groups, -1), d_high.reshape(n_groups, -1)
            if not np.isfinite(low[~np.isnan(estimate)]).all():
                notes.append("Some statistics have no interval: the two-way interval needs at least two "
                             "participants and two base claims contributing to the statistic.")
    elif resamples and options.interval == "participant-bootstrap" and n_participants >= 2:
        flat_numerator = numerator.reshape(n_participants, -1)
        flat_denominator = denominator.reshape(n_participants, -1)
        samples = _bootstrap_samples(
            lambda size: cluster_bootstrap_weights(n_participants, size, rng).astype(float),
            flat_numerator, flat_denominator, resamples, n_participants)
    elif resamples and options.interval == "two-way-bootstrap" and n_participants >= 2 and n_claims >= 2:
        # Base claims are drawn within truth value: the design fixes how many are true.
        claim_truth = np.zeros(n_claims, dtype=bool)
        claim_truth[claim_index] = claims["true_claim"].to_numpy(dtype=bool)
        strata = [np.flatnonzero(claim_truth == truth) for truth in (False, True)]

        def pigeonhole_weights(size):
            claim_weights = np.zeros((size, n_claims))
            for stratum in strata:
                if len(stratum):
                    claim_weights[:, stratum] = cluster_bootstrap_weights(len(stratum), size, rng)
            participant_weights = cluster_bootstrap_weights(n_participants, size, rng).astype(float)
            return participant_weights[:, cell_participant] * claim_weights[:, cell_claim]

        samples = _bootstrap_samples(pigeonhole_weights, cell_numerator.reshape(n_cells, -1),
                                     cell_denominator.reshape(n_cells, -1), resamples, n_cells)
    elif resamples and options.interval != "two-way":
        notes.append("Too few participants or base claims for bootstrap intervals.")
    if samples is not None:
        low_flat, high_flat, valid = percentile_interval(samples, options.confidence_level)
        low, high = low_flat.reshape(n_groups, n_stats), high_flat.reshape(n_groups, n_stats)
        if reference is not None:
            # Both rates come from the same resample, so the interval of the difference
            # accounts for participants (and claims) seen in both framings.
            grouped = samples.reshape(-1, n_groups, n_stats)[:, :, difference_columns]
            paired = (grouped - grouped[:, reference:reference + 1, :]).reshape(len(samples), -1)
            d_low, d_high, _ = percentile_interval(paired, options.confidence_level)
            difference_low = d_low.reshape(n_groups, -1)
            difference_high = d_high.reshape(n_groups, -1)
        partial = (valid > 0) & (valid < resamples)
        if partial.any():
            low_count, high_count = int(valid[partial].min()), int(valid[partial].max())
            used = f"{low_count}" if low_count == high_count else f"{low_count} to {high_count}"
            notes.append(
                f"Some statistics were undefined in part of the bootstrap resamples (no judgment of "
                f"that kind drawn); their intervals use the {used} of {resamples} resamples where "
                "they are defined.")
    # An interval never leaves the range its statistic can take.
    for s, name in enumerate(STATISTIC_NAMES):
        lowest, highest = _STATISTIC_RANGE[name]
        low[:, s], high[:, s] = np.clip(low[:, s], lowest, highest), np.clip(high[:, s], lowest, highest)
    for d, name in enumerate(DIFFERENCE_STATISTICS):
        lowest, highest = _STATISTIC_RANGE[name]
        span = highest - lowest
        difference_low[:, d] = np.clip(difference_low[:, d], -span, span)
        difference_high[:, d] = np.clip(difference_high[:, d], -span, span)

    # Counts for the table's first columns.
    true_claim = claims["true_claim"].to_numpy(dtype=bool)
    rows = []
    for g, framing in enumerate(groups):
        mask = np.ones(len(claims), dtype=bool) if framing == ALL else framing_index == g
        row = {
            "framing": framing,
            "n": int(mask.sum()),
            "n_true": int((mask & true_claim).sum()),
            "n_false": int((mask & ~true_claim).sum()),
            "participants": int(claims.loc[mask, "participant"].nunique()),
            "items": int(claims.loc[mask, "item"].nunique()),
        }
        for s, name in enumerate(STATISTIC_NAMES):
            row[name] = {
                "estimate": estimate[g, s],
                "ci_low": low[g, s],
                "ci_high": high[g, s],
                "n": int(total_denominator[g, s]),
            }
        # Against the reference framing: empty for the reference itself and for "all".
        row["difference_from_original"] = {} if framing in (ALL, REFERENCE_FRAMING) or reference is None else {
            name: {"estimate": difference[g, d], "ci_low": difference_low[g, d], "ci_high": difference_high[g, d]}
            for d, name in enumerate(DIFFERENCE_STATISTICS)
        }
        rows.append(row)
    return rows, notes


# --- The primary test: framing labels permuted within base claims ------------------------------

def permutation_framing_test(base_claim, framing, accept, framings: list[str], reference: str,
                             permutations: int, rng: np.random.Generator) -> dict:
    """Does each framing change the acceptance rate relative to `reference`? One p-value each.

    Pass the judgments of false claims to test false acceptance. The statistic is the
    difference of pooled rates (framing minus reference). Under the null hypothesis that
    framing has no effect, which framing label an item of a base claim carries is
    arbitrary: the design deals the framings of a base claim to different rater batches at
    random. So the null distribution permutes the framing labels of each base claim's items
    among themselves, independently per base claim and the same permutation for every
    framing's statistic; the items keep their raters (their batch), so rater and claim
    effects stay where they were. Vectorised: one `[permutations, claims, framings]`
    gather. Two-sided p = (1 + #{|T*| >= |T|}) / (permutations + 1); Holm-adjusted
    across the framings tested.
    """
    base_claim = np.asarray(base_claim)
    framing = np.asarray(framing)
    accept = np.asarray(accept, dtype=float)
    result = {"method": "permutation of framing labels within base claims", "permutations": permutations,
              "reference_framing": reference, "rows": [], "reason": ""}
    if reference not in framings:
        result["reason"] = f"no '{reference}' framing to compare with"
        return result
    codes = pd.Categorical(framing, categories=framings).codes
    keep = codes >= 0
    claim_codes, claim_levels = pd.factorize(base_claim[keep])
    codes, accept = codes[keep], accept[keep]
    n_claims, n_framings = len(claim_levels), len(framings)
    cell = claim_codes * n_framings + codes
    yes = np.bincount(cell, weights=accept, minlength=n_claims * n_framings).reshape(n_claims, n_framings)
    total = np.bincount(cell, minlength=n_claims * n_framings).reshape(n_claims, n_framings).astype(float)
    ref = framings.index(reference)
    rate = _ratio(yes.sum(axis=0), total.sum(axis=0))
    observed = rate - rate[ref]
    p_values = np.full(n_framings, np.nan)
    if permutations and n_claims:
        exceed = np.zeros(n_framings)
        block = max(1, min(permutations, 2_000_000 // max(1, n_claims * n_framings)))
        done = 0
        while done < permutations:
            size = min(block, permutations - done)
            order = np.argsort(rng.random((size, n_claims, n_framings)), axis=2)
            permuted_yes = np.take_along_axis(np.broadcast_to(yes, order.shape), order, axis=2).sum(axis=1)
            permuted_total = np.take_along_axis(np.broadcast_to(total, order.shape), order, axis=2).sum(axis=1)
            permuted = _ratio(permuted_yes, permuted_total)
            statistic = permuted - permuted[:, ref:ref + 1]
            # A permutation that leaves a framing without judgments gives no statistic: it
            # counts as at least as extreme (conservative).
            with np.errstate(invalid="ignore"):
                extreme = ~(np.abs(statistic) < np.abs(observed) - 1e-12)
            exceed += extreme.sum(axis=0)
            done += size
        p_values = (1 + exceed) / (permutations + 1)
    elif not permutations:
        result["reason"] = "switched off (0 permutations)"
    else:
        result["reason"] = "no judgments to test"
    tested = [f for f in range(n_framings) if f != ref and total[:, f].sum() > 0 and total[:, ref].sum() > 0]
    adjusted = holm_adjust([float(p_values[f]) for f in tested]) if permutations else [None] * len(tested)
    holm = dict(zip(tested, adjusted))
    for f, name in enumerate(framings):
        if f == ref:
            continue
        present = f in holm
        result["rows"].append({
            "framing": name,
            "n": int(total[:, f].sum()),
            "n_reference": int(total[:, ref].sum()),
            "claims": int((total[:, f] > 0).sum()),
            "rate": rate[f],
            "reference_rate": rate[ref],
            "difference": observed[f] if present else None,
            "p_value": float(p_values[f]) if present and permutations else None,
            "p_value_holm": holm.get(f),
        })
    return result


def _framing_tests(claims: pd.DataFrame, framings: list[str], options: AnalysisOptions) -> dict:
    false = claims[~claims["true_claim"]]
    # Its own stream, so the permutations never shift the bootstrap's draws.
    rng = np.random.default_rng([options.seed, 1])
    result = permutation_framing_test(false["base_claim"].to_numpy(dtype=str), false["framing"].to_numpy(dtype=str),
                                      false["accept"].to_numpy(dtype=bool), framings, REFERENCE_FRAMING,
                                      options.permutations, rng)
    result["statistic"] = "false acceptance rate, framing minus original"
    return result


# --- Tests of framing x response -----------------------------------------------------------

def chi_square_test(table: np.ndarray, row_labels: list[str]) -> dict:
    """Pearson's chi-square test of independence on `table: int[framings, 2]` (Yes, No).

    No Yates correction (it only applies to 2x2 tables and would make a two-framing study
    report a different statistic from the same test with six). Rows and columns with no
    observations are dropped first; a table left with fewer than two of either is reported
    as not testable, with the reason.
    """
    table = np.asarray(table, dtype=float)
    keep_rows = table.sum(axis=1) > 0
    keep_columns = table.sum(axis=0) > 0
    result = {
        "table": {label: {"yes": int(row[0]), "no": int(row[1])} for label, row in zip(row_labels, table)},
        "n": int(table.sum()),
        "statistic": None, "dof": None, "p_value": None, "cramers_v": None,
        "min_expected": None, "cells_expected_below_5": None, "reason": "",
    }
    if keep_rows.sum() < 2:
        result["reason"] = "fewer than two framings with judgments"
        return result
    if keep_columns.sum() < 2:
        result["reason"] = ("every judgment has the same response, so the response cannot "
                            "depend on framing")
        return result
    reduced = table[keep_rows][:, keep_columns]
    statistic, p_value, dof, expected = stats.chi2_contingency(reduced, correction=False)
    n = reduced.sum()
    result.update({
        "statistic": float(statistic),
        "dof": int(dof),
        "p_value": float(p_value),
        "cramers_v": float(math.sqrt(statistic / (n * (min(reduced.shape) - 1)))),
        "min_expected": float(expected.min()),
        "cells_expected_below_5": int((expected < 5).sum()),
    })
    return result


def _chi_square_tests(claims: pd.DataFrame, framings: list[str]) -> dict:
    out = {}
    for key, is_true in (("false_claims", False), ("true_claims", True)):
        subset = claims[claims["true_claim"] == is_true]
        yes = subset.groupby("framing")["accept"].sum().reindex(framings, fill_value=0)
        total = subset.groupby("framing").size().reindex(framings, fill_value=0)
        table = np.column_stack([yes.to_numpy(), (total - yes).to_numpy()])
        out[key] = chi_square_test(table, framings)
    return out


def holm_adjust(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment; None entries are skipped and stay None."""
    present = [(p, i) for i, p in enumerate(p_values) if p is not None and not math.isnan(p)]
    adjusted: list[float | None] = [None] * len(p_values)
    m = len(present)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def _familiarity_tests(claims: pd.DataFrame, framings: list[str], options: AnalysisOptions) -> dict:
    levels = options.familiarity_levels
    subset = claims[~claims["true_claim"] & claims["familiarity"].isin(levels)]
    rows = []
    for framing in framings:
        accepted = subset.loc[subset["framing"] == framing, "accept"]
        n, k = int(len(accepted)), int(accepted.sum())
        row = {"framing": framing, "n": n, "false_acceptances": k, "false_acceptance_rate": None,
               "ci_low": None, "ci_high": None, "p_value": None}
        if n:
            test = stats.binomtest(k, n, 0.5, alternative="two-sided")
            interval = test.proportion_ci(confidence_level=options.confidence_level, method="exact")
            row.update({"false_acceptance_rate": k / n, "ci_low": float(interval.low),
                        "ci_high": float(interval.high), "p_value": float(test.pvalue)})
        rows.append(row)
    for row, adjusted in zip(rows, holm_adjust([row["p_value"] for row in rows])):
        row["p_value_holm"] = adjusted
    return {"levels": list(levels), "rows": rows}


# --- Agreement: Krippendorff's alpha ----------------------------------------------------------

def krippendorff_alpha_nominal(units, values) -> dict:
    """Krippendorff's alpha for nominal data, from one (unit, value) pair per rating.

    Built from the coincidence matrix (Krippendorff 2011, "Computing Krippendorff's
    Alpha-Reliability"): a unit rated m_u >= 2 times adds n_uc * n_uk / (m_u - 1) to
    o_ck for c != k and n_uc * (n_uc - 1) / (m_u - 1) to o_cc; units rated once are not
    pairable and drop out. With n_c the margins and n their sum,
    alpha = 1 - (n - 1) * (n - sum_c o_cc) / (n^2 - sum_c n_c^2).
    Missing values (None/NaN) are simply absent ratings.
    """
    frame = pd.DataFrame({"unit": list(units) if not isinstance(units, pd.Series) else units.to_numpy(),
                          "value": list(values) if not isinstance(values, pd.Series) else values.to_numpy()})
    frame = frame.dropna()
    result = {"alpha": None, "units": 0, "pairable_values": 0, "categories": 0, "reason": ""}
    if frame.empty:
        result["reason"] = "no ratings"
        return result
    unit_codes, unit_levels = pd.factorize(frame["unit"])
    value_codes, value_levels = pd.factorize(frame["value"])
    counts = np.bincount(unit_codes * len(value_levels) + value_codes,
                         minlength=len(unit_levels) * len(value_levels)
                         ).reshape(len(unit_levels), len(value_levels)).astype(float)  # n_uc: [units, categories]
    m = counts.sum(axis=1)
    pairable = m >= 2
    counts, m = counts[pairable], m[pairable]
    result["units"] = int(pairable.sum())
    result["pairable_values"] = int(m.sum())
    if not pairable.any():
        result["reason"] = "no item was rated by two or more participants"
        return result
    result["categories"] = int((counts.sum(axis=0) > 0).sum())
    diagonal = ((counts * (counts - 1)).sum(axis=1) / (m - 1)).sum()  # sum_c o_cc
    margins = counts.sum(axis=0)  # n_c: with pairable units only, the margins equal the counts
    n = margins.sum()
    expected = n * n - (margins ** 2).sum()
    if expected == 0:
        result["reason"] = "every pairable rating is the same value, so agreement is undefined"
        return result
    result["alpha"] = float(1 - (n - 1) * (n - diagonal) / expected)
    return result


def _agreement(claims: pd.DataFrame, framings: list[str]) -> dict:
    overall = krippendorff_alpha_nominal(claims["item"], claims["accept"])
    by_framing = []
    for framing in framings:
        subset = claims[claims["framing"] == framing]
        by_framing.append({"framing": framing, **krippendorff_alpha_nominal(subset["item"], subset["accept"])})
    return {"overall": overall, "by_framing": by_framing}


# --- Mixed-effects logistic regression -----------------------------------------------------

def _mixed_model(claims: pd.DataFrame, framings: list[str], options: AnalysisOptions,
                 progress=None) -> dict:
    """Acceptance ~ framing * truth + (1 | participant) + (1 | base claim), by NUTS
    (`annotation.analysis.mixed_model`); `reason` says why where it was not fitted."""
    from annotation.analysis.mixed_model import fit_mixed_model, not_fitted

    if not options.mixed_model:
        return not_fitted(claims, "switched off")
    return fit_mixed_model(claims, framings, confidence_level=options.confidence_level,
                           seed=options.seed, reference=REFERENCE_FRAMING, progress=progress)


# --- Distributions ---------------------------------------------------------------------------

def _confidence_distribution(claims: pd.DataFrame, framings: list[str]) -> list[dict]:
    rows = []
    rated = claims.dropna(subset=["confidence"])
    for framing in framings:
        for truth, is_true in (("true", True), ("false", False)):
            subset = rated[(rated["framing"] == framing) & (rated["true_claim"] == is_true)]
            total = len(subset)
            counts = subset["confidence"].value_counts()
            for level in range(1, 6):
                n = int(counts.get(float(level), 0))
                rows.append({"framing": framing, "truth": truth, "confidence": level, "n": n,
                             "proportion": n / total if total else None})
    return rows


# --- The entry point -------------------------------------------------------------------------

def fit_report_model(table: pd.DataFrame, options: AnalysisOptions, progress=None) -> dict:
    """The report's mixed-model entry alone, from the same table, exclusions and framings as
    `analyze` (a worker fits it for the report page: `annotation.analysis.model_fits`)."""
    prepared = _prepare(table)
    claims, _, _ = _apply_exclusions(prepared, options)
    framings = _framing_order(prepared.claims["framing"].unique())
    return _mixed_model(claims, framings, replace(options, mixed_model=True), progress)


def analyze(table: pd.DataFrame, options: AnalysisOptions | None = None, progress=None) -> AnalysisResult:
    """The full analysis of a tidy judgment table (see the module docstring).

    `table` needs the tidy columns of method.md section 2.4 (`DataPoint_ID`, `Task_Group_ID`
    and `text` may be absent); the platform columns `participant_status`, `excluded`,
    `attention_passed`, `is_attention_check` and `response_time_ms` are optional and feed
    the exclusion rules. Raises `ValueError` naming the row, column and value for bad input.
    `progress(fraction, stage)`, if given, hears how the mixed model's sampling goes.
    """
    options = options or AnalysisOptions()
    prepared = _prepare(table)
    claims, flow, notes = _apply_exclusions(prepared, options)
    framings = _framing_order(prepared.claims["framing"].unique())
    rng = np.random.default_rng(options.seed)
    summaries, bootstrap_notes = _framing_summaries(claims, framings, options, rng)
    notes.extend(bootstrap_notes)
    counts = {
        "rows": int(len(table)),
        "attention_check_rows": prepared.attention_rows,
        "judgments": int(len(prepared.claims)),
        "participants": int(prepared.facts.participants.shape[0]),
        "judgments_excluded": int(len(prepared.claims) - len(claims)),
        "participants_excluded": int(sum(rule["participants_removed"] for rule in flow)),
        "judgments_analysed": int(len(claims)),
        "participants_analysed": int(claims["participant"].nunique()),
        "items": int(claims["item"].nunique()),
        "base_claims": int(claims["base_claim"].nunique()),
        "framings": len(framings),
    }
    if not len(claims):
        notes.append("No judgments are left to analyse.")
    return AnalysisResult(
        options=options,
        counts=counts,
        exclusions=flow,
        framings=summaries,
        framing_tests=_framing_tests(claims, framings, options),
        chi_square=_chi_square_tests(claims, framings),
        familiarity_tests=_familiarity_tests(claims, framings, options),
        agreement=_agreement(claims, framings),
        mixed_model=_mixed_model(claims, framings, options, progress),
        confidence_distribution=_confidence_distribution(claims, framings),
        notes=notes,
    )
