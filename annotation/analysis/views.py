"""The study report: the analysis tables and figures a paper shows, with their downloads.

Thin views: parse the options, fetch the (cached) analysis, render. Everything works
without JavaScript: the options form is a plain GET form, figures are <img> elements,
and every download is a link.
"""
from __future__ import annotations

import math
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_POST, require_safe

from annotation.analysis.model_fits import TYPICAL_SECONDS, model_fit_start
from annotation.analysis.options import (
    ALL,
    EXCLUSION_RULES,
    INTERVAL_METHODS,
    AnalysisOptions,
)
from annotation.analysis.plots import PLOTS, plot_bytes
from annotation.analysis.study import report_analysis
from annotation.analysis.text_report import (
    diagnostics_sentence,
    implied_rate_rows,
    interval_description,
    primary_test_caption,
)
from annotation.studies.selectors import studies_visible_to
from core.figures import FIGURE_FORMATS
from core.formatting import format_number, format_p_value

TABLE_TITLES = {
    "framing_tests": "Framing effect on false acceptance (primary test)",
    "framing_summary": "Per-framing rates and means",
    "exclusions": "Exclusions",
    "chi_square": "Chi-square tests (descriptive)",
    "familiarity_tests": "False acceptance at the chosen familiarity levels (descriptive)",
    "agreement": "Krippendorff's alpha",
    "mixed_model": "Mixed-effects logistic regression",
    "mixed_model_rates": "Mixed model: implied acceptance per framing",
    "confidence_distribution": "Confidence distributions",
}
DATA_FORMATS = {"json": "application/json", "txt": "text/plain; charset=utf-8"}


def _options_or_error(request) -> tuple[AnalysisOptions, str]:
    try:
        return AnalysisOptions.from_params(request.GET), ""
    except ValueError as exc:
        return AnalysisOptions(), str(exc)


def _visible_study(request, pk):
    return get_object_or_404(studies_visible_to(request.user), pk=pk)


def _interval(estimate: dict, digits=3) -> str:
    if estimate["ci_low"] is None or not math.isfinite(estimate["ci_low"]):
        return ""
    return f"[{format_number(estimate['ci_low'], digits)}, {format_number(estimate['ci_high'], digits)}]"


def _cell(estimate: dict, digits=3) -> dict:
    return {"value": format_number(estimate["estimate"], digits), "interval": _interval(estimate, digits)}


def _display(result) -> dict:
    """The result's numbers as the strings the page shows (the CSVs carry full precision)."""
    rates = []
    for row in result.framings:
        rates.append({
            "framing": row["framing"], "is_total": row["framing"] == ALL, "n": row["n"],
            "n_true": row["n_true"], "n_false": row["n_false"], "participants": row["participants"],
            "cells": [_cell(row[name]) for name in (
                "accuracy", "accuracy_true", "accuracy_false", "false_acceptance_rate", "false_rejection_rate")],
            "means": [_cell(row[name], 2) for name in (
                "mean_confidence", "mean_confidence_true", "mean_confidence_false",
                "mean_familiarity", "mean_familiarity_true", "mean_familiarity_false")],
        })
    differences = [{
        "framing": row["framing"],
        "cells": [_cell(row["difference_from_original"][name], 2 if name == "mean_confidence" else 3)
                  for name in ("false_acceptance_rate", "false_rejection_rate", "accuracy", "mean_confidence")],
    } for row in result.framings if row["difference_from_original"]]
    by_framing = {row["framing"]: row for row in result.framings}
    primary = [{
        "framing": row["framing"], "n": row["n"], "n_reference": row["n_reference"],
        "rate": format_number(row["rate"]), "reference_rate": format_number(row["reference_rate"]),
        "difference": (_cell(by_framing[row["framing"]]["difference_from_original"]["false_acceptance_rate"])
                       if row["difference"] is not None else {"value": "", "interval": ""}),
        "p": format_p_value(row["p_value"]), "p_holm": format_p_value(row["p_value_holm"]),
    } for row in result.framing_tests["rows"]]
    chi_square = []
    for key, label in (("false_claims", "False claims"), ("true_claims", "True claims")):
        test = result.chi_square[key]
        chi_square.append({
            "label": label, "n": test["n"], "reason": test["reason"],
            "statistic": format_number(test["statistic"]), "dof": test["dof"], "p": format_p_value(test["p_value"]),
            "cramers_v": format_number(test["cramers_v"]), "min_expected": format_number(test["min_expected"], 1),
            "below_5": test["cells_expected_below_5"],
            "table": [(framing, cell["yes"], cell["no"]) for framing, cell in test["table"].items()],
        })
    familiarity = [{
        **row, "rate": format_number(row["false_acceptance_rate"]),
        "interval": f"[{format_number(row['ci_low'])}, {format_number(row['ci_high'])}]" if row["n"] else "",
        "p": format_p_value(row["p_value"]), "p_holm": format_p_value(row["p_value_holm"]),
    } for row in result.familiarity_tests["rows"]]
    agreement = [{**row, "alpha_text": format_number(row["alpha"])}
                 for row in [{"framing": ALL, **result.agreement["overall"]}] + result.agreement["by_framing"]]
    model = result.mixed_model
    terms = [{
        "term": term["term"], "meaning": term.get("meaning", ""),
        "mean": format_number(term["posterior_mean"]), "sd": format_number(term["posterior_sd"]),
        "odds_ratio": format_number(term["odds_ratio"]),
        "interval": f"[{format_number(term['odds_ratio_ci_low'])}, {format_number(term['odds_ratio_ci_high'])}]",
        "p_positive": format_number(term["posterior_probability_positive"]),
        "r_hat": format_number(term.get("r_hat")), "ess": format_number(term.get("effective_sample_size"), 0),
    } for term in model.get("fixed_effects", [])]
    random_effects = [{"name": vc["name"], "sd": format_number(vc["sd"]),
                       "interval": f"[{format_number(vc['sd_ci_low'])}, {format_number(vc['sd_ci_high'])}]",
                       "r_hat": format_number(vc.get("r_hat")),
                       "ess": format_number(vc.get("effective_sample_size"), 0)}
                      for vc in model.get("random_effects", [])]
    implied = implied_rate_rows(model) if model.get("implied_rates") else []
    model_display = {
        "terms": terms, "random_effects": random_effects,
        "implied_columns": list(implied[0])[1:] if implied else [],
        "implied": [{"framing": row["framing"], "cells": [row[k] for k in list(row)[1:]]} for row in implied],
        "diagnostics": diagnostics_sentence(model) if model.get("fitted") else "",
        "job": model.get("job"),
    }
    return {"rates": rates, "differences": differences, "primary": primary, "chi_square": chi_square, "familiarity": familiarity,
            "agreement": agreement, "model": model_display}


@login_required
@require_safe
def study_report(request, pk):
    study = _visible_study(request, pk)
    options, error = _options_or_error(request)
    if error:
        # Say what is wrong and offer the form again; no analysis under options not asked for.
        return render(request, "annotation/study_report.html", {
            "study": study, "options": options, "error": error, "result": None,
            "rules": _rules(options), "familiarity_choices": _familiarity_choices(options),
            "interval_methods": list(INTERVAL_METHODS.items()),
            "reset_url": reverse("annotation:study-report", args=[study.pk]),
        }, status=400)
    result = report_analysis(study=study, options=options)
    query = urlencode(options.to_params())
    base = reverse("annotation:study-report", args=[study.pk])
    plots = [{
        "name": name, "title": title,
        "src": reverse("annotation:study-report-plot", args=[study.pk, name, "svg"]) + "?" + query,
        "downloads": [(fmt.upper(), reverse("annotation:study-report-plot", args=[study.pk, name, fmt])
                       + "?" + urlencode({**options.to_params(), "download": "1"})) for fmt in FIGURE_FORMATS],
    } for name, (title, _) in PLOTS.items()]
    tables = [(TABLE_TITLES[name], reverse("annotation:study-report-table", args=[study.pk, name]) + "?" + query)
              for name in TABLE_TITLES]
    downloads = [(label, reverse("annotation:study-report-data", args=[study.pk, fmt]) + "?" + query)
                 for fmt, label in (("json", "Full analysis (JSON)"), ("txt", "Text report"))]
    context = {
        "study": study,
        "result": result,
        "options": options,
        "error": error,
        "display": _display(result),
        "rules": _rules(options),
        "familiarity_choices": _familiarity_choices(options),
        "plots": plots,
        "tables": tables,
        "downloads": downloads,
        "reset_url": base,
        "confidence_percent": f"{options.confidence_level:.0%}",
        "interval_description": interval_description(options),
        "primary_caption": primary_test_caption(result),
        "interval_methods": list(INTERVAL_METHODS.items()),
        "command": f'python manage.py analyze_study {study.pk} --format text',
        "model_fit_url": reverse("annotation:study-report-model-fit", args=[study.pk]) + "?" + query,
        "model_status_url": reverse("api:study-analysis-model", args=[study.pk]) + "?" + query,
        "model_running": bool(result.mixed_model.get("job")) and result.mixed_model["job"]["status"] in ("queued", "running"),
        "model_typical_seconds": TYPICAL_SECONDS,
    }
    return render(request, "annotation/study_report.html", context)


@login_required
@require_POST
def study_report_model_fit(request, pk):
    """Starts the mixed model's fit under the report's options (a worker runs it) and goes
    back to the report, which shows its progress."""
    study = _visible_study(request, pk)
    options, error = _options_or_error(request)
    if error:
        return HttpResponse(error, status=400, content_type="text/plain; charset=utf-8")
    if options.mixed_model:
        model_fit_start(study=study, options=options, user=request.user)
    return redirect(reverse("annotation:study-report", args=[study.pk]) + "?"
                    + urlencode(options.to_params()) + "#model")


def _rules(options: AnalysisOptions) -> list[tuple[str, str, bool]]:
    return [(rule, description.format(min_median_response_ms=options.min_median_response_ms),
             rule in options.exclusions) for rule, description in EXCLUSION_RULES.items()]


def _familiarity_choices(options: AnalysisOptions) -> list[tuple[int, bool]]:
    return [(level, level in options.familiarity_levels) for level in range(1, 6)]


def _attachment(response: HttpResponse, filename: str) -> HttpResponse:
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _file_stem(study) -> str:
    return slugify(study.name) or f"study-{study.pk}"


@login_required
@require_safe
def study_report_plot(request, pk, name, fmt):
    study = _visible_study(request, pk)
    if name not in PLOTS or fmt not in FIGURE_FORMATS:
        raise Http404("no such plot")
    options, error = _options_or_error(request)
    if error:
        return HttpResponse(error, status=400, content_type="text/plain; charset=utf-8")
    result = report_analysis(study=study, options=options)
    response = HttpResponse(plot_bytes(result, name, fmt), content_type=FIGURE_FORMATS[fmt])
    response["Cache-Control"] = "private, no-cache"
    if request.GET.get("download"):
        _attachment(response, f"{_file_stem(study)}-{name}.{fmt}")
    return response


@login_required
@require_safe
def study_report_table(request, pk, name):
    study = _visible_study(request, pk)
    if name not in TABLE_TITLES:
        raise Http404("no such table")
    options, error = _options_or_error(request)
    if error:
        return HttpResponse(error, status=400, content_type="text/plain; charset=utf-8")
    table = report_analysis(study=study, options=options).tables()[name]
    response = HttpResponse(table.to_csv(index=False), content_type="text/csv; charset=utf-8")
    return _attachment(response, f"{_file_stem(study)}-{name}.csv")


@login_required
@require_safe
def study_report_data(request, pk, fmt):
    study = _visible_study(request, pk)
    if fmt not in DATA_FORMATS:
        raise Http404("no such format")
    options, error = _options_or_error(request)
    if error:
        return HttpResponse(error, status=400, content_type="text/plain; charset=utf-8")
    result = report_analysis(study=study, options=options)
    if fmt == "json":
        import orjson

        body = orjson.dumps({"study": {"id": study.pk, "name": study.name}, **result.to_dict()},
                            option=orjson.OPT_INDENT_2)
    else:
        body = f"Study: {study.name} (id {study.pk})\n\n{result.to_text()}"
    return _attachment(HttpResponse(body, content_type=DATA_FORMATS[fmt]),
                       f"{_file_stem(study)}-analysis.{fmt}")
