"""The default two-way cluster-robust interval and the pigeonhole (two-way) bootstrap of
annotation/analysis/statistics.py `_framing_summaries`, against plain-loop re-implementations:
the CGM variance V = P/(P-1) V_P + C/(C-1) V_C - V_PC with a t quantile on min(P, C) - 1 df,
and a bootstrap drawing base claims within truth value and participants, resample by resample
with the same random draws."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from annotation.analysis.options import AnalysisOptions
from annotation.analysis.statistics import (
    DIFFERENCE_STATISTICS,
    STATISTIC_NAMES,
    _framing_summaries,
)
from tests.mutation.statistic_definitions import qualifies

FRAMINGS = ["original", "authoritative", "emotional"]
RATE = {"accuracy", "accuracy_true", "accuracy_false", "acceptance_rate", "false_acceptance_rate",
        "false_rejection_rate"}


def claims(seed=3, n=120, participants=(3, 10, 2, 21, 1, 7), base_claims=10, framings=FRAMINGS):
    """Integer participant ids and base claims: they sort differently as strings and numbers.
    Each base claim has one truth value."""
    rng = np.random.default_rng(seed)
    confidence = rng.integers(1, 6, n).astype(float)
    confidence[rng.random(n) < 0.15] = np.nan
    familiarity = rng.integers(1, 6, n).astype(float)
    familiarity[rng.random(n) < 0.15] = np.nan
    base = rng.integers(0, base_claims, n)
    truth = rng.random(base_claims) < 0.4
    truth[0], truth[-1] = False, True
    return pd.DataFrame({
        "participant": rng.choice(list(participants), n),
        "framing": rng.choice(framings, n),
        "true_claim": truth[base],
        "accept": rng.random(n) < 0.55,
        "confidence": confidence,
        "familiarity": familiarity,
        "item": rng.integers(0, 30, n),
        "base_claim": base * 7 + 1,
    })


def rows_of(table, framing):
    return [row for _, row in table.iterrows() if framing == "all" or row["framing"] == framing]


def influences(table, framing, name):
    """(estimate, {(participant, claim): contribution}) of the linearised ratio estimator."""
    rows = rows_of(table, framing)
    num = den = 0.0
    for row in rows:
        value, counts = qualifies(row, name)
        num += value
        den += counts
    if den == 0:
        return math.nan, {}
    theta = num / den
    cells = {}
    for row in rows:
        value, counts = qualifies(row, name)
        key = (row["participant"], row["base_claim"])
        cells[key] = cells.get(key, 0.0) + (value - theta * counts) / den
    return theta, cells


def cgm_interval(estimate, cells, level):
    """Two-way cluster-robust t interval, written out as loops."""
    by_p, by_c, v_pc = {}, {}, 0.0
    for (p, c), e in cells.items():
        if e != 0:
            by_p[p] = by_p.get(p, 0.0) + e
            by_c[c] = by_c.get(c, 0.0) + e
        v_pc += e * e
    n_p = len({p for (p, c), e in cells.items() if e != 0})
    n_c = len({c for (p, c), e in cells.items() if e != 0})
    if math.isnan(estimate) or n_p < 2 or n_c < 2:
        return math.nan, math.nan
    v_p = sum(x * x for x in by_p.values()) * n_p / (n_p - 1)
    v_c = sum(x * x for x in by_c.values()) * n_c / (n_c - 1)
    v = v_p + v_c - v_pc
    if v <= 0:
        v = max(v_p, v_c)
    half = stats.t.ppf(1 - (1 - level) / 2, min(n_p, n_c) - 1) * math.sqrt(v)
    return estimate - half, estimate + half


def clip(x, lo, hi):
    return x if math.isnan(x) else min(max(x, lo), hi)


def same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12)


def check_two_way(table, framings, level=0.95):
    rows, notes = _framing_summaries(table, framings, AnalysisOptions(mixed_model=False, confidence_level=level),
                                     np.random.default_rng(0))
    assert [row["framing"] for row in rows] == framings + ["all"]
    missing = False
    for row in rows:
        g = row["framing"]
        for name in STATISTIC_NAMES:
            theta, cells = influences(table, g, name)
            lo, hi = cgm_interval(theta, cells, level)
            bounds = (0.0, 1.0) if name in RATE else (1.0, 5.0)
            got = row[name]
            assert same(got["estimate"], theta), (g, name)
            assert same(got["ci_low"], clip(lo, *bounds)), (g, name, got, lo)
            assert same(got["ci_high"], clip(hi, *bounds)), (g, name, got, hi)
            missing |= not math.isnan(theta) and math.isnan(lo)
        if g in ("all", "original") or "original" not in framings:
            assert row["difference_from_original"] == {}
            continue
        for name in DIFFERENCE_STATISTICS:
            theta_g, cells_g = influences(table, g, name)
            theta_r, cells_r = influences(table, "original", name)
            paired = {key: cells_g.get(key, 0.0) - cells_r.get(key, 0.0) for key in set(cells_g) | set(cells_r)}
            d = theta_g - theta_r
            lo, hi = cgm_interval(d, paired, level)
            span = 1.0 if name in RATE else 4.0
            got = row["difference_from_original"][name]
            assert same(got["estimate"], d), (g, name)
            assert same(got["ci_low"], clip(lo, -span, span)), (g, name, got, lo)
            assert same(got["ci_high"], clip(hi, -span, span)), (g, name, got, hi)
    two_way_note = [note for note in notes if "two-way interval needs at least two participants" in note]
    assert len(two_way_note) == (1 if missing else 0), notes
    if missing:
        assert two_way_note[0] == ("Some statistics have no interval: the two-way interval needs at least two "
                                   "participants and two base claims contributing to the statistic.")
    assert not [note for note in notes if "bootstrap" in note]
    return rows, notes


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_two_way_interval_matches_the_textbook_variance(level):
    """Guards against a wrong influence (sign, scale, estimate), wrong clusters (cells split by
    participant and claim), the variance of the differences not being paired within cells, a
    wrong df or quantile, intervals reshaped into the wrong rows, or the default interval not
    being the two-way one."""
    check_two_way(claims(), FRAMINGS, level)


def test_two_way_interval_with_a_statistic_undefined_in_a_framing():
    """A framing without familiarity answers: its familiarity means are undefined (NaN, no
    warning from 0/0 in the influence), and no note: an undefined statistic is not one that
    lacks an interval. Guards against the note looking at the undefined statistics, and
    against warnings from the influence's 0/0 (pytest.ini turns RuntimeWarnings into errors)."""
    table = claims(seed=11)
    table.loc[table["framing"] == "emotional", "familiarity"] = np.nan
    rows, notes = check_two_way(table, FRAMINGS)
    assert math.isnan(rows[2]["mean_familiarity"]["estimate"])
    assert notes == []


def test_two_way_interval_without_gaps_has_no_note():
    """Every statistic defined and with two clusters of each kind: no note."""
    rng = np.random.default_rng(2)
    rows = []
    for p in range(4):
        for c in range(6):
            for framing in FRAMINGS:
                rows.append({"participant": p, "framing": framing, "true_claim": c % 2 == 0,
                             "accept": bool(rng.random() < 0.5), "confidence": float(rng.integers(1, 6)),
                             "familiarity": float(rng.integers(1, 6)), "item": c, "base_claim": c})
    table = pd.DataFrame(rows)
    _, notes = check_two_way(table, FRAMINGS)
    assert notes == []


def test_two_way_interval_with_one_base_claim_or_one_participant():
    """One base claim (or one participant): estimates still right, no intervals, the note.
    Guards against the cell code using a factor other than max(1, number of claims)."""
    table = claims(seed=4)
    one_claim = table.assign(base_claim=5)
    rows, notes = check_two_way(one_claim, FRAMINGS)
    assert all(math.isnan(row["accuracy"]["ci_low"]) for row in rows) and len(notes) == 1
    one_participant = table.assign(participant=9)
    rows, notes = check_two_way(one_participant, FRAMINGS)
    assert all(math.isnan(row["accuracy"]["ci_low"]) for row in rows) and len(notes) == 1


def test_two_way_interval_without_the_original_framing_or_with_one_missing():
    """No reference framing: no differences; a framing with no judgments at all: NaN row."""
    table = claims(seed=6)
    check_two_way(table[table["framing"] != "original"], FRAMINGS[1:])
    check_two_way(table[table["framing"] != "emotional"], FRAMINGS)


def test_empty_table_has_no_intervals_and_no_error():
    table = claims().iloc[:0]
    rows, notes = _framing_summaries(table, FRAMINGS, AnalysisOptions(mixed_model=False), np.random.default_rng(0))
    assert notes == [] and all(math.isnan(row["accuracy"]["estimate"]) for row in rows)


# --- The pigeonhole bootstrap ------------------------------------------------------------

def pigeonhole_reference(table, framings, resamples, seed, level):
    """Resample by resample: base claims drawn within truth value (false ones first, in the
    order of their names as strings), then participants (same order); each judgment weighted
    by its participant's draws times its claim's draws."""
    rng = np.random.default_rng(seed)
    participants = sorted({str(p) for p in table["participant"]})
    base = sorted({str(c) for c in table["base_claim"]})
    truth = {str(c): bool(t) for c, t in zip(table["base_claim"], table["true_claim"])}
    strata = [[c for c in base if truth[c] == t] for t in (False, True)]
    claim_w = np.zeros((resamples, len(base)))
    for stratum in strata:
        if stratum:
            draws = rng.multinomial(len(stratum), np.full(len(stratum), 1 / len(stratum)), size=resamples)
            for j, c in enumerate(stratum):
                claim_w[:, base.index(c)] = draws[:, j]
    part_w = rng.multinomial(len(participants), np.full(len(participants), 1 / len(participants)), size=resamples)
    groups = framings + ["all"]
    records = [(str(r["participant"]), str(r["base_claim"]), r["framing"], r) for _, r in table.iterrows()]
    samples = {}
    for b in range(resamples):
        for g in groups:
            for name in STATISTIC_NAMES:
                num = den = 0.0
                for p, c, framing, row in records:
                    if g != "all" and framing != g:
                        continue
                    value, counts = qualifies(row, name)
                    w = part_w[b, participants.index(p)] * claim_w[b, base.index(c)]
                    num += w * value
                    den += w * counts
                samples.setdefault((g, name), []).append(num / den if den > 0 else math.nan)

    def interval(values, lo, hi):
        values = np.array(values)
        finite = values[~np.isnan(values)]
        if not len(finite):
            return math.nan, math.nan
        low, high = np.quantile(finite, [(1 - level) / 2, 1 - (1 - level) / 2])
        return min(max(low, lo), hi), min(max(high, lo), hi)

    out = {}
    for (g, name), values in samples.items():
        bounds = (0.0, 1.0) if name in RATE else (1.0, 5.0)
        out[(g, name)] = interval(values, *bounds)
        if name in DIFFERENCE_STATISTICS and g not in ("all", "original") and "original" in framings:
            span = 1.0 if name in RATE else 4.0
            paired = np.array(values) - np.array(samples[("original", name)])
            out[(g, "diff", name)] = interval(paired, -span, span)
    return out


def test_pigeonhole_bootstrap_resample_by_resample():
    """Guards against strata not by truth value (or one stratum twice), weights divided or
    not multiplied per cell, participants in another order than their names as strings, the
    wrong number of draws, or the bootstrap not running for two-way-bootstrap."""
    table = claims(seed=8, n=60, base_claims=6)
    resamples, level = 60, 0.9
    rows, notes = _framing_summaries(
        table, FRAMINGS, AnalysisOptions(mixed_model=False, interval="two-way-bootstrap",
                                         bootstrap_resamples=resamples, confidence_level=level),
        np.random.default_rng(17))
    expected = pigeonhole_reference(table, FRAMINGS, resamples, 17, level)
    for row in rows:
        g = row["framing"]
        for name in STATISTIC_NAMES:
            lo, hi = expected[(g, name)]
            assert same(row[name]["ci_low"], lo), (g, name)
            assert same(row[name]["ci_high"], hi), (g, name)
        for name, got in row["difference_from_original"].items():
            lo, hi = expected[(g, "diff", name)]
            assert same(got["ci_low"], lo) and same(got["ci_high"], hi), (g, name)
    assert not [note for note in notes if "Too few" in note or "two-way interval" in note]


@pytest.mark.parametrize("participants, base_claims, intervals", [
    ((1, 2), 2, True), ((1,), 4, False), ((1, 2, 3), 1, False)])
def test_pigeonhole_bootstrap_needs_two_participants_and_two_claims(participants, base_claims, intervals):
    """Boundaries: two participants and two base claims are enough; fewer gives the note."""
    table = claims(seed=1, n=40, participants=participants, base_claims=base_claims)
    if base_claims == 2:
        table["true_claim"] = table["base_claim"] == table["base_claim"].min()
    rows, notes = _framing_summaries(
        table, FRAMINGS, AnalysisOptions(mixed_model=False, interval="two-way-bootstrap", bootstrap_resamples=30),
        np.random.default_rng(0))
    has = not math.isnan(rows[-1]["accuracy"]["ci_low"])
    assert has == intervals
    assert ("Too few participants or base claims for bootstrap intervals." in notes) == (not intervals)


def test_participant_bootstrap_ignores_how_judgments_split_into_base_claims():
    """The participant bootstrap resamples participants only: with one base claim it gives
    the same intervals as with many. Guards against cells (participant x base claim) mapped
    back to the wrong participant when there is one base claim (a cell code factor of 2)."""
    table = claims(seed=9, n=80)
    options = AnalysisOptions(mixed_model=False, interval="participant-bootstrap", bootstrap_resamples=40)
    many, _ = _framing_summaries(table, FRAMINGS, options, np.random.default_rng(4))
    one, _ = _framing_summaries(table.assign(base_claim=5), FRAMINGS, options, np.random.default_rng(4))
    for a, b in zip(many, one):
        for name in STATISTIC_NAMES:
            assert same(a[name]["ci_low"], b[name]["ci_low"]) and same(a[name]["ci_high"], b[name]["ci_high"])
        for name, got in a["difference_from_original"].items():
            assert same(got["ci_low"], b["difference_from_original"][name]["ci_low"])


def test_a_tiny_study_has_its_intervals_clipped_to_what_each_statistic_can_take():
    """Two participants and two base claims: one df, t = 12.7, intervals far wider than the
    range. Rates stay in [0, 1], means in [1, 5], differences of rates in [-1, 1] and of
    means in [-4, 4]. Guards against a difference of means clipped to +-(5 + 1) instead of
    +-(5 - 1)."""
    rows = []
    for p, c, framing, accept, confidence in [
            (1, 1, "original", True, 1.0), (1, 2, "authoritative", False, 5.0), (2, 1, "authoritative", True, 5.0),
            (2, 2, "original", False, 1.0), (1, 1, "authoritative", False, 4.0), (2, 2, "authoritative", True, 2.0),
            (1, 2, "original", True, 5.0), (2, 1, "original", True, 2.0)]:
        rows.append({"participant": p, "framing": framing, "true_claim": c == 1, "accept": accept,
                     "confidence": confidence, "familiarity": 6.0 - confidence, "item": c, "base_claim": c})
    table = pd.DataFrame(rows)
    result, _ = check_two_way(table, FRAMINGS[:2])
    effect = result[1]["difference_from_original"]["mean_confidence"]
    assert (effect["ci_low"], effect["ci_high"]) == (-4.0, 4.0)
    assert (result[0]["accuracy"]["ci_low"], result[0]["accuracy"]["ci_high"]) == (0.0, 1.0)
