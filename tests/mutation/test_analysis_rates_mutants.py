"""Per-framing rates and their participant-bootstrap intervals (annotation/analysis/statistics.py,
_framing_summaries), against a recount judgment by judgment and a bootstrap written out
resample by resample."""
import math

import numpy as np
import pandas as pd
import pytest

from annotation.analysis.options import AnalysisOptions
from annotation.analysis.statistics import (
    DIFFERENCE_STATISTICS,
    STATISTIC_NAMES,
    _framing_summaries,
    _ratio,
    _statistic_columns,
)
from tests.mutation.statistic_definitions import qualifies

FRAMINGS = ["original", "authoritative", "emotional"]
# These tests pin the participant bootstrap, written out resample by resample; the default
# two-way interval has its own checks in tests/annotation/test_analysis.py.
PARTICIPANT_BOOTSTRAP = "participant-bootstrap"


def claims(seed=5, n=90, participants=7):
    rng = np.random.default_rng(seed)
    confidence = rng.integers(1, 6, n).astype(float)
    confidence[rng.random(n) < 0.15] = np.nan
    familiarity = rng.integers(1, 6, n).astype(float)
    familiarity[rng.random(n) < 0.15] = np.nan
    return pd.DataFrame({
        # Names that sort differently as strings and as numbers.
        "participant": rng.choice([f"p{i}" for i in (3, 10, 2, 21, 1, 7, 30)][:participants], n),
        "framing": rng.choice(FRAMINGS, n, p=[0.4, 0.35, 0.25]),
        "true_claim": rng.random(n) < 0.35,
        "accept": rng.random(n) < 0.55,
        "confidence": confidence,
        "familiarity": familiarity,
        "item": rng.integers(0, 25, n),
        "base_claim": rng.integers(0, 12, n).astype(str),
    })


def weighted_rate(rows, name, weight_of):
    num = den = 0.0
    for row in rows:
        value, counts = qualifies(row, name)
        if counts:
            w = weight_of(row["participant"])
            num += w * value
            den += w
    return num / den if den > 0 else math.nan


def test_estimates_and_counts_match_a_recount():
    """Guards against a rate with the wrong numerator or denominator (false acceptance over
    all claims, false rejection over false claims), a mean that counts missing answers, the
    `all` row not summing every framing, or a count taken from the wrong rows."""
    table = claims()
    rows, _ = _framing_summaries(table, FRAMINGS, AnalysisOptions(interval=PARTICIPANT_BOOTSTRAP, bootstrap_resamples=0),
                                 np.random.default_rng(0))
    assert [row["framing"] for row in rows] == FRAMINGS + ["all"]
    records = table.to_dict("records")
    for row in rows:
        group = records if row["framing"] == "all" else [r for r in records if r["framing"] == row["framing"]]
        part = table if row["framing"] == "all" else table[table["framing"] == row["framing"]]
        assert row["n"] == len(group)
        assert row["n_true"] == sum(r["true_claim"] for r in group)
        assert row["n_false"] == sum(not r["true_claim"] for r in group)
        assert row["participants"] == part["participant"].nunique()
        assert row["items"] == part["item"].nunique()
        for name in STATISTIC_NAMES:
            cell = row[name]
            assert cell["estimate"] == pytest.approx(weighted_rate(group, name, lambda p: 1.0)), (row["framing"], name)
            assert cell["n"] == sum(qualifies(r, name)[1] for r in group), (row["framing"], name)
            assert math.isnan(cell["ci_low"]) and math.isnan(cell["ci_high"])


def test_differences_from_the_original_framing():
    table = claims()
    rows, _ = _framing_summaries(table, FRAMINGS, AnalysisOptions(interval=PARTICIPANT_BOOTSTRAP, bootstrap_resamples=0),
                                 np.random.default_rng(0))
    by = {row["framing"]: row for row in rows}
    assert by["original"]["difference_from_original"] == {}
    assert by["all"]["difference_from_original"] == {}
    for framing in FRAMINGS[1:]:
        differences = by[framing]["difference_from_original"]
        assert list(differences) == list(DIFFERENCE_STATISTICS)
        for name, cell in differences.items():
            assert cell["estimate"] == pytest.approx(by[framing][name]["estimate"] - by["original"][name]["estimate"])
            assert math.isnan(cell["ci_low"]) and math.isnan(cell["ci_high"])


def test_without_the_original_framing_there_are_no_differences():
    table = claims()
    table = table[table["framing"] != "original"]
    rows, _ = _framing_summaries(table, FRAMINGS[1:], AnalysisOptions(interval=PARTICIPANT_BOOTSTRAP, bootstrap_resamples=0),
                                 np.random.default_rng(0))
    assert all(row["difference_from_original"] == {} for row in rows)


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_intervals_are_the_percentiles_of_a_participant_bootstrap(level):
    """Guards against resampling judgments instead of participants, weighting a resample
    wrongly, the wrong tails, or a difference interval that is not paired (both framings'
    rates from the same resample of participants)."""
    table = claims()
    resamples, seed = 300, 11
    rows, _ = _framing_summaries(table, FRAMINGS, AnalysisOptions(interval=PARTICIPANT_BOOTSTRAP, bootstrap_resamples=resamples,
                                                                   confidence_level=level),
                                     np.random.default_rng(seed))
    participants = sorted(table["participant"].unique())
    draws = np.random.default_rng(seed).multinomial(
        len(participants), [1 / len(participants)] * len(participants), size=resamples)
    records = table.to_dict("records")
    groups = {f: [r for r in records if r["framing"] == f] for f in FRAMINGS}
    groups["all"] = records
    tail = (1 - level) / 2

    def rates(framing, name):
        return np.array([weighted_rate(groups[framing], name,
                                       lambda p, d=draw: d[participants.index(p)]) for draw in draws])

    def interval(samples):
        kept = samples[~np.isnan(samples)]
        return np.quantile(kept, [tail, 1 - tail])

    by = {row["framing"]: row for row in rows}
    for framing in ("authoritative", "all"):
        for name in ("false_acceptance_rate", "mean_familiarity_true", "accuracy_false"):
            low, high = interval(rates(framing, name))
            assert by[framing][name]["ci_low"] == pytest.approx(low), (framing, name)
            assert by[framing][name]["ci_high"] == pytest.approx(high), (framing, name)
    for name in ("false_acceptance_rate", "mean_confidence"):
        low, high = interval(rates("emotional", name) - rates("original", name))
        cell = by["emotional"]["difference_from_original"][name]
        assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((low, high)), name


def test_statistics_undefined_in_some_resamples_are_noted():
    table = claims()
    # One participant alone judged the only true emotional claims.
    table.loc[table["framing"] == "emotional", "true_claim"] = False
    table = pd.concat([table, pd.DataFrame([{"participant": "p99", "framing": "emotional", "true_claim": True,
                                             "accept": True, "confidence": 3.0, "familiarity": 2.0,
                                             "item": 99}])], ignore_index=True)
    rows, notes = _framing_summaries(table, FRAMINGS, AnalysisOptions(interval=PARTICIPANT_BOOTSTRAP, bootstrap_resamples=200),
                                     np.random.default_rng(1))
    assert len(notes) == 1
    assert notes[0].startswith("Some statistics were undefined in part of the bootstrap resamples (no "
                               "judgment of that kind drawn); their intervals use the ")
    assert notes[0].endswith(" of 200 resamples where they are defined.")
    used = notes[0].split("use the ")[1].split(" of 200")[0]
    low, _, high = used.partition(" to ")
    assert 0 < int(low) < 200 and (not high or int(low) < int(high) < 200)
    emotional = next(row for row in rows if row["framing"] == "emotional")
    assert not math.isnan(emotional["accuracy_true"]["ci_low"])


def test_one_participant_gets_no_intervals_and_a_note():
    table = claims(participants=1)
    rows, notes = _framing_summaries(table, FRAMINGS, AnalysisOptions(interval=PARTICIPANT_BOOTSTRAP, bootstrap_resamples=50),
                                     np.random.default_rng(0))
    assert notes == ["Too few participants or base claims for bootstrap intervals."]
    assert all(math.isnan(row["accuracy"]["ci_low"]) for row in rows)
    rows, notes = _framing_summaries(table, FRAMINGS, AnalysisOptions(interval=PARTICIPANT_BOOTSTRAP, bootstrap_resamples=0),
                                     np.random.default_rng(0))
    assert notes == []


def test_statistic_columns_and_ratio():
    table = claims(n=12)
    value, counts = _statistic_columns(table)
    assert value.shape == counts.shape == (12, len(STATISTIC_NAMES))
    for j, row in enumerate(table.to_dict("records")):
        for s, name in enumerate(STATISTIC_NAMES):
            expected_value, expected_counts = qualifies(row, name)
            assert counts[j, s] == float(expected_counts)
            assert value[j, s] == pytest.approx(expected_value)
    out = _ratio(np.array([1.0, 2.0, 3.0]), np.array([2.0, 0.0, -1.0]))
    assert out[0] == 0.5 and math.isnan(out[1]) and math.isnan(out[2])
    assert _ratio(np.ones((2, 1)), np.array([4.0, 8.0])).shape == (2, 2)


def draws_of(seed, participants, resamples):
    """How often each participant (sorted by name) is drawn in each resample."""
    return np.random.default_rng(seed).multinomial(
        participants, [1 / participants] * participants, size=resamples)


def test_two_participants_are_enough_for_intervals():
    """Guards against the bootstrap needing more than two participants."""
    table = claims(participants=2)
    rows, notes = _framing_summaries(table, FRAMINGS, AnalysisOptions(interval=PARTICIPANT_BOOTSTRAP, bootstrap_resamples=50),
                                     np.random.default_rng(0))
    assert "Too few participants or base claims for bootstrap intervals." not in notes
    everything = rows[-1]
    assert not math.isnan(everything["accuracy"]["ci_low"])
    assert everything["accuracy"]["ci_low"] <= everything["accuracy"]["estimate"] <= everything["accuracy"]["ci_high"]


def test_many_participants_are_resampled_in_blocks_that_add_up_to_the_resamples():
    """Guards against the blocks of resamples (bounded memory for large studies) not adding
    up to exactly the resamples asked for, never ending, or having a fractional size: with
    600 participants the 2,000 resamples are drawn in two blocks, and the intervals equal
    those of one draw of all 2,000."""
    rng = np.random.default_rng(8)
    n = 1200
    table = pd.DataFrame({
        "participant": [f"p{i:04d}" for i in rng.permutation(np.repeat(np.arange(600), 2))],
        "framing": rng.choice(FRAMINGS, n), "true_claim": rng.random(n) < 0.5,
        "accept": rng.random(n) < 0.5, "confidence": rng.integers(1, 6, n).astype(float),
        "familiarity": rng.integers(1, 6, n).astype(float), "item": rng.integers(0, 50, n),
        "base_claim": rng.integers(0, 20, n).astype(str)})
    resamples, seed = 2000, 4
    rows, notes = _framing_summaries(table, FRAMINGS, AnalysisOptions(interval=PARTICIPANT_BOOTSTRAP, bootstrap_resamples=resamples),
                                     np.random.default_rng(seed))
    assert notes == []
    draws = draws_of(seed, 600, resamples).astype(float)
    index = {p: i for i, p in enumerate(sorted(table["participant"].unique()))}
    rows_of = table["participant"].map(index).to_numpy()
    for framing_row in (rows[1], rows[-1]):
        mask = np.ones(n, bool) if framing_row["framing"] == "all" else (table["framing"] == framing_row["framing"]).to_numpy()
        false = mask & ~table["true_claim"].to_numpy()
        accepted = table["accept"].to_numpy().astype(float)
        numerator = np.bincount(rows_of[false], weights=accepted[false], minlength=600)
        denominator = np.bincount(rows_of[false], minlength=600).astype(float)
        samples = (draws @ numerator) / (draws @ denominator)
        low, high = np.quantile(samples, [0.025, 0.975])
        cell = framing_row["false_acceptance_rate"]
        assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((low, high))


def with_rare_judges(table, rare):
    """The table with every true `framing` claim relabelled false, plus one true claim of that
    framing judged by a participant of its own, for each (participant, framing) in `rare`."""
    table = table.copy()
    extra = []
    for participant, framing in rare:
        table.loc[table["framing"] == framing, "true_claim"] = False
        extra.append({"participant": participant, "framing": framing, "true_claim": True, "accept": True,
                      "confidence": 3.0, "familiarity": 2.0, "item": 99})
    return pd.concat([table, pd.DataFrame(extra)], ignore_index=True)


def test_a_statistic_never_defined_is_not_called_partly_defined():
    """Guards against a statistic with no valid resample at all (no true claim in a framing)
    being counted among those undefined in part of the resamples."""
    table = claims()
    table.loc[table["framing"] == "emotional", "true_claim"] = False
    rows, notes = _framing_summaries(table, FRAMINGS, AnalysisOptions(interval=PARTICIPANT_BOOTSTRAP, bootstrap_resamples=100),
                                     np.random.default_rng(2))
    assert notes == []
    emotional = next(row for row in rows if row["framing"] == "emotional")
    assert math.isnan(emotional["accuracy_true"]["ci_low"]) and emotional["accuracy_true"]["n"] == 0


def test_the_note_counts_the_resamples_where_a_rare_statistic_is_defined():
    """Guards against the note's count being off: a statistic defined in exactly one
    resample, and two statistics defined in different numbers of resamples ("X to Y")."""
    base = claims()
    # One rare judge, two resamples: find a seed where exactly one resample draws them.
    one = with_rare_judges(base, [("p99", "emotional")])
    names = sorted(one["participant"].unique())
    seed = next(s for s in range(200) if (draws_of(s, len(names), 2)[:, names.index("p99")] > 0).sum() == 1)
    _, notes = _framing_summaries(one, FRAMINGS, AnalysisOptions(interval=PARTICIPANT_BOOTSTRAP, bootstrap_resamples=2),
                                  np.random.default_rng(seed))
    assert any(" use the 1 of 2 resamples" in note or " use the 1 to " in note for note in notes)
    # Two rare judges: the counts of resamples that draw each differ, and the note spans them.
    two = with_rare_judges(base, [("p98", "authoritative"), ("p99", "emotional")])
    names = sorted(two["participant"].unique())
    draws = draws_of(5, len(names), 40)
    counts = sorted(int((draws[:, names.index(p)] > 0).sum()) for p in ("p98", "p99"))
    assert counts[0] != counts[1]
    _, notes = _framing_summaries(two, FRAMINGS, AnalysisOptions(interval=PARTICIPANT_BOOTSTRAP, bootstrap_resamples=40),
                                  np.random.default_rng(5))
    # The rarest statistic sets the low end; others (fewer judgments of some kind) may set the high.
    assert notes and f"use the {counts[0]} to " in notes[0] and notes[0].endswith(" of 40 resamples where they are defined.")


def test_a_very_large_study_is_still_resampled_in_whole_blocks():
    """Guards against a block size computed with a true division anywhere: 9,000
    participants give blocks of 111 resamples, and a block must be a whole number of rows."""
    rng = np.random.default_rng(1)
    n = 9000
    table = pd.DataFrame({"participant": [f"p{i}" for i in range(n)], "framing": rng.choice(FRAMINGS, n),
                          "true_claim": rng.random(n) < 0.5, "accept": rng.random(n) < 0.5,
                          "confidence": np.full(n, 3.0), "familiarity": np.full(n, 2.0), "item": np.arange(n),
                          "base_claim": (np.arange(n) % 50).astype(str)})
    rows, notes = _framing_summaries(table, FRAMINGS, AnalysisOptions(interval=PARTICIPANT_BOOTSTRAP, bootstrap_resamples=1800),
                                     np.random.default_rng(0))
    assert notes == []
    cell = rows[-1]["accuracy"]
    assert cell["ci_low"] < cell["estimate"] < cell["ci_high"]


def test_a_rate_from_a_single_judgment_is_defined():
    """Guards against a rate being left undefined unless more than one judgment counts: one
    false claim judged once has a false acceptance rate of 0 or 1, not NaN."""
    assert _ratio(np.array([1.0, 0.0]), np.array([1.0, 1.0])).tolist() == [1.0, 0.0]
    table = claims()
    table = pd.concat([table[table["framing"] != "emotional"], pd.DataFrame([{
        "participant": "p1", "framing": "emotional", "true_claim": False, "accept": True,
        "confidence": 4.0, "familiarity": 1.0, "item": 7, "base_claim": "3"}])], ignore_index=True)
    rows, _ = _framing_summaries(table, FRAMINGS, AnalysisOptions(interval=PARTICIPANT_BOOTSTRAP, bootstrap_resamples=0),
                                 np.random.default_rng(0))
    emotional = next(row for row in rows if row["framing"] == "emotional")
    assert emotional["false_acceptance_rate"]["estimate"] == 1.0
    assert emotional["mean_confidence"]["estimate"] == 4.0
