"""Persona metrics against hand computations."""
import math

import numpy as np
import pandas as pd
import pytest

from modeling.metrics import (
    MetricsError,
    bootstrap_interval,
    compare_personas,
    comparison_matrix,
    framing_effects,
    framing_metrics,
    paired_differences,
)
from modeling.plots import plot_comparison, plot_framing_metrics


def scores(rows):
    frame = pd.DataFrame(rows, columns=["base_id", "framing", "true_label", "p_supports", "p_refutes"])
    frame["predicted_label"] = np.where(frame["p_supports"] >= frame["p_refutes"], "SUPPORTS", "REFUTES")
    frame["confidence"] = np.maximum(frame["p_supports"], frame["p_refutes"])
    return frame


HAND = scores([
    # original: 2 true (1 right), 2 false (1 right)
    ("a", "original", "SUPPORTS", 0.6, 0.2),
    ("b", "original", "SUPPORTS", 0.1, 0.7),
    ("c", "original", "REFUTES", 0.3, 0.6),
    ("d", "original", "REFUTES", 0.5, 0.3),
    # authoritative: 1 true (right), 3 false (none right)
    ("a", "authoritative", "SUPPORTS", 0.8, 0.1),
    ("c", "authoritative", "REFUTES", 0.7, 0.2),
    ("d", "authoritative", "REFUTES", 0.6, 0.2),
    ("e", "authoritative", "REFUTES", 0.4, 0.4),
])


def test_per_framing_metrics_match_hand_computation():
    table = framing_metrics(HAND).set_index("framing")
    original = table.loc["original"]
    assert original["n"] == 4 and original["n_true"] == 2 and original["n_false"] == 2
    assert original["accuracy"] == pytest.approx(0.5)
    assert original["balanced_accuracy"] == pytest.approx(0.5)
    assert original["mspr"] == pytest.approx((0.3 + 0.5) / 2)
    assert original["mspr_normalised"] == pytest.approx((0.3 / 0.9 + 0.5 / 0.8) / 2)
    assert original["false_acceptance_rate"] == pytest.approx(0.5)
    assert original["false_rejection_rate"] == pytest.approx(0.5)
    assert original["mean_confidence"] == pytest.approx((0.6 + 0.7 + 0.6 + 0.5) / 4)

    authoritative = table.loc["authoritative"]
    # Recall on true 1/1, on false 0/3 (the tie 0.4/0.4 is SUPPORTS): BAcc 0.5, accuracy 0.25.
    assert authoritative["accuracy"] == pytest.approx(0.25)
    assert authoritative["balanced_accuracy"] == pytest.approx(0.5)
    assert authoritative["mspr"] == pytest.approx((0.7 + 0.6 + 0.4) / 3)
    assert authoritative["false_acceptance_rate"] == 1.0
    assert authoritative["mean_confidence_normalised"] == pytest.approx(
        np.mean([0.8 / 0.9, 0.7 / 0.9, 0.6 / 0.8, 0.5]))

    everything = table.loc["all"]
    assert everything["n"] == 8
    assert everything["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 5) / 2)
    assert list(table.index) == ["original", "authoritative", "all"]


def test_balanced_accuracy_is_undefined_without_both_classes():
    only_false = HAND[HAND["true_label"] == "REFUTES"]
    table = framing_metrics(only_false).set_index("framing")
    assert math.isnan(table.loc["authoritative", "balanced_accuracy"])
    assert math.isnan(table.loc["authoritative", "false_rejection_rate"])


def test_effects_comparison_and_matrix():
    effects = framing_effects(framing_metrics(HAND), "mspr")
    assert effects["authoritative"] == pytest.approx((0.7 + 0.6 + 0.4) / 3 - 0.4)
    other = HAND.copy()
    other["p_supports"] = 1 - other["p_supports"]
    comparison = compare_personas({"first": HAND, "second": other})
    assert list(comparison["persona"].unique()) == ["first", "second"]
    matrix = comparison_matrix(comparison, "mspr")
    assert matrix.loc["first", "original"] == pytest.approx(0.4)
    assert matrix.loc["second", "original"] == pytest.approx(0.6)
    row = comparison[(comparison["persona"] == "first") & (comparison["framing"] == "authoritative")]
    assert row["mspr_effect"].iloc[0] == pytest.approx(effects["authoritative"])


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded():
    low, high = bootstrap_interval(HAND, "mspr", reps=200, seed=1)
    estimate = framing_metrics(HAND).set_index("framing").loc["all", "mspr"]
    assert low <= estimate <= high and low < high
    assert bootstrap_interval(HAND, "mspr", reps=200, seed=1) == (low, high)


def test_missing_columns_are_named():
    with pytest.raises(MetricsError, match="predicted_label"):
        framing_metrics(HAND.drop(columns=["predicted_label"]))


def test_plots_are_png_and_svg():
    png = plot_framing_metrics(framing_metrics(HAND), title="hand")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    svg = plot_comparison(compare_personas({"a": HAND}), "mspr", fmt="svg")
    assert b"<svg" in svg[:500]


def with_claim_ids(table):
    return table.assign(claim_id=table["base_id"] + ":" + table["framing"])


def test_paired_differences_match_hand_computation():
    reference = with_claim_ids(HAND)
    other = reference.copy()
    # The other persona is more credulous on authoritative false claims only: +0.2 on c and d,
    # and on e enough to flip its predicted label to SUPPORTS (0.4 -> 0.5 over 0.4).
    raise_rows = (other["framing"] == "authoritative") & (other["base_id"].isin(["c", "d"]))
    other.loc[raise_rows, "p_supports"] += 0.2
    flip = (other["framing"] == "authoritative") & (other["base_id"] == "e")
    other.loc[flip, "p_supports"] = 0.5
    other["predicted_label"] = np.where(other["p_supports"] >= other["p_refutes"], "SUPPORTS", "REFUTES")
    table = paired_differences(reference, other).set_index("framing")
    # authoritative false claims: +0.2, +0.2, +0.1 -> MSPR +0.5/3; original unchanged
    assert table.loc["authoritative", "mspr"] == pytest.approx(0.5 / 3)
    assert table.loc["original", "mspr"] == pytest.approx(0.0)
    assert table.loc["authoritative", "mspr_vs_others"] == pytest.approx(0.5 / 3)
    assert table.loc["original", "mspr_vs_others"] == pytest.approx(-0.5 / 3)
    # all false claims: 5 of them, +0.5 in total
    assert table.loc["all", "mspr"] == pytest.approx(0.5 / 5)
    # e was already wrong (tie -> SUPPORTS), so recall on false claims is unchanged: 0 change
    assert table.loc["authoritative", "balanced_accuracy"] == pytest.approx(0.0)
    assert math.isnan(table.loc["all", "mspr_vs_others"])
    # normalised MSPR: c 0.7/0.9 -> 0.9/1.1, d 0.6/0.8 -> 0.8/1.0, e 0.5 -> 0.5/0.9
    expected = ((0.9 / 1.1 - 0.7 / 0.9) + (0.8 / 1.0 - 0.6 / 0.8) + (0.5 / 0.9 - 0.5)) / 3
    assert table.loc["authoritative", "mspr_normalised"] == pytest.approx(expected)

    with_intervals = paired_differences(reference, other, reps=300, seed=2).set_index("framing")
    assert with_intervals.loc["authoritative", "mspr"] == table.loc["authoritative", "mspr"]
    row = with_intervals.loc["all"]
    assert row["mspr_low"] <= row["mspr"] <= row["mspr_high"]
    again = paired_differences(reference, other, reps=300, seed=2)
    pd.testing.assert_frame_equal(again.set_index("framing"), with_intervals)


def test_paired_differences_need_the_same_claims():
    reference = with_claim_ids(HAND)
    with pytest.raises(MetricsError, match="different claims"):
        paired_differences(reference, reference.iloc[:-1])
