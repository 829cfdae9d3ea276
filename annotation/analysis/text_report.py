"""The plain-text report of a study analysis: what `manage.py analyze_study` prints and the
report's `.txt` download carry.

Pure: it reads an `AnalysisResult` and writes text, no Django.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from annotation.analysis.options import ALL, INTERVAL_METHODS
from core.formatting import format_number, format_p_value

if TYPE_CHECKING:
    from annotation.analysis.statistics import AnalysisResult


def _with_interval(estimate: dict, digits: int = 3) -> str:
    text = format_number(estimate["estimate"], digits)
    if estimate["ci_low"] is not None and math.isfinite(estimate["ci_low"]):
        text += f" [{format_number(estimate['ci_low'], digits)}, {format_number(estimate['ci_high'], digits)}]"
    return text


def interval_description(options) -> str:
    """What the intervals are, as a table caption says it: "95% two-way cluster-robust ..."."""
    text = f"{options.confidence_level:.0%} {INTERVAL_METHODS[options.interval]} intervals"
    if options.interval != "two-way":
        text += f", {options.bootstrap_resamples} resamples, seed {options.seed}"
    return text


def primary_test_caption(result: AnalysisResult) -> str:
    tests = result.framing_tests
    return ("Framing effect on false acceptance (primary test): difference from the original wording, "
            f"{interval_description(result.options)}; two-sided p from {tests['permutations']} "
            f"permutations of framing labels within base claims (seed {result.options.seed}), "
            "Holm-adjusted across framings")


def format_text(result: AnalysisResult) -> str:
    options = result.options
    level = f"{options.confidence_level:.0%}"
    lines = ["FrameLab study analysis", "=" * 23, ""]
    c = result.counts
    lines.append(f"Judgments analysed: {c['judgments_analysed']} of {c['judgments']} "
                 f"from {c['participants_analysed']} of {c['participants']} participants; "
                 f"{c['items']} items, {c['base_claims']} base claims, {c['framings']} framings.")
    if c["attention_check_rows"]:
        lines.append(f"Attention-check answers (not analysed as claims): {c['attention_check_rows']}.")
    lines += ["", "Exclusions (applied in this order; 'removed' counts what earlier rules left)"]
    exclusions = pd.DataFrame([{
        "rule": row["rule"], "applied": "yes" if row["applied"] else "no",
        "flagged participants": row["participants_flagged"], "flagged judgments": row["judgments_flagged"],
        "removed participants": row["participants_removed"], "removed judgments": row["judgments_removed"],
        "meaning": row["description"] + ("" if row["data_available"] else " (no data)"),
    } for row in result.exclusions])
    lines.append(exclusions.to_string(index=False))

    tests = result.framing_tests
    lines += ["", primary_test_caption(result)]
    if tests["rows"]:
        by_framing = {row["framing"]: row for row in result.framings}
        lines.append(pd.DataFrame([{
            "framing": row["framing"], "n": row["n"], "n original": row["n_reference"],
            "false acceptance": format_number(row["rate"]), "original": format_number(row["reference_rate"]),
            "difference": (_with_interval(by_framing[row["framing"]]["difference_from_original"]
                                          ["false_acceptance_rate"]) if row["difference"] is not None else "-"),
            "p": format_p_value(row["p_value"]), "p (Holm)": format_p_value(row["p_value_holm"]),
        } for row in tests["rows"]]).to_string(index=False))
    if tests["reason"]:
        lines.append(f"  not tested: {tests['reason']}")

    lines += ["", f"Per framing ({interval_description(options)})"]
    rates = pd.DataFrame([{
        "framing": row["framing"], "n": row["n"], "participants": row["participants"],
        "accuracy": _with_interval(row["accuracy"]),
        "acc. true": _with_interval(row["accuracy_true"]),
        "acc. false": _with_interval(row["accuracy_false"]),
        "false acceptance": _with_interval(row["false_acceptance_rate"]),
        "false rejection": _with_interval(row["false_rejection_rate"]),
    } for row in result.framings])
    lines.append(rates.to_string(index=False))
    differences = [row for row in result.framings if row["difference_from_original"]]
    if differences:
        lines += ["", f"Difference from the original framing ({interval_description(options)})"]
        lines.append(pd.DataFrame([{
            "framing": row["framing"],
            "false acceptance": _with_interval(row["difference_from_original"]["false_acceptance_rate"]),
            "false rejection": _with_interval(row["difference_from_original"]["false_rejection_rate"]),
            "accuracy": _with_interval(row["difference_from_original"]["accuracy"]),
            "mean confidence": _with_interval(row["difference_from_original"]["mean_confidence"], 2),
        } for row in differences]).to_string(index=False))
    lines += ["", "Mean confidence and familiarity (1-5)"]
    means = pd.DataFrame([{
        "framing": row["framing"],
        "confidence": _with_interval(row["mean_confidence"], 2),
        "conf. true": _with_interval(row["mean_confidence_true"], 2),
        "conf. false": _with_interval(row["mean_confidence_false"], 2),
        "familiarity": _with_interval(row["mean_familiarity"], 2),
        "fam. true": _with_interval(row["mean_familiarity_true"], 2),
        "fam. false": _with_interval(row["mean_familiarity_false"], 2),
    } for row in result.framings])
    lines.append(means.to_string(index=False))

    lines += ["", "Descriptive tests (they assume independent judgments, as FrameRef reports them; "
                  "the primary test above does not)",
              "", "Chi-square tests of framing x response (Pearson, no continuity correction)"]
    for key, label in (("false_claims", "false claims"), ("true_claims", "true claims")):
        test = result.chi_square[key]
        if test["statistic"] is None:
            lines.append(f"  {label}: not computed ({test['reason']}); n = {test['n']}")
        else:
            lines.append(f"  {label}: chi2({test['dof']}, N = {test['n']}) = {test['statistic']:.3f}, "
                         f"{format_p_value(test['p_value'], 'p ')}, Cramer's V = {test['cramers_v']:.3f}; "
                         f"smallest expected count {test['min_expected']:.1f}"
                         + (f" ({test['cells_expected_below_5']} cell(s) below 5)"
                            if test["cells_expected_below_5"] else ""))

    levels = ",".join(str(level) for level in result.familiarity_tests["levels"])
    lines += ["", f"False acceptance at familiarity {levels}: exact two-sided binomial test against 0.5 "
                  f"(Clopper-Pearson {level} intervals, Holm-adjusted p across framings)"]
    lines.append(pd.DataFrame([{
        "framing": row["framing"], "n": row["n"], "accepted": row["false_acceptances"],
        "rate": format_number(row["false_acceptance_rate"]),
        "interval": (f"[{format_number(row['ci_low'])}, {format_number(row['ci_high'])}]" if row["n"] else "-"),
        "p": format_p_value(row["p_value"]), "p (Holm)": format_p_value(row["p_value_holm"]),
    } for row in result.familiarity_tests["rows"]]).to_string(index=False) if result.familiarity_tests["rows"]
        else "  no framings")

    lines += ["", "Krippendorff's alpha (nominal) on acceptance, items = full_claim_id"]
    for row in [{"framing": ALL, **result.agreement["overall"]}] + result.agreement["by_framing"]:
        if row["alpha"] is None:
            lines.append(f"  {row['framing']}: not computed ({row['reason']})")
        else:
            lines.append(f"  {row['framing']}: alpha = {row['alpha']:.3f} "
                         f"({row['units']} items rated twice or more, {row['pairable_values']} ratings)")

    model = result.mixed_model
    lines += ["", "Mixed-effects logistic regression of acceptance"]
    if not model["fitted"]:
        lines.append(f"  not fitted: {model['reason']}")
    else:
        lines.append(f"  {model['formula']}")
        lines.append(f"  {model['method']}; n = {model['n']}, {model['participants']} participants, "
                     f"{model['claims']} base claims; posterior means, SDs and {level} intervals")
        lines.append(pd.DataFrame([{
            "term": term["term"], "mean": format_number(term["posterior_mean"]), "sd": format_number(term["posterior_sd"]),
            "odds ratio": format_number(term["odds_ratio"]),
            "interval": f"[{format_number(term['odds_ratio_ci_low'])}, {format_number(term['odds_ratio_ci_high'])}]",
            "P(>0)": format_number(term["posterior_probability_positive"]),
            "R-hat": format_number(term["r_hat"]), "ESS": format_number(term["effective_sample_size"], 0),
        } for term in model["fixed_effects"]]).to_string(index=False))
        for vc in model["random_effects"]:
            lines.append(f"  SD of {vc['name']} intercepts: {vc['sd']:.3f} "
                         f"[{vc['sd_ci_low']:.3f}, {vc['sd_ci_high']:.3f}]")
        lines.append(f"  {diagnostics_sentence(model)}")
        if model["implied_rates"]:
            lines += ["", f"  Implied acceptance per framing (averaged over participants and claims), "
                          f"{level} intervals"]
            lines.append(pd.DataFrame(implied_rate_rows(model)).to_string(index=False))
        for warning in model["warnings"]:
            lines.append(f"  warning: {warning}")
    if result.notes:
        lines += ["", "Notes"] + [f"  - {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def diagnostics_sentence(model: dict) -> str:
    """The NUTS fit's convergence in one sentence (R-hat, effective sample size, divergences)."""
    d = model["diagnostics"]
    verdict = "converged" if d["converged"] else "NOT converged by the usual thresholds"
    return (f"Sampling {verdict}: largest R-hat {format_number(d['max_r_hat'])} "
            f"(at most {d['thresholds']['max_r_hat']}), smallest effective sample size "
            f"{format_number(d['min_effective_sample_size'], 0)} (at least "
            f"{d['thresholds']['min_effective_sample_size']}), {d['divergences']} divergent transitions; "
            f"{d['chains']} chains x {d['draws']} draws in {d['seconds']:.0f} s.")


def implied_rate_rows(model: dict) -> list[dict]:
    """The model's implied acceptance rates as table rows of formatted strings."""
    reference = model["reference_framing"]
    rows = []
    for row in model["implied_rates"]:
        flat = {"framing": row["framing"]}
        for name, label in (("false_acceptance", "false acceptance"), ("true_acceptance", "true acceptance"),
                            ("acceptance", "acceptance")):
            if name not in row:
                continue
            estimate = row[name]
            flat[label] = (f"{format_number(estimate['estimate'])} "
                           f"[{format_number(estimate['ci_low'])}, {format_number(estimate['ci_high'])}]")
            difference = row.get(f"{name}_minus_{reference}")
            flat[f"{label} minus {reference}"] = (
                f"{format_number(difference['estimate'])} [{format_number(difference['ci_low'])}, "
                f"{format_number(difference['ci_high'])}]" if difference else "")
        rows.append(flat)
    return rows
