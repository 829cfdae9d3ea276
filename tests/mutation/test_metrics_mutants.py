"""Persona metrics (modeling/metrics.py) against a plain per-row recount.

The hand table of tests/modeling/test_metrics.py has as many false claims as claims in some
cells, so a rate divided by the wrong count can agree with it; these tables are built so that
every count differs (true, false, predicted SUPPORTS, predicted REFUTES, all)."""
import math

import numpy as np
import pandas as pd
import pytest

from modeling.metrics import (
    METRIC_COLUMNS,
    MetricsError,
    framing_effects,
    framing_metrics,
    framing_metrics_row,
    with_normalised,
)


def table(seed=3, n=60):
    rng = np.random.default_rng(seed)
    framings = rng.choice(["original", "consensus", "authoritative", "zz-custom", "aa-custom"], n)
    truth = rng.choice(["SUPPORTS", "REFUTES"], n, p=[0.3, 0.7])
    p_s = rng.uniform(0.01, 0.6, n)
    p_r = rng.uniform(0.01, 0.6, n)
    predicted = np.where(rng.random(n) < 0.6, "SUPPORTS", "REFUTES")  # not from p: all counts differ
    confidence = rng.uniform(0.2, 0.9, n)
    return pd.DataFrame({"framing": framings, "true_label": truth, "p_supports": p_s,
                         "p_refutes": p_r, "predicted_label": predicted, "confidence": confidence})


def recount(rows):
    """Each metric by a loop over the rows, as a reader of method.md section 3.4 would."""
    def mean(values):
        return sum(values) / len(values) if values else math.nan
    records = rows.to_dict("records")
    true = [r for r in records if r["true_label"] == "SUPPORTS"]
    false = [r for r in records if r["true_label"] == "REFUTES"]
    def norm(r):
        return r["p_supports"] / (r["p_supports"] + r["p_refutes"])
    recall_true = mean([r["predicted_label"] == "SUPPORTS" for r in true])
    recall_false = mean([r["predicted_label"] == "REFUTES" for r in false])
    return {
        "n": len(records), "n_true": len(true), "n_false": len(false),
        "accuracy": mean([r["predicted_label"] == r["true_label"] for r in records]),
        "balanced_accuracy": (recall_true + recall_false) / 2,
        "mspr": mean([r["p_supports"] for r in false]),
        "mspr_normalised": mean([norm(r) for r in false]),
        "false_acceptance_rate": mean([r["predicted_label"] == "SUPPORTS" for r in false]),
        "false_rejection_rate": mean([r["predicted_label"] == "REFUTES" for r in true]),
        "mean_confidence": mean([r["confidence"] for r in records]),
        "mean_confidence_normalised": mean([max(norm(r), 1 - norm(r)) for r in records]),
    }


def test_every_metric_of_every_framing_matches_a_recount():
    """Guards against a rate with the wrong numerator or denominator (false acceptance over
    all claims instead of false ones, false rejection over false claims, MSPR over true claims,
    normalised confidence without the max) and against rows leaking between framings."""
    scores = table()
    metrics = framing_metrics(scores).set_index("framing")
    assert list(metrics.columns) == list(METRIC_COLUMNS)
    for framing in metrics.index:
        rows = scores if framing == "all" else scores[scores["framing"] == framing]
        expected = recount(rows)
        for column in METRIC_COLUMNS:
            assert metrics.loc[framing, column] == pytest.approx(expected[column]), (framing, column)


def test_framings_in_canonical_order_then_others_sorted_then_all():
    """Guards against the row order changing: canonical framings in method.md's order, then
    any other framing alphabetically, then `all`."""
    order = list(framing_metrics(table())["framing"])
    assert order == ["original", "authoritative", "consensus", "aa-custom", "zz-custom", "all"]


def test_counts_are_plain_ints():
    row = framing_metrics_row(with_normalised(table()))
    assert all(type(row[key]) is int for key in ("n", "n_true", "n_false"))


def test_a_group_without_rows_gives_nan_not_an_error():
    """Guards against _mean of no values raising or returning 0 instead of NaN."""
    scores = with_normalised(table())
    row = framing_metrics_row(scores.iloc[:0])
    assert row["n"] == 0
    assert all(math.isnan(row[key]) for key in METRIC_COLUMNS if key not in ("n", "n_true", "n_false"))


def test_normalised_probability_and_its_fallback():
    """Guards against p(S)/(p(S)+p(R)) being computed wrongly, and against a claim with no
    mass on either answer getting anything but 0.5 (or a division by zero)."""
    scores = pd.DataFrame({"framing": ["original"] * 3, "true_label": ["REFUTES"] * 3,
                           "p_supports": [0.2, 0.0, 0.3], "p_refutes": [0.6, 0.0, 0.0],
                           "predicted_label": ["REFUTES"] * 3, "confidence": [0.6, 0.0, 0.3]})
    out = with_normalised(scores)
    assert list(out["p_supports_norm"]) == pytest.approx([0.25, 0.5, 1.0])
    assert "p_supports_norm" not in scores.columns  # the caller's table is not changed


def test_a_given_normalised_column_is_kept():
    scores = table().drop(columns="p_refutes")
    scores["p_supports_norm"] = 0.125
    out = with_normalised(scores)
    assert out is scores
    assert framing_metrics(scores).set_index("framing").loc["all", "mspr_normalised"] == 0.125


@pytest.mark.parametrize("column", ["framing", "true_label", "p_supports", "predicted_label", "confidence"])
def test_a_missing_column_is_named(column):
    with pytest.raises(MetricsError, match=f"missing column\\(s\\) {column}$"):
        with_normalised(table().drop(columns=column))


def test_all_missing_columns_are_named_in_order():
    with pytest.raises(MetricsError) as caught:
        with_normalised(table()[["framing", "p_refutes"]])
    assert str(caught.value) == ("score table: missing column(s) confidence, p_supports, "
                                 "predicted_label, true_label")


def test_without_p_refutes_or_the_normalised_column_it_says_which_is_needed():
    with pytest.raises(MetricsError) as caught:
        with_normalised(table().drop(columns="p_refutes"))
    assert str(caught.value) == "score table: needs p_supports_norm or p_refutes"


def test_framing_effects_subtract_the_original_framing():
    """Guards against the effect's sign, its base (original) or its metric changing, and
    against `all` or `original` appearing as framings of their own."""
    metrics = framing_metrics(table())
    by_framing = metrics.set_index("framing")
    for metric in ("mspr", "false_acceptance_rate"):
        effects = framing_effects(metrics, metric)
        assert effects.name == metric and effects.dtype == float
        assert list(effects.index) == ["authoritative", "consensus", "aa-custom", "zz-custom"]
        for framing, value in effects.items():
            assert value == pytest.approx(by_framing.loc[framing, metric] - by_framing.loc["original", metric])
    assert framing_effects(metrics).name == "mspr"


def test_framing_effects_without_original_are_nan():
    scores = table()
    effects = framing_effects(framing_metrics(scores[scores["framing"] != "original"]))
    assert len(effects) == 4 and effects.isna().all()


def test_an_empty_group_warns_nothing():
    """Guards against taking the mean of no values (numpy warns 'Mean of empty slice' and the
    test settings make a RuntimeWarning an error)."""
    import warnings
    scores = with_normalised(table())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = framing_metrics_row(scores[scores["true_label"] == "REFUTES"])
    assert math.isnan(row["false_rejection_rate"]) and row["n_true"] == 0


def test_numbers_stored_as_text_are_read_as_numbers():
    """Guards against the probability and confidence columns being used as they come: a score
    table read from a CSV as text holds '0.25', not 0.25."""
    scores = with_normalised(table())
    as_text = scores.astype({"p_supports": str, "p_supports_norm": str, "confidence": str})
    assert not pd.api.types.is_numeric_dtype(as_text["confidence"])
    expected = framing_metrics(scores)
    got = framing_metrics(as_text)
    pd.testing.assert_frame_equal(got, expected)


def test_effects_of_a_table_with_only_the_original_framing_are_an_empty_float_series():
    scores = table()
    effects = framing_effects(framing_metrics(scores[scores["framing"] == "original"]))
    assert len(effects) == 0 and effects.dtype == float
