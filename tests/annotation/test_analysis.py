"""The pure study analysis against independent computations on hand-made tables.

Every expected number here is worked out by hand from the rows below (the comments show
how) or by a formula written out in the test (chi-square from the contingency table,
binomial p-values by summing the pmf), never by the function under test.
"""
import json
import math
import time

import numpy as np
import pandas as pd
import pytest

from annotation.analysis.options import AnalysisOptions
from annotation.analysis.statistics import (
    analyze,
    cluster_bootstrap_weights,
    holm_adjust,
    krippendorff_alpha_nominal,
)
from annotation.analysis.text_report import diagnostics_sentence

NO_BOOTSTRAP = AnalysisOptions(bootstrap_resamples=0, mixed_model=False)


def judgment(participant, base, framing, accept, confidence, familiarity, **platform):
    truth = "SUPPORTS" if base.startswith("t") else "REFUTES"
    return {
        "DataPoint_ID": f"{base}:{framing}", "Task_Group_ID": 1, "text": f"{base} told {framing}",
        "Annotator_ID": participant, "full_claim_id": f"{base}:{framing}", "framing_type": framing,
        "true_label": truth, "accurate_response": "SUPPORTS" if accept else "REFUTES",
        "confidence_response": confidence, "familiarity_response": familiarity, **platform,
    }


# Four participants, two false base claims (f1, f2) and two true ones (t1, t2), each seen
# once per participant, in the original (O) or authoritative (A) framing.
HAND_ROWS = [
    # participant, base, framing, accept, confidence, familiarity
    ("P1", "f1", "original", True, 5, 4), ("P1", "f2", "authoritative", True, 4, 5),
    ("P1", "t1", "original", True, 3, 2), ("P1", "t2", "authoritative", False, 2, 1),
    ("P2", "f1", "authoritative", True, 4, 4), ("P2", "f2", "original", False, 3, 2),
    ("P2", "t1", "authoritative", True, 5, 5), ("P2", "t2", "original", True, 4, 3),
    ("P3", "f1", "original", False, 2, 1), ("P3", "f2", "authoritative", True, 5, 4),
    ("P3", "t1", "original", False, 1, 1), ("P3", "t2", "authoritative", True, 3, 2),
    ("P4", "f1", "authoritative", True, 3, 5), ("P4", "f2", "original", False, 4, 4),
    ("P4", "t1", "authoritative", True, 4, 3), ("P4", "t2", "original", False, 2, 2),
]


def hand_table(**platform):
    return pd.DataFrame([judgment(*row, **platform) for row in HAND_ROWS])


def test_rates_and_means_agree_with_counting_by_hand():
    result = analyze(hand_table(), NO_BOOTSTRAP)
    original, authoritative, overall = (result.summary(f) for f in ("original", "authoritative", "all"))
    # original, false claims: P1 f1 yes, P2 f2 no, P3 f1 no, P4 f2 no -> 1 of 4 accepted
    assert original["false_acceptance_rate"]["estimate"] == pytest.approx(1 / 4)
    # original, true claims: P1 t1 yes, P2 t2 yes, P3 t1 no, P4 t2 no -> 2 of 4 rejected
    assert original["false_rejection_rate"]["estimate"] == pytest.approx(2 / 4)
    # authoritative: every false claim accepted; true claims: P1 t2 rejected only
    assert authoritative["false_acceptance_rate"]["estimate"] == pytest.approx(4 / 4)
    assert authoritative["false_rejection_rate"]["estimate"] == pytest.approx(1 / 4)
    # accuracy: original 3 false rejected + 2 true accepted of 8; authoritative 0 + 3 of 8
    assert original["accuracy"]["estimate"] == pytest.approx(5 / 8)
    assert original["accuracy_false"]["estimate"] == pytest.approx(3 / 4)
    assert original["accuracy_true"]["estimate"] == pytest.approx(2 / 4)
    assert authoritative["accuracy"]["estimate"] == pytest.approx(3 / 8)
    assert overall["accuracy"]["estimate"] == pytest.approx(8 / 16)
    assert overall["false_acceptance_rate"]["estimate"] == pytest.approx(5 / 8)
    assert overall["acceptance_rate"]["estimate"] == pytest.approx(10 / 16)
    # confidence, original: 5+3 (P1) + 3+4 (P2) + 2+1 (P3) + 4+2 (P4) = 24 over 8
    assert original["mean_confidence"]["estimate"] == pytest.approx(24 / 8)
    # original false claims' confidence: 5, 3, 2, 4; true: 3, 4, 1, 2
    assert original["mean_confidence_false"]["estimate"] == pytest.approx(14 / 4)
    assert original["mean_confidence_true"]["estimate"] == pytest.approx(10 / 4)
    # authoritative familiarity: 5+1 + 4+5 + 4+2 + 5+3 = 29 over 8; false: 5, 4, 4, 5
    assert authoritative["mean_familiarity"]["estimate"] == pytest.approx(29 / 8)
    assert authoritative["mean_familiarity_false"]["estimate"] == pytest.approx(18 / 4)
    assert (original["n"], original["n_true"], original["n_false"], original["participants"]) == (8, 4, 4, 4)
    assert result.counts["judgments_analysed"] == 16 and result.counts["base_claims"] == 4


def pearson_chi_square(observed):
    """Sum of (O - E)^2 / E with E from the margins, written out."""
    observed = [[float(x) for x in row] for row in observed]
    total = sum(map(sum, observed))
    row_sums = [sum(row) for row in observed]
    column_sums = [sum(column) for column in zip(*observed)]
    statistic = 0.0
    for i, row in enumerate(observed):
        for j, value in enumerate(row):
            expected = row_sums[i] * column_sums[j] / total
            statistic += (value - expected) ** 2 / expected
    return statistic


def test_chi_square_agrees_with_the_statistic_computed_from_the_contingency_table():
    result = analyze(hand_table(), NO_BOOTSTRAP)
    false_claims = result.chi_square["false_claims"]
    # false claims: original 1 yes 3 no, authoritative 4 yes 0 no
    assert false_claims["table"] == {"original": {"yes": 1, "no": 3}, "authoritative": {"yes": 4, "no": 0}}
    statistic = pearson_chi_square([[1, 3], [4, 0]])
    assert statistic == pytest.approx(4.8)  # expected counts 2.5/1.5 in each row: 4 x (1.5^2 / 2.5 + 1.5^2 / 1.5) / 2
    assert false_claims["statistic"] == pytest.approx(statistic)
    assert false_claims["dof"] == 1 and false_claims["n"] == 8
    # with one degree of freedom, P(chi2 > x) = erfc(sqrt(x / 2))
    assert false_claims["p_value"] == pytest.approx(math.erfc(math.sqrt(statistic / 2)))
    assert false_claims["cramers_v"] == pytest.approx(math.sqrt(statistic / 8))
    true_claims = result.chi_square["true_claims"]
    # true claims: original 2 yes 2 no, authoritative 3 yes 1 no
    assert true_claims["statistic"] == pytest.approx(pearson_chi_square([[2, 2], [3, 1]]))


def test_chi_square_over_six_framings_matches_the_hand_formula():
    rng = np.random.default_rng(3)
    framings = ["original", "authoritative", "consensus", "emotional", "prestige", "sensationalist"]
    rows, counts = [], {f: [0, 0] for f in framings}
    for p in range(30):
        for b in range(6):
            framing = framings[(p + b) % 6]
            accept = bool(rng.random() < 0.3 + 0.08 * framings.index(framing))
            counts[framing][0 if accept else 1] += 1
            rows.append(judgment(f"P{p}", f"f{b}", framing, accept, 3, 3))
    test = analyze(pd.DataFrame(rows), NO_BOOTSTRAP).chi_square["false_claims"]
    observed = [counts[f] for f in framings]
    assert test["statistic"] == pytest.approx(pearson_chi_square(observed))
    assert test["dof"] == 5
    assert test["cramers_v"] == pytest.approx(math.sqrt(pearson_chi_square(observed) / 180))
    assert analyze(pd.DataFrame(rows), NO_BOOTSTRAP).chi_square["true_claims"]["reason"]


def binomial_two_sided_p(k, n):
    """Sum of the Binomial(n, 1/2) pmf over outcomes no more likely than k."""
    pmf = [math.comb(n, i) / 2 ** n for i in range(n + 1)]
    return min(1.0, sum(p for p in pmf if p <= pmf[k] * (1 + 1e-12)))


def test_binomial_tests_at_chosen_familiarity_levels_agree_with_the_pmf():
    result = analyze(hand_table(), NO_BOOTSTRAP)
    rows = {row["framing"]: row for row in result.familiarity_tests["rows"]}
    assert result.familiarity_tests["levels"] == [4, 5]
    # original false claims with familiarity 4 or 5: P1 f1 (yes, 4), P4 f2 (no, 4)
    assert (rows["original"]["n"], rows["original"]["false_acceptances"]) == (2, 1)
    assert rows["original"]["p_value"] == pytest.approx(binomial_two_sided_p(1, 2)) == pytest.approx(1.0)
    # authoritative: P1 f2 (5), P2 f1 (4), P3 f2 (4), P4 f1 (5), all accepted
    assert (rows["authoritative"]["n"], rows["authoritative"]["false_acceptances"]) == (4, 4)
    assert rows["authoritative"]["p_value"] == pytest.approx(binomial_two_sided_p(4, 4)) == pytest.approx(0.125)
    # familiarity 1 only: P3 f1 (no) in original, nothing in authoritative
    low = analyze(hand_table(), AnalysisOptions(familiarity_levels=(1,), bootstrap_resamples=0, mixed_model=False))
    low_rows = {row["framing"]: row for row in low.familiarity_tests["rows"]}
    assert (low_rows["original"]["n"], low_rows["original"]["false_acceptances"]) == (1, 0)
    assert low_rows["authoritative"]["n"] == 0 and low_rows["authoritative"]["p_value"] is None


@pytest.mark.parametrize("k,n", [(0, 7), (3, 10), (9, 13), (15, 40), (21, 21)])
def test_binomial_p_values_on_larger_counts(k, n):
    rows = [judgment(f"P{i}", "f1", "original", i < k, 3, 5) for i in range(n)]
    test = analyze(pd.DataFrame(rows), NO_BOOTSTRAP).familiarity_tests["rows"][0]
    assert test["p_value"] == pytest.approx(binomial_two_sided_p(k, n))
    assert test["ci_low"] <= k / n <= test["ci_high"]


def test_holm_adjustment():
    # sorted 0.01, 0.02, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.02), max(0.04, 0.04)
    assert holm_adjust([0.04, 0.01, None, 0.02]) == pytest.approx([0.04, 0.03, None, 0.04])


def test_krippendorff_alpha_reproduces_krippendorffs_published_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C:
    # 4 observers x 12 units, nominal, with missing values; published alpha = 0.743.
    data = {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    }
    units = [u for values in data.values() for u in range(12)]
    values = [v for values in data.values() for v in values]
    result = krippendorff_alpha_nominal(units, values)
    assert round(result["alpha"], 3) == 0.743
    # unit 12 has one value only and drops out; the other 11 units hold 40 pairable values
    assert (result["units"], result["pairable_values"]) == (11, 40)


def test_krippendorff_alpha_reproduces_the_wikipedia_example():
    # 3 coders x 15 units (en.wikipedia.org, Krippendorff's alpha); nominal alpha = 0.691
    coders = ["* * * * * 3 4 1 2 1 1 3 3 * 3", "1 * 2 1 3 3 4 3 * * * * * * *",
              "* * 2 1 3 4 4 * 2 1 1 3 3 * 4"]
    units, values = [], []
    for coder in coders:
        for unit, value in enumerate(coder.split()):
            if value != "*":
                units.append(unit)
                values.append(int(value))
    assert round(krippendorff_alpha_nominal(units, values)["alpha"], 3) == 0.691


def test_krippendorff_alpha_edge_cases():
    assert krippendorff_alpha_nominal(["a", "a", "b", "b"], [1, 1, 0, 0])["alpha"] == pytest.approx(1.0)
    same = krippendorff_alpha_nominal(["a", "a", "b", "b"], [1, 1, 1, 1])
    assert same["alpha"] is None and "same value" in same["reason"]
    single = krippendorff_alpha_nominal(["a", "b"], [1, 0])
    assert single["alpha"] is None and "two or more" in single["reason"]


def test_agreement_in_the_analysis_uses_items_as_units():
    result = analyze(hand_table(), NO_BOOTSTRAP)
    frame = hand_table()
    accept = frame["accurate_response"] == "SUPPORTS"
    expected = krippendorff_alpha_nominal(frame["full_claim_id"], accept)["alpha"]
    assert result.agreement["overall"]["alpha"] == pytest.approx(expected)
    # every item of the hand table is rated by exactly two participants
    assert result.agreement["overall"]["units"] == 8
    by_framing = {row["framing"]: row for row in result.agreement["by_framing"]}
    # authoritative false items are accepted by both raters, true items split: 2 of 4 agree
    assert by_framing["authoritative"]["units"] == 4


@pytest.mark.parametrize("interval", ["participant-bootstrap", "two-way-bootstrap"])
def test_bootstrap_intervals_are_deterministic_per_seed_and_cover_the_estimate(interval):
    # The bootstraps are options since the two-way cluster-robust interval became the default.
    table = many_participants_table(participants=25, seed=5)
    options = AnalysisOptions(bootstrap_resamples=400, seed=11, mixed_model=False, interval=interval)
    first, again = analyze(table, options), analyze(table, options)
    other = analyze(table, AnalysisOptions(bootstrap_resamples=400, seed=12, mixed_model=False, interval=interval))
    assert first.to_dict()["framings"] == again.to_dict()["framings"]
    assert first.to_dict()["framings"] != other.to_dict()["framings"]
    checked = 0
    for row in first.framings:
        for name in ("accuracy", "false_acceptance_rate", "false_rejection_rate", "mean_confidence",
                     "mean_familiarity_false"):
            estimate = row[name]
            assert estimate["ci_low"] <= estimate["estimate"] <= estimate["ci_high"], (row["framing"], name)
            assert estimate["ci_low"] < estimate["ci_high"]
            checked += 1
    assert checked == 5 * 5  # four framings and "all"


def test_differences_from_the_original_framing_use_the_same_resamples():
    result = analyze(hand_table(), AnalysisOptions(bootstrap_resamples=500, mixed_model=False))
    difference = result.summary("authoritative")["difference_from_original"]
    # false acceptance 4/4 - 1/4, false rejection 1/4 - 2/4, accuracy 3/8 - 5/8, confidence 3.75 - 3.0
    assert difference["false_acceptance_rate"]["estimate"] == pytest.approx(3 / 4)
    assert difference["false_rejection_rate"]["estimate"] == pytest.approx(-1 / 4)
    assert difference["accuracy"]["estimate"] == pytest.approx(-2 / 8)
    assert difference["mean_confidence"]["estimate"] == pytest.approx(0.75)
    for estimate in difference.values():
        assert estimate["ci_low"] <= estimate["estimate"] <= estimate["ci_high"]
    assert result.summary("original")["difference_from_original"] == {}
    assert result.summary("all")["difference_from_original"] == {}
    summary = result.tables()["framing_summary"].set_index("framing")
    assert summary.loc["authoritative", "false_acceptance_rate_minus_original"] == pytest.approx(0.75)
    assert "Difference from the original framing" in result.to_text()


def test_the_bootstrap_resamples_participants_not_judgments():
    # One participant accepts all 10 false claims, the other none. Resampling participants
    # gives a rate of 0, 1/2 or 1 (probabilities 1/4, 1/2, 1/4), so the 95% interval is
    # [0, 1]; resampling judgments would give a narrow interval around 1/2.
    rows = [judgment("yes-sayer", f"f{i}", "original", True, 3, 3) for i in range(10)]
    rows += [judgment("no-sayer", f"f{i}", "original", False, 3, 3) for i in range(10)]
    result = analyze(pd.DataFrame(rows), AnalysisOptions(bootstrap_resamples=2000, mixed_model=False,
                                                         interval="participant-bootstrap"))
    rate = result.summary("original")["false_acceptance_rate"]
    assert rate["estimate"] == 0.5
    assert (rate["ci_low"], rate["ci_high"]) == (0.0, 1.0)


def test_bootstrap_weights_draw_each_resample_as_many_participants_as_there_are():
    weights = cluster_bootstrap_weights(7, 500, np.random.default_rng(0))
    assert weights.shape == (500, 7) and (weights.sum(axis=1) == 7).all()
    # every participant is drawn about once per resample on average
    assert np.allclose(weights.mean(axis=0), 1.0, atol=0.15)


def platform_table():
    """The hand table plus participants the default rules remove, and attention checks."""
    rows = [judgment(*row, participant_status="completed", response_time_ms=5000) for row in HAND_ROWS]
    # P5 returned the study (3 judgments); P6 failed an attention check (4 judgments) and
    # was also fast; P7 clicked through (median 800 ms, 2 judgments); P8 was rejected and
    # failed a check (1 judgment).
    extra = [
        ("P5", "returned", 6000, [("f1", "original", True), ("t1", "authoritative", True), ("f2", "original", True)]),
        ("P6", "completed", 900, [("f1", "authoritative", False), ("f2", "original", True),
                                  ("t1", "original", True), ("t2", "authoritative", False)]),
        ("P7", "completed", 800, [("f1", "original", True), ("t1", "original", True)]),
        ("P8", "rejected", 4000, [("t2", "original", False)]),
    ]
    for participant, status, ms, answers in extra:
        for base, framing, accept in answers:
            rows.append(judgment(participant, base, framing, accept, 3, 3, participant_status=status,
                                 response_time_ms=ms))
    checks = [("P1", True), ("P2", True), ("P6", False), ("P8", False), ("P7", True)]
    for participant, passed in checks:
        status = {"P8": "rejected"}.get(participant, "completed")
        rows.append({"DataPoint_ID": "check", "Task_Group_ID": 1, "text": "Water is dry.",
                     "Annotator_ID": participant, "full_claim_id": None, "framing_type": None,
                     "true_label": "REFUTES", "accurate_response": "REFUTES" if passed else "SUPPORTS",
                     "confidence_response": 5, "familiarity_response": 5, "participant_status": status,
                     "response_time_ms": 5000, "is_attention_check": True, "attention_passed": passed})
    table = pd.DataFrame(rows)
    table["is_attention_check"] = table["is_attention_check"].astype("boolean").fillna(False)
    table["attention_passed"] = table["attention_passed"].astype("boolean")
    return table


def test_exclusions_are_applied_in_order_and_counted():
    table = platform_table()
    result = analyze(table, NO_BOOTSTRAP)
    flow = {row["rule"]: row for row in result.exclusions}
    # design-violations (one rater, two framings of one base claim) is last: none here
    assert [row["rule"] for row in result.exclusions] == ["persona", "status", "attention", "fast",
                                                          "design-violations"]
    assert (flow["design-violations"]["judgments_flagged"], flow["design-violations"]["judgments_removed"]) == (0, 0)
    # status: P5 (returned, 3 judgments) and P8 (rejected, 1)
    assert (flow["status"]["participants_flagged"], flow["status"]["judgments_flagged"]) == (2, 4)
    assert (flow["status"]["participants_removed"], flow["status"]["judgments_removed"]) == (2, 4)
    # attention: P6 and P8 failed; P8 has already gone
    assert (flow["attention"]["participants_flagged"], flow["attention"]["judgments_flagged"]) == (2, 5)
    assert (flow["attention"]["participants_removed"], flow["attention"]["judgments_removed"]) == (1, 4)
    # fast: P6 (900 ms) and P7 (800 ms); P6 has already gone
    assert (flow["fast"]["participants_flagged"], flow["fast"]["judgments_flagged"]) == (2, 6)
    assert (flow["fast"]["participants_removed"], flow["fast"]["judgments_removed"]) == (1, 2)
    assert result.counts["judgments"] == 26 and result.counts["attention_check_rows"] == 5
    assert result.counts["judgments_analysed"] == 16 and result.counts["participants_analysed"] == 4
    assert result.counts["participants_excluded"] == 4 and result.counts["judgments_excluded"] == 10
    # what is left is exactly the hand table
    clean = analyze(hand_table(), NO_BOOTSTRAP)
    assert result.to_dict()["framings"] == clean.to_dict()["framings"]


def test_persona_raters_are_left_out_first_and_never_counted_as_fast():
    table = platform_table()
    table["participant_source"] = "prolific"
    # A persona (rate_study) answered like P1, at machine speed.
    persona = table[table["Annotator_ID"] == "P1"].assign(Annotator_ID="persona3-ab12-00000",
                                                          participant_source="persona", response_time_ms=50)
    with_persona = pd.concat([table, persona], ignore_index=True)
    result = analyze(with_persona, NO_BOOTSTRAP)
    flow = {row["rule"]: row for row in result.exclusions}
    assert flow["persona"]["participants_removed"] == 1
    assert flow["persona"]["judgments_removed"] == int((persona["full_claim_id"].notna()).sum())
    assert flow["fast"]["participants_flagged"] == 2  # P6 and P7, not the persona
    without = analyze(table, NO_BOOTSTRAP)  # the same people's numbers, as if it had never come
    assert repr(result.framings) == repr(without.framings)  # (NaN intervals: compare the text)
    assert result.counts["judgments_analysed"] == without.counts["judgments_analysed"]
    # Switched off, the persona is analysed with the people (and is not caught as fast).
    kept = analyze(with_persona, AnalysisOptions(exclusions={"status", "attention", "fast"},
                                                 bootstrap_resamples=0, mixed_model=False))
    assert kept.counts["participants_analysed"] == result.counts["participants_analysed"] + 1
    # A table that does not say where its raters came from holds people: no note about it.
    assert not any("persona" in note for note in analyze(platform_table(), NO_BOOTSTRAP).notes)


def test_exclusions_can_be_switched_off_one_by_one():
    table = platform_table()
    none = analyze(table, AnalysisOptions(exclusions=(), bootstrap_resamples=0, mixed_model=False))
    assert none.counts["judgments_analysed"] == 26
    assert all(row["judgments_removed"] == 0 and not row["applied"] for row in none.exclusions)
    # flagged counts are still reported, so a reader sees what the rules would remove
    assert {row["rule"]: row["participants_flagged"] for row in none.exclusions} == {
        "persona": 0, "status": 2, "attention": 2, "fast": 2, "design-violations": 0}
    only_fast = analyze(table, AnalysisOptions(exclusions={"fast"}, bootstrap_resamples=0, mixed_model=False))
    assert only_fast.counts["judgments_analysed"] == 26 - 6
    slower = AnalysisOptions(min_median_response_ms=850, bootstrap_resamples=0, mixed_model=False)
    assert {r["rule"]: r["participants_flagged"] for r in analyze(table, slower).exclusions}["fast"] == 1


def test_server_timestamps_stand_in_for_missing_browser_timings():
    table = hand_table()
    start = pd.Timestamp("2026-01-01T10:00:00Z")
    table["response_time_ms"] = pd.array([None] * len(table), dtype="Int64")
    table["shown_at"] = start
    # P3 answers each item 0.5 s after it was shown, the others after 8 s
    table["answered_at"] = [start + pd.Timedelta(seconds=0.5 if p == "P3" else 8) for p in table["Annotator_ID"]]
    flow = {row["rule"]: row for row in analyze(table, NO_BOOTSTRAP).exclusions}
    assert flow["fast"]["data_available"] and flow["fast"]["participants_removed"] == 1


def test_frameref_tidy_table_alone_works_and_notes_the_rules_without_data():
    result = analyze(hand_table(), AnalysisOptions(bootstrap_resamples=50, mixed_model=False))
    assert result.counts["judgments_analysed"] == 16
    # the design rule reads the claim ids, which every tidy table has; the others need columns
    assert all(not row["data_available"] for row in result.exclusions if row["rule"] != "design-violations")
    assert len([note for note in result.notes if "no data for it" in note]) == 3


def test_answers_written_as_yes_no_and_labelled_scales_are_read():
    table = hand_table()
    table["accurate_response"] = table["accurate_response"].map({"SUPPORTS": "Yes", "REFUTES": "No"})
    table["familiarity_response"] = table["familiarity_response"].map(lambda v: f"{v} (Very familiar)" if v == 5 else str(v))
    labelled = analyze(table, NO_BOOTSTRAP).to_dict()["framings"]
    assert labelled == analyze(hand_table(), NO_BOOTSTRAP).to_dict()["framings"]


@pytest.mark.parametrize("column,value,message", [
    ("accurate_response", "MAYBE", "row 3: column 'accurate_response': value 'MAYBE'"),
    ("true_label", "NOT ENOUGH INFO", "row 3: column 'true_label': value 'NOT ENOUGH INFO'"),
    ("confidence_response", 7, "row 3: column 'confidence_response': value '7'"),
    ("familiarity_response", "very", "row 3: column 'familiarity_response': value 'very'"),
    ("framing_type", None, "row 3: column 'framing_type': value is empty"),
])
def test_bad_values_are_named_by_row_column_and_value(column, value, message):
    table = hand_table().astype({column: object})
    table.loc[2, column] = value
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        analyze(table, NO_BOOTSTRAP)


def test_a_missing_column_is_named():
    with pytest.raises(ValueError, match="lacks column.*accurate_response"):
        analyze(hand_table().drop(columns=["accurate_response"]), NO_BOOTSTRAP)


def test_an_empty_table_gives_an_empty_report():
    empty = hand_table().iloc[0:0]
    result = analyze(empty)
    assert not result.has_judgments
    assert result.summary("all")["n"] == 0 and result.summary("all")["accuracy"]["estimate"] != result.summary("all")["accuracy"]["estimate"]
    assert result.chi_square["false_claims"]["statistic"] is None
    assert result.mixed_model["fitted"] is False and result.mixed_model["reason"]
    assert result.framing_tests["reason"] == "no 'original' framing to compare with"
    assert result.framing_tests["rows"] == []
    json.dumps(result.to_dict(), allow_nan=False)
    assert "No judgments are left" in result.to_text()


def test_to_dict_is_plain_json_and_to_text_reads_like_a_results_section():
    result = analyze(platform_table(), AnalysisOptions(bootstrap_resamples=100, mixed_model=False))
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["options"]["exclusions"] == ["persona", "status", "attention", "fast", "design-violations"]
    assert data["framings"][0]["framing"] == "original"
    assert isinstance(data["framings"][0]["false_acceptance_rate"]["estimate"], float)
    text = result.to_text()
    for heading in ("Exclusions", "Per framing", "Chi-square", "binomial test", "Krippendorff",
                    "Mixed-effects", "not fitted: switched off"):
        assert heading in text
    tables = result.tables()
    assert set(tables) == {"framing_summary", "framing_tests", "exclusions", "chi_square", "familiarity_tests",
                           "agreement", "mixed_model", "mixed_model_rates", "confidence_distribution"}
    summary = tables["framing_summary"].set_index("framing")
    assert summary.loc["authoritative", "false_acceptance_rate"] == pytest.approx(1.0)
    distribution = tables["confidence_distribution"]
    assert distribution.groupby(["framing", "truth"])["n"].sum().to_dict()[("original", "false")] == 4


# --- Options ----------------------------------------------------------------------------

def test_options_from_query_string_values():
    options = AnalysisOptions.from_params({
        "exclusions": "status,fast", "familiarity": "5", "bootstrap": "500",
        "confidence_level": "0.9", "seed": "42", "mixed_model": "off", "min_median_response_ms": "1500",
        "page": "3",  # other parameters of the page are ignored
    })
    assert options == AnalysisOptions(exclusions={"status", "fast"}, familiarity_levels=(5,),
                                      bootstrap_resamples=500, confidence_level=0.9, seed=42,
                                      mixed_model=False, min_median_response_ms=1500)
    assert AnalysisOptions.from_params({}) == AnalysisOptions()
    assert AnalysisOptions.from_params({"exclusions": "none"}).exclusions == frozenset()
    assert AnalysisOptions.from_params(options.to_params()) == options


def test_options_from_a_querydict_with_checkboxes():
    from django.http import QueryDict

    # a form sends an empty `exclusions` always, then one value per ticked box
    assert AnalysisOptions.from_params(QueryDict("exclusions=&exclusions=attention")).exclusions == {"attention"}
    assert AnalysisOptions.from_params(QueryDict("exclusions=")).exclusions == frozenset()
    assert AnalysisOptions.from_params(QueryDict("familiarity=4&familiarity=5")).familiarity_levels == (4, 5)
    # a number field left blank keeps its default; no familiarity box ticked is an error
    assert AnalysisOptions.from_params(QueryDict("bootstrap=&seed=")) == AnalysisOptions()
    with pytest.raises(ValueError, match="parameter 'familiarity': value '': give one or more"):
        AnalysisOptions.from_params(QueryDict("familiarity="))


@pytest.mark.parametrize("params,message", [
    ({"exclusions": "status,slow"}, "parameter 'exclusions': value 'status,slow': unknown rule 'slow'"),
    ({"familiarity": "4,6"}, "parameter 'familiarity': value '4,6'"),
    ({"bootstrap": "many"}, "parameter 'bootstrap': value 'many': not an integer"),
    ({"bootstrap": "-5"}, "parameter 'bootstrap': value '-5'"),
    ({"bootstrap": "1000000"}, "parameter 'bootstrap': value '1000000'"),
    ({"confidence_level": "95"}, "parameter 'confidence_level': value '95': a number from 0.5"),
    ({"seed": "1.5"}, "parameter 'seed': value '1.5'"),
    ({"mixed_model": "perhaps"}, "parameter 'mixed_model': value 'perhaps'"),
    ({"min_median_response_ms": "nan"}, "parameter 'min_median_response_ms': value 'nan'"),
])
def test_bad_options_name_the_parameter_and_value(params, message):
    with pytest.raises(ValueError, match=message):
        AnalysisOptions.from_params(params)


# --- Mixed model ----------------------------------------------------------------------------

def many_participants_table(*, participants=40, base_claims=24, per_participant=12, effect=0.0,
                            seed=0, framings=("original", "authoritative", "consensus", "emotional")):
    """Simulated judgments: logit P(accept) = -1 + 2 * true + effect * [authoritative] + person + claim."""
    rng = np.random.default_rng(seed)
    person = rng.normal(0, 0.5, participants)
    claim = rng.normal(0, 0.5, base_claims)
    rows = []
    for p in range(participants):
        for b in rng.choice(base_claims, per_participant, replace=False):
            framing = framings[rng.integers(len(framings))]
            is_true = b % 2 == 0
            logit = -1 + 2 * is_true + effect * (framing == "authoritative") + person[p] + claim[b]
            accept = bool(rng.random() < 1 / (1 + math.exp(-logit)))
            rows.append(judgment(f"P{p}", f"{'t' if is_true else 'f'}{b}", framing, accept,
                                 int(rng.integers(1, 6)), int(rng.integers(1, 6))))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def strong_effect_fit():
    """One NUTS fit, shared by the tests below: a short run (2 chains x 300 draws) of the
    report's model on a study with a strong authoritative effect (+2.5 logits, on true and
    false claims alike, so the framing x truth interaction's truth is 0)."""
    from annotation.analysis import mixed_model

    table = many_participants_table(participants=40, per_participant=12, effect=2.5, seed=2)
    stages = []
    saved = mixed_model.CHAINS, mixed_model.WARMUP, mixed_model.DRAWS
    mixed_model.CHAINS, mixed_model.WARMUP, mixed_model.DRAWS = 2, 300, 300
    try:
        started = time.perf_counter()
        result = analyze(table, AnalysisOptions(bootstrap_resamples=0, permutations=0, seed=3),
                         progress=lambda fraction, stage: stages.append((fraction, stage)))
        elapsed = time.perf_counter() - started
        again = analyze(table, AnalysisOptions(bootstrap_resamples=0, permutations=0, seed=3)).mixed_model
    finally:
        mixed_model.CHAINS, mixed_model.WARMUP, mixed_model.DRAWS = saved
    return result, stages, elapsed, again


def test_mixed_model_recovers_a_strong_framing_effect_on_false_claims(strong_effect_fit):
    result, _, elapsed, _ = strong_effect_fit
    model = result.mixed_model
    assert model["fitted"], model["reason"]
    terms = {term["term"]: term for term in model["fixed_effects"]}
    others = ("authoritative", "consensus", "emotional")
    assert list(terms) == (["Intercept"] + [f"framing[{f}]" for f in others] + ["true claim"]
                           + [f"framing[{f}]:true claim" for f in others])
    assert [term["kind"] for term in model["fixed_effects"]] == (
        ["intercept"] + ["framing"] * 3 + ["truth"] + ["interaction"] * 3)
    assert model["reference_framing"] == "original"
    authoritative = terms["framing[authoritative]"]
    assert authoritative["ci_low"] > 1 and authoritative["odds_ratio_ci_low"] > math.exp(1)
    assert authoritative["posterior_probability_positive"] > 0.99
    assert "accepting a false claim" in authoritative["meaning"]
    assert terms["true claim"]["ci_low"] > 0 and terms["true claim"]["posterior_probability_positive"] > 0.99
    # null terms: intervals that hold 0, odds-ratio intervals that hold 1
    for name in ("framing[consensus]", "framing[emotional]", "framing[authoritative]:true claim"):
        assert terms[name]["ci_low"] < 0 < terms[name]["ci_high"], name
        assert terms[name]["odds_ratio_ci_low"] < 1 < terms[name]["odds_ratio_ci_high"], name
    for term in model["fixed_effects"]:
        assert term["ci_low"] < term["posterior_mean"] < term["ci_high"]
        assert 0.99 < term["r_hat"] < 1.1 and term["effective_sample_size"] > 50
    assert [vc["name"] for vc in model["random_effects"]] == ["participant", "base claim"]
    assert all(vc["sd_ci_low"] < vc["sd"] < vc["sd_ci_high"] for vc in model["random_effects"])
    assert elapsed < 60


def test_mixed_model_implies_the_rates_it_was_built_on(strong_effect_fit):
    result, _, _, _ = strong_effect_fit
    implied = {row["framing"]: row for row in result.mixed_model["implied_rates"]}
    assert list(implied) == ["original", "authoritative", "consensus", "emotional"]
    assert "false_acceptance_minus_original" not in implied["original"]
    authoritative = implied["authoritative"]["false_acceptance_minus_original"]
    assert authoritative["ci_low"] > 0.2  # +2.5 logits from about 0.27
    observed = result.summary("original")["false_acceptance_rate"]["estimate"]
    original = implied["original"]["false_acceptance"]
    assert original["ci_low"] < observed < original["ci_high"]
    for row in implied.values():
        for name in ("false_acceptance", "true_acceptance"):
            assert 0 < row[name]["ci_low"] < row[name]["estimate"] < row[name]["ci_high"] < 1
    # the report's tables and text carry them
    rates = result.tables()["mixed_model_rates"].set_index("framing")
    assert rates.loc["authoritative", "false_acceptance_minus_original_ci_low"] == authoritative["ci_low"]
    text = result.to_text()
    assert "Implied acceptance per framing" in text and "R-hat" in text and "divergent transitions" in text


def test_mixed_model_reports_its_sampling_and_repeats_with_its_seed(strong_effect_fit):
    result, stages, _, again = strong_effect_fit
    diagnostics = result.mixed_model["diagnostics"]
    assert (diagnostics["chains"], diagnostics["warmup"], diagnostics["draws"]) == (2, 300, 300)
    assert diagnostics["divergences"] == 0
    assert diagnostics["max_r_hat"] == max(t["r_hat"] for t in result.mixed_model["fixed_effects"]
                                           + result.mixed_model["random_effects"])
    assert [fraction for fraction, _ in stages] == [0.0, 0.5, 1.0]
    assert stages[0][1].startswith("warming up 2 chains")
    assert again["fixed_effects"] == result.mixed_model["fixed_effects"]


def _model_claims(table):
    from annotation.analysis.statistics import _apply_exclusions, _prepare

    claims, _, _ = _apply_exclusions(_prepare(table), AnalysisOptions(exclusions=()))
    return claims


def test_mixed_model_without_both_truths_and_a_fit_that_misses_the_thresholds(monkeypatch):
    """One short fit on false claims alone, judged by impossible thresholds: the truth terms
    are left out (and it says so), and the fit is flagged as not converged."""
    from annotation.analysis import mixed_model

    monkeypatch.setattr(mixed_model, "MIN_EFFECTIVE_SAMPLES", 10**6)
    monkeypatch.setattr(mixed_model, "MAX_R_HAT", 1.0)
    table = many_participants_table(participants=20, per_participant=8, seed=6)
    false_only = _model_claims(table)
    false_only = false_only[~false_only["true_claim"]]
    model = mixed_model.fit_mixed_model(false_only, ["original", "authoritative", "consensus", "emotional"],
                                        chains=2, warmup=100, draws=100)
    assert model["fitted"], model["reason"]
    assert [t["kind"] for t in model["fixed_effects"]] == ["intercept", "framing", "framing", "framing"]
    assert "accepting a claim" in model["fixed_effects"][1]["meaning"]
    assert any("truth term" in w for w in model["warnings"])
    assert set(model["implied_rates"][1]) == {"framing", "acceptance", "acceptance_minus_original"}
    assert model["diagnostics"]["converged"] is False
    assert any("effective sample size" in w for w in model["warnings"])
    assert any("R-hat" in w for w in model["warnings"])
    assert "NOT converged" in diagnostics_sentence(model)


def test_mixed_model_reports_why_it_was_not_fitted():
    one_framing = pd.DataFrame([judgment(f"P{i}", f"f{i % 3}", "original", i % 2 == 0, 3, 3) for i in range(30)])
    assert "two framings" in analyze(one_framing, AnalysisOptions(bootstrap_resamples=0)).mixed_model["reason"]
    few = analyze(hand_table(), AnalysisOptions(bootstrap_resamples=0)).mixed_model
    assert few["fitted"] is False and "too few judgments" in few["reason"]
    text = analyze(hand_table(), AnalysisOptions(bootstrap_resamples=0)).to_text()
    assert "not fitted: too few judgments" in text
    same = hand_table().assign(accurate_response="SUPPORTS")
    big = pd.concat([same.assign(Annotator_ID=same["Annotator_ID"] + str(k)) for k in range(3)])
    assert analyze(big, AnalysisOptions(bootstrap_resamples=0, exclusions=())).mixed_model["reason"] == \
        "every judgment has the same response"
    assert analyze(hand_table(), AnalysisOptions(mixed_model=False)).mixed_model["reason"] == "switched off"


def test_bootstrap_interval_equals_a_loop_over_resampled_tables():
    # The same weights, applied the slow way: build each resampled table by repeating each
    # participant's rows as often as they were drawn, and compute the rate from it.
    table = many_participants_table(participants=12, seed=9)
    resamples = 300
    # The participant bootstrap is an option now (the default interval is two-way); this
    # hand check of it stays.
    result = analyze(table, AnalysisOptions(bootstrap_resamples=resamples, seed=4, mixed_model=False,
                                            interval="participant-bootstrap"))
    participants = sorted(table["Annotator_ID"].unique())
    weights = cluster_bootstrap_weights(len(participants), resamples, np.random.default_rng(4))
    by_participant = {p: table[table["Annotator_ID"] == p] for p in participants}
    rates = []
    for draw in weights:
        resampled = pd.concat([by_participant[p] for p, times in zip(participants, draw) for _ in range(times)])
        false_claims = resampled[resampled["true_label"] == "REFUTES"]
        if len(false_claims):
            rates.append((false_claims["accurate_response"] == "SUPPORTS").mean())
    low, high = np.quantile(rates, [0.025, 0.975])
    rate = result.summary("all")["false_acceptance_rate"]
    assert (rate["ci_low"], rate["ci_high"]) == (pytest.approx(low), pytest.approx(high))


def brute_force_alpha(units, values):
    """Krippendorff's alpha as 1 - D_o / D_e over explicit pairs of values."""
    by_unit = {}
    for unit, value in zip(units, values):
        by_unit.setdefault(unit, []).append(value)
    pairable = {u: v for u, v in by_unit.items() if len(v) >= 2}
    all_values = [value for vs in pairable.values() for value in vs]
    n = len(all_values)
    observed = sum(
        sum(1 for i, a in enumerate(vs) for j, b in enumerate(vs) if i != j and a != b) / (len(vs) - 1)
        for vs in pairable.values()) / n
    expected = sum(1 for i, a in enumerate(all_values) for j, b in enumerate(all_values)
                   if i != j and a != b) / (n * (n - 1))
    return 1 - observed / expected


@pytest.mark.parametrize("seed", range(5))
def test_krippendorff_alpha_equals_the_pairwise_definition_on_random_data(seed):
    rng = np.random.default_rng(seed)
    units = rng.integers(0, 15, 60)
    values = rng.integers(0, 2 + seed % 3, 60)
    assert krippendorff_alpha_nominal(units, values)["alpha"] == pytest.approx(brute_force_alpha(units, values))


# --- The default interval: two-way cluster-robust (participants and base claims) ------------

def hand_two_way_interval(table, framing, level=0.95):
    """False acceptance of one framing and its two-way interval, by the textbook formula.

    Cameron, Gelbach & Miller (2011): with e_i = (y_i - p) / n the judgments' contributions
    to the rate p = mean(y), V = P/(P-1) sum_p (sum_{i in p} e_i)^2 + C/(C-1) sum_c (...)^2
    - sum_(p,c) (...)^2, and the interval p +- t(min(P, C) - 1) sqrt(V). Written with plain
    Python loops over the rows, apart from the analysis code.
    """
    from scipy import stats

    rows = [row for row in table.to_dict("records")
            if row["framing_type"] == framing and row["true_label"] == "REFUTES"]
    y = [1.0 if row["accurate_response"] == "SUPPORTS" else 0.0 for row in rows]
    p = sum(y) / len(y)
    by_participant, by_claim, by_cell = {}, {}, {}
    for row, value in zip(rows, y):
        e = (value - p) / len(y)
        claim = row["full_claim_id"].split(":")[0]
        by_participant[row["Annotator_ID"]] = by_participant.get(row["Annotator_ID"], 0.0) + e
        by_claim[claim] = by_claim.get(claim, 0.0) + e
        by_cell[(row["Annotator_ID"], claim)] = by_cell.get((row["Annotator_ID"], claim), 0.0) + e
    n_p, n_c = len(by_participant), len(by_claim)
    v_p = n_p / (n_p - 1) * sum(x * x for x in by_participant.values())
    v_c = n_c / (n_c - 1) * sum(x * x for x in by_claim.values())
    variance = v_p + v_c - sum(x * x for x in by_cell.values())
    if variance <= 0:
        variance = max(v_p, v_c)
    half = stats.t.ppf(1 - (1 - level) / 2, min(n_p, n_c) - 1) * math.sqrt(variance)
    return p, max(0.0, p - half), min(1.0, p + half)


def test_the_default_two_way_interval_matches_the_textbook_formula():
    """Guards against a wrong two-way variance (a missing cluster term, the intersection
    term added instead of subtracted, a wrong df)."""
    table = many_participants_table(participants=30, base_claims=20, per_participant=10, seed=3)
    result = analyze(table, AnalysisOptions(mixed_model=False))
    assert result.options.interval == "two-way"
    for framing in ("original", "authoritative", "consensus"):
        estimate, low, high = hand_two_way_interval(table, framing)
        rate = result.summary(framing)["false_acceptance_rate"]
        assert rate["estimate"] == pytest.approx(estimate)
        assert (rate["ci_low"], rate["ci_high"]) == (pytest.approx(low), pytest.approx(high)), framing


def test_the_two_way_interval_sees_claims_that_differ_where_the_participant_bootstrap_does_not():
    """Guards against intervals that only resample participants: here every participant
    answers alike, but half the false claims are always accepted and half never, so the rate
    depends entirely on which claims were drawn. The participant bootstrap sees no
    uncertainty at all; the two-way interval must."""
    rows = [judgment(f"P{p}", f"f{c}", "original", c % 2 == 0, 3, 3) for p in range(12) for c in range(10)]
    table = pd.DataFrame(rows)
    two_way = analyze(table, AnalysisOptions(mixed_model=False)).summary("original")["false_acceptance_rate"]
    by_participant = analyze(table, AnalysisOptions(mixed_model=False, interval="participant-bootstrap",
                                                    bootstrap_resamples=500)
                             ).summary("original")["false_acceptance_rate"]
    assert two_way["estimate"] == by_participant["estimate"] == 0.5
    assert by_participant["ci_low"] == by_participant["ci_high"] == 0.5
    # Contributions e = (y - 1/2) / 120: every participant's sum is 0 (V_P = 0), every
    # claim's is 12 * (+-1/2) / 120 = +-0.05 (V_C = 10/9 * 10 * 0.05^2), every cell holds one
    # judgment (V_PC = 120 * (0.5 / 120)^2); t with min(12, 10) - 1 = 9 df.
    from scipy import stats

    half = stats.t.ppf(0.975, 9) * math.sqrt(10 / 9 * 10 * 0.05 ** 2 - 120 * (0.5 / 120) ** 2)
    assert (two_way["ci_low"], two_way["ci_high"]) == (pytest.approx(0.5 - half), pytest.approx(0.5 + half))


def test_the_difference_interval_is_the_two_way_interval_of_the_paired_contributions():
    table = many_participants_table(participants=30, base_claims=20, per_participant=10, seed=8)
    result = analyze(table, AnalysisOptions(mixed_model=False))
    difference = result.summary("authoritative")["difference_from_original"]["false_acceptance_rate"]
    original = result.summary("original")["false_acceptance_rate"]["estimate"]
    authoritative = result.summary("authoritative")["false_acceptance_rate"]["estimate"]
    assert difference["estimate"] == pytest.approx(authoritative - original)
    assert difference["ci_low"] < difference["estimate"] < difference["ci_high"]
    # By hand: contributions +(y - p_A)/n_A for authoritative, -(y - p_O)/n_O for original.
    from scipy import stats

    false = table[table["true_label"] == "REFUTES"]
    sums_p, sums_c, sums_pc = {}, {}, {}
    for framing, sign, p in (("authoritative", 1, authoritative), ("original", -1, original)):
        subset = false[false["framing_type"] == framing]
        for row in subset.to_dict("records"):
            e = sign * ((row["accurate_response"] == "SUPPORTS") - p) / len(subset)
            claim = row["full_claim_id"].split(":")[0]
            for sums, key in ((sums_p, row["Annotator_ID"]), (sums_c, claim),
                              (sums_pc, (row["Annotator_ID"], claim))):
                sums[key] = sums.get(key, 0.0) + e
    n_p, n_c = len(sums_p), len(sums_c)
    variance = (n_p / (n_p - 1) * sum(x * x for x in sums_p.values())
                + n_c / (n_c - 1) * sum(x * x for x in sums_c.values()) - sum(x * x for x in sums_pc.values()))
    half = stats.t.ppf(0.975, min(n_p, n_c) - 1) * math.sqrt(variance)
    assert (difference["ci_low"], difference["ci_high"]) == (
        pytest.approx(difference["estimate"] - half), pytest.approx(difference["estimate"] + half))


# --- The primary test: permutation of framing labels within base claims ----------------------

def test_permutation_p_value_agrees_with_the_exact_sign_flip_distribution():
    """With two framings, permuting labels within each base claim swaps the claim's two
    items or not: 2^n equally likely relabellings, enumerated here. The Monte Carlo p-value
    must agree with the exact one. Guards against a one-sided p or a wrong null
    distribution."""
    import itertools

    from annotation.analysis.statistics import permutation_framing_test

    rng = np.random.default_rng(1)
    n_claims = 10
    # per claim: judgments of the original and the authoritative item (5 raters each)
    yes = rng.integers(0, 6, size=(n_claims, 2))
    base, framing, accept = [], [], []
    for c in range(n_claims):
        for f, name in enumerate(("original", "authoritative")):
            for k in range(5):
                base.append(f"f{c}")
                framing.append(name)
                accept.append(k < yes[c, f])
    observed = (yes[:, 1].sum() - yes[:, 0].sum()) / (5 * n_claims)
    extreme = 0
    for flips in itertools.product((False, True), repeat=n_claims):
        swapped = np.where(np.array(flips)[:, None], yes[:, ::-1], yes)
        extreme += abs((swapped[:, 1].sum() - swapped[:, 0].sum()) / (5 * n_claims)) >= abs(observed) - 1e-12
    exact = extreme / 2 ** n_claims
    result = permutation_framing_test(base, framing, accept, ["original", "authoritative"], "original",
                                      20000, np.random.default_rng(0))
    row = result["rows"][0]
    assert row["difference"] == pytest.approx(observed)
    assert row["p_value"] == pytest.approx(exact, abs=0.01)
    assert row["p_value_holm"] == row["p_value"]  # one framing tested: Holm changes nothing


def test_the_report_leads_with_the_permutation_test_of_each_framing():
    table = many_participants_table(participants=40, per_participant=12, effect=3.0, seed=2)
    result = analyze(table, AnalysisOptions(mixed_model=False, permutations=999, seed=5))
    tests = result.framing_tests
    assert tests["method"].startswith("permutation") and tests["permutations"] == 999
    rows = {row["framing"]: row for row in tests["rows"]}
    assert set(rows) == {"authoritative", "consensus", "emotional"}
    assert rows["authoritative"]["p_value_holm"] < 0.01 < rows["consensus"]["p_value"]
    assert rows["authoritative"]["difference"] == pytest.approx(
        result.summary("authoritative")["difference_from_original"]["false_acceptance_rate"]["estimate"])
    holm = holm_adjust([rows[f]["p_value"] for f in ("authoritative", "consensus", "emotional")])
    assert [rows[f]["p_value_holm"] for f in ("authoritative", "consensus", "emotional")] == holm
    assert analyze(table, AnalysisOptions(mixed_model=False, permutations=999, seed=5)).framing_tests == tests
    text = result.to_text()
    assert text.index("Framing effect on false acceptance") < text.index("Per framing")
    assert "Descriptive tests" in text and "assume independent judgments" in text
    off = analyze(table, AnalysisOptions(mixed_model=False, permutations=0)).framing_tests
    assert off["rows"][0]["p_value"] is None and "switched off" in off["reason"]


def test_interval_and_permutation_options_are_parsed_and_named_in_errors():
    options = AnalysisOptions.from_params({"interval": "participant-bootstrap", "permutations": "500"})
    assert (options.interval, options.permutations) == ("participant-bootstrap", 500)
    assert AnalysisOptions.from_params(options.to_params()) == options
    assert AnalysisOptions().interval == "two-way"
    with pytest.raises(ValueError, match="parameter 'interval': value 'wild': accepted: two-way, "
                                         "participant-bootstrap, two-way-bootstrap"):
        AnalysisOptions.from_params({"interval": "wild"})
    with pytest.raises(ValueError, match="parameter 'permutations': value '-1'"):
        AnalysisOptions.from_params({"permutations": "-1"})
    # An empty interval is a request for no method, not for the default: the API's schema
    # says the choice is one of the names (schemathesis found `?interval=` answered 200).
    with pytest.raises(ValueError, match="parameter 'interval': value '': give exactly one value"):
        AnalysisOptions.from_params({"interval": ""})


def test_the_primary_test_says_why_it_has_no_p_value():
    from annotation.analysis.statistics import permutation_framing_test

    result = permutation_framing_test([], [], [], ["original", "authoritative"], "original", 100,
                                      np.random.default_rng(0))
    assert result["reason"] == "no judgments to test"
    assert result["rows"][0]["p_value"] is None and result["rows"][0]["n"] == 0


@pytest.mark.slow
def test_fitting_many_models_in_one_process_does_not_pile_up_compiled_code():
    """A worker fits model after model: JAX's compiled samplers must not accumulate (each
    held ~1,700 memory maps and ~75 MiB; the 39th fit of a run failed to compile)."""
    from annotation.analysis.mixed_model import fit_mixed_model

    claims = _model_claims(many_participants_table(participants=20, per_participant=8, seed=7))
    framings = ["original", "authoritative", "consensus", "emotional"]

    def memory_maps() -> int:
        with open("/proc/self/maps") as maps:
            return sum(1 for _ in maps)

    fit_mixed_model(claims, framings, chains=2, warmup=50, draws=50, seed=1)
    after_one = memory_maps()
    for seed in (2, 3):
        assert fit_mixed_model(claims, framings, chains=2, warmup=50, draws=50, seed=seed)["fitted"]
    assert memory_maps() - after_one < 500
