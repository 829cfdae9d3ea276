"""One exclusion policy for the analysis, the human profile, calibration and human agents.

The rules (persona, status, attention, fast, design-violations) live in one object,
`annotation.analysis.exclusions.ExclusionPolicy`; each consumer applies it through the same
function and says which rules it applied and how many raters and judgments each removed.
"""
import io
import json

import pandas as pd
import pytest
from django.core.management import call_command

from annotation.analysis.exclusions import RULES, ExclusionPolicy, apply_exclusions
from annotation.analysis.human_profile import (
    human_profile_with_exclusions,
    study_human_profile,
)
from annotation.analysis.options import AnalysisOptions
from annotation.analysis.statistics import analyze
from annotation.analysis.study import study_analysis
from tests.annotation import test_study_report as report

# The report tests' study: 16 raters, of whom one returned, one failed the attention check
# and one answered in 0.7 s per item.
study, researcher = report.study, report.researcher

COLUMNS = ["Annotator_ID", "full_claim_id", "framing_type", "true_label",
           "accurate_response", "confidence_response", "familiarity_response"]
QUICK = {"bootstrap_resamples": 0, "mixed_model": False, "permutations": 0}


def crossed_table() -> pd.DataFrame:
    """Three raters on two base claims; r1 saw both framings of c1 (a design violation)."""
    rows = [
        ("r1", "c1:original", "original", "REFUTES", "REFUTES", 4, 2),
        ("r1", "c1:authoritative", "authoritative", "REFUTES", "SUPPORTS", 4, 2),
        ("r1", "c2:original", "original", "SUPPORTS", "SUPPORTS", 3, 3),
        ("r2", "c1:authoritative", "authoritative", "REFUTES", "SUPPORTS", 5, 1),
        ("r2", "c2:original", "original", "SUPPORTS", "SUPPORTS", 2, 4),
        ("r3", "c1:original", "original", "REFUTES", "REFUTES", 3, 3),
        ("r3", "c2:authoritative", "authoritative", "SUPPORTS", "REFUTES", 1, 5),
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def test_the_policy_holds_every_rule_on_by_default_and_the_analysis_uses_it():
    """Guards against the analysis and the profile keeping their own lists of rules."""
    assert set(RULES) == {"persona", "status", "attention", "fast", "design-violations"}
    policy = ExclusionPolicy()
    assert policy.rules == frozenset(RULES) and policy.min_median_response_ms == 2000
    assert AnalysisOptions().policy == policy
    options = AnalysisOptions(exclusions={"status"}, min_median_response_ms=500)
    assert options.policy == ExclusionPolicy(rules={"status"}, min_median_response_ms=500)
    with pytest.raises(ValueError, match="unknown rule 'nope'"):
        ExclusionPolicy(rules={"status", "nope"})
    assert AnalysisOptions.from_params({"exclusions": "design-violations"}).exclusions == {"design-violations"}


def test_design_violations_are_flagged_per_judgment_and_removed_by_default():
    """Guards against a rater who saw two framings of one base claim counting in a
    between-subjects comparison (their second framing is not independent of the first)."""
    table = crossed_table()
    result = analyze(table, AnalysisOptions(**QUICK))
    flow = {row["rule"]: row for row in result.exclusions}
    rule = flow["design-violations"]
    assert rule["applied"] and rule["unit"] == "judgment"
    assert (rule["participants_flagged"], rule["judgments_flagged"]) == (1, 2)
    assert (rule["judgments_removed"], rule["participants_removed"]) == (2, 0)  # r1 keeps c2
    assert result.counts["judgments_analysed"] == 5 and result.counts["participants_analysed"] == 3
    assert result.counts["judgments_excluded"] == 2
    # r2's and r3's false c1 judgments are left: authoritative accepted, original rejected.
    assert result.summary("authoritative")["false_acceptance_rate"]["estimate"] == 1.0
    assert result.summary("original")["false_acceptance_rate"]["estimate"] == 0.0
    assert "design-violations" in result.to_text()

    kept = analyze(table, AnalysisOptions(exclusions=set(RULES) - {"design-violations"}, **QUICK))
    assert kept.counts["judgments_analysed"] == 7
    off = {row["rule"]: row for row in kept.exclusions}["design-violations"]
    assert not off["applied"] and off["judgments_flagged"] == 2 and off["judgments_removed"] == 0


def test_a_rater_left_with_no_judgment_counts_as_removed_by_the_rule():
    table = crossed_table()
    table = table[~((table["Annotator_ID"] == "r1") & (table["full_claim_id"] == "c2:original"))]
    outcome = apply_exclusions(table, ExclusionPolicy())
    rule = {row["rule"]: row for row in outcome.flow}["design-violations"]
    assert (rule["participants_removed"], rule["judgments_removed"]) == (1, 2)
    assert sorted(outcome.kept["Annotator_ID"].unique()) == ["r2", "r3"]


def test_the_pure_profile_applies_the_policy_and_says_so():
    """Guards against a profile that counts raters the analysis leaves out."""
    table = crossed_table()
    table["participant_status"] = ["completed"] * 5 + ["returned"] * 2  # r3 returned
    profile = human_profile_with_exclusions(table, ExclusionPolicy())
    result = analyze(table, AnalysisOptions(**QUICK))
    assert profile.n_judgments == result.counts["judgments_analysed"] == 3
    assert profile.n_raters == result.counts["participants_analysed"] == 2
    record = profile.exclusions
    assert record["policy"]["rules"] == list(RULES)
    removed = {row["rule"]: (row["participants_removed"], row["judgments_removed"]) for row in record["flow"]}
    assert removed["status"] == (1, 2) and removed["design-violations"] == (0, 2)
    assert "status: 1 rater(s), 2 judgment(s)" in record["summary"]


@pytest.mark.django_db
def test_the_study_profile_and_the_report_agree_on_which_raters_count(study):
    """Guards against the human profile ignoring the attention and fast rules: the report
    left out the rater who failed the attention check and the one who clicked through,
    while calibration and human-calibrated agents learned from them."""
    result = study_analysis(study=study, options=AnalysisOptions(**QUICK))
    profile = study_human_profile(study=study)
    assert profile.n_raters == result.counts["participants_analysed"] == 16 - 3
    assert profile.n_judgments == result.counts["judgments_analysed"] == 96 - 18
    flow = {row["rule"]: row["participants_removed"] for row in profile.exclusions["flow"]}
    assert flow == {row["rule"]: row["participants_removed"] for row in result.exclusions}
    assert flow["attention"] == 1 and flow["fast"] == 1 and flow["status"] == 1
    # Switching a rule off in the one policy switches it off for the profile too.
    lenient = study_human_profile(study=study, policy=ExclusionPolicy(rules=set(RULES) - {"fast"}))
    assert lenient.n_raters == 14
    # The stored profile carries the record.
    assert profile.to_dict()["source"]["exclusions"]["policy"]["rules"] == list(RULES)


@pytest.mark.django_db
def test_a_profile_never_holds_personas_whatever_the_policy(study):
    from annotation.models import Participant

    Participant.objects.filter(external_id="P3-1").update(source=Participant.Source.PERSONA)
    none = study_human_profile(study=study, policy=ExclusionPolicy(rules=()))
    assert none.n_raters == 15
    assert "persona" in none.exclusions["policy"]["rules"]


@pytest.mark.django_db
def test_analyze_study_text_and_json_list_every_rule_with_its_counts(study):
    out = io.StringIO()
    call_command("analyze_study", str(study.pk), "--format", "json", "--bootstrap", "0", "--no-mixed-model",
                 stdout=out)
    data = json.loads(out.getvalue())
    assert [row["rule"] for row in data["exclusions"]] == list(RULES)
    out = io.StringIO()
    call_command("analyze_study", str(study.pk), "--bootstrap", "0", "--no-mixed-model", stdout=out)
    assert "design-violations" in out.getvalue()
