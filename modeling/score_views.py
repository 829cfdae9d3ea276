"""Researcher pages for scores, persona metrics, comparisons and calibrations (thin views).

The numbers come from modeling/metrics.py and modeling/calibration.py; plots are drawn
server-side with matplotlib's object API and served as PNG or SVG.
"""
from __future__ import annotations

import csv
import io
import json
import math

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.models import Dataset, Split
from annotation.studies.selectors import studies_visible_to
from core.figures import FIGURE_FORMATS
from core.jobs import JobStatus
from core.lookup import lookup_by_id_or_name, parse_id

from . import metrics as persona_metrics
from .calibration import METHODS
from .models import Calibration, Persona, ScoreTable
from .score_services import (
    ScoreServiceError,
    score_table_create,
    score_table_enqueue,
    score_table_load,
    score_table_request_cancel,
)

COMPARE_METRICS = ("mspr", "mspr_normalised", "balanced_accuracy", "accuracy",
                   "false_acceptance_rate", "mean_confidence")


def _records(frame):
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


def _plot_response(data: bytes, fmt: str) -> HttpResponse:
    response = HttpResponse(data, content_type=FIGURE_FORMATS[fmt])
    response["Cache-Control"] = "private, max-age=60"
    return response


def _check_format(fmt: str) -> None:
    if fmt not in FIGURE_FORMATS:
        raise Http404("plot format must be png or svg")


@login_required
def persona_metrics_page(request, pk):
    """A persona's score tables, the per-framing metrics of one, and its calibrations."""
    persona = get_object_or_404(Persona, pk=pk)
    tables = list(persona.score_tables.select_related("dataset").order_by("dataset__name", "split"))
    chosen = None
    if request.GET.get("table"):
        chosen = next((t for t in tables if str(t.pk) == request.GET["table"]), None)
    if chosen is None:
        chosen = next((t for t in tables if t.status == JobStatus.SUCCEEDED), None)
    metrics_rows, error = None, ""
    if chosen is not None and chosen.status == JobStatus.SUCCEEDED:
        try:
            metrics_rows = _records(persona_metrics.framing_metrics(score_table_load(chosen)))
        except ScoreServiceError as exc:
            error = str(exc)
    calibrations = persona.calibrations.filter(
        study__in=studies_visible_to(request.user)).select_related("study")
    return render(request, "modeling/metrics.html", {
        "persona": persona,
        "tables": tables,
        "chosen": chosen,
        "metrics": metrics_rows,
        "error": error,
        "datasets": Dataset.objects.order_by("name"),
        "splits": Split.values,
        "studies": studies_visible_to(request.user).order_by("name"),
        "methods": METHODS,
        "calibrations": calibrations,
        "running": any(t.status in (JobStatus.QUEUED, JobStatus.RUNNING) for t in tables),
    })


@login_required
@require_POST
def persona_score(request, pk):
    """Queues the scoring of a dataset split by this persona on the models queue."""
    persona = get_object_or_404(Persona, pk=pk)
    dataset = get_object_or_404(Dataset, pk=request.POST.get("dataset") or 0)
    split = request.POST.get("split", Split.TEST)
    if split not in Split.values:
        messages.error(request, f"split {split!r} is not one of {', '.join(Split.values)}")
        return redirect("modeling:persona-metrics", pk=persona.pk)
    try:
        table = score_table_create(persona=persona, dataset=dataset, split=split)
        score_table_enqueue(score_table=table)
    except ScoreServiceError as exc:
        messages.error(request, str(exc))
        return redirect("modeling:persona-metrics", pk=persona.pk)
    messages.info(request, f"Scoring {dataset.name} ({split}) with {persona.name} is queued.")
    return redirect(f"{reverse('modeling:persona-metrics', args=[persona.pk])}?table={table.pk}")


@login_required
@require_POST
def score_table_cancel(request, pk):
    table = get_object_or_404(ScoreTable, pk=pk)
    score_table_request_cancel(score_table=table)
    messages.info(request, "Cancellation requested; the worker stops after the current batch.")
    return redirect(f"{reverse('modeling:persona-metrics', args=[table.persona_id])}?table={table.pk}")


@login_required
def score_table_download(request, pk, fmt):
    """The score table as Parquet (the stored file) or CSV."""
    table = get_object_or_404(ScoreTable, pk=pk, status=JobStatus.SUCCEEDED)
    name = f"scores-persona{table.persona_id}-dataset{table.dataset_id}-{table.split}"
    if fmt == "parquet":
        from pathlib import Path

        from django.conf import settings

        path = Path(settings.MEDIA_ROOT) / table.path
        if not path.is_file():
            raise Http404("the score file is missing")
        return FileResponse(open(path, "rb"), as_attachment=True, filename=f"{name}.parquet")
    if fmt == "csv":
        response = HttpResponse(score_table_load(table).to_csv(index=False), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response
    raise Http404("format must be parquet or csv")


@login_required
def persona_metrics_plot(request, pk, fmt):
    """Grouped bars of one score table's metrics per framing."""
    _check_format(fmt)
    table = get_object_or_404(ScoreTable, pk=pk, status=JobStatus.SUCCEEDED)
    metrics = persona_metrics.framing_metrics(score_table_load(table))
    title = f"{table.persona.name}: {table.dataset.name} ({table.split})"
    from .plots import plot_framing_metrics  # matplotlib: only where a figure is drawn

    return _plot_response(plot_framing_metrics(metrics, title=title, fmt=fmt), fmt)


class UnknownDataset(Http404):
    """`?dataset=` names no dataset; the message lists the names there are."""


def _comparison_inputs(request):
    datasets = Dataset.objects.order_by("name")
    dataset = None
    reference = request.GET.get("dataset", "")
    if reference:
        # By id or name, by core.lookup's rule; "²" or an id past any column is no dataset
        # (not a server error), and a page asked for one that does not exist is a 404.
        try:
            dataset = lookup_by_id_or_name(Dataset.objects, reference, kind="dataset")
        except Dataset.DoesNotExist as missing:
            raise UnknownDataset(str(missing)) from None
    split = request.GET.get("split", Split.TEST)
    if split not in Split.values:
        split = Split.TEST
    chosen_ids = [pk for pk in map(parse_id, request.GET.getlist("persona")) if pk is not None]
    return datasets, dataset, split, chosen_ids


def _comparison(dataset, split, chosen_ids):
    tables = ScoreTable.objects.filter(dataset=dataset, split=split, status=JobStatus.SUCCEEDED)
    if chosen_ids:
        tables = tables.filter(persona_id__in=chosen_ids)
    frames = {}
    for table in tables.select_related("persona").order_by("persona__name"):
        try:
            frames[table.persona.name] = score_table_load(table)
        except ScoreServiceError:
            continue
    return persona_metrics.compare_personas(frames)


@login_required
def persona_compare(request):
    """Personas side by side on one dataset split: a table per metric and a plot."""
    try:
        datasets, dataset, split, chosen_ids = _comparison_inputs(request)
    except UnknownDataset as unknown:
        return render(request, "modeling/comparison.html", {
            "datasets": Dataset.objects.order_by("name"), "dataset": None, "split": Split.TEST,
            "splits": Split.values, "error": str(unknown)}, status=404)
    scored = []
    comparison_rows, matrices = None, []
    if dataset is not None:
        scored = list(Persona.objects.filter(
            score_tables__dataset=dataset, score_tables__split=split,
            score_tables__status=JobStatus.SUCCEEDED).order_by("name").distinct())
        comparison = _comparison(dataset, split, chosen_ids)
        if len(comparison):
            comparison_rows = _records(comparison)
            for metric in COMPARE_METRICS:
                matrix = persona_metrics.comparison_matrix(comparison, metric)
                matrices.append({
                    "metric": metric,
                    "label": persona_metrics.METRIC_LABELS.get(metric, metric),
                    "framings": list(matrix.columns),
                    "rows": [(persona, [None if math.isnan(v) else v for v in row.to_numpy(float)])
                             for persona, row in matrix.iterrows()],
                })
    query = request.GET.urlencode()
    return render(request, "modeling/comparison.html", {
        "datasets": datasets, "dataset": dataset, "split": split, "splits": Split.values,
        "scored": scored, "chosen_ids": chosen_ids, "rows": comparison_rows,
        "matrices": matrices, "query": query,
    })


@login_required
def persona_compare_plot(request, fmt):
    _check_format(fmt)
    _, dataset, split, chosen_ids = _comparison_inputs(request)
    if dataset is None:
        raise Http404("choose a dataset")
    metric = request.GET.get("metric", "mspr")
    if metric not in COMPARE_METRICS:
        raise Http404(f"metric must be one of {', '.join(COMPARE_METRICS)}")
    comparison = _comparison(dataset, split, chosen_ids)
    if not len(comparison):
        raise Http404("no scored personas on this dataset split")
    from .plots import plot_comparison  # matplotlib: only where a figure is drawn

    return _plot_response(plot_comparison(comparison, metric, fmt=fmt), fmt)


@login_required
def persona_compare_export(request, fmt):
    _, dataset, split, chosen_ids = _comparison_inputs(request)
    if dataset is None:
        raise Http404("choose a dataset")
    comparison = _comparison(dataset, split, chosen_ids)
    if fmt == "csv":
        response = HttpResponse(comparison.to_csv(index=False), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="persona-comparison-{split}.csv"'
        return response
    if fmt == "json":
        return HttpResponse(json.dumps({"dataset": dataset.name, "split": split,
                                        "rows": _records(comparison)}, default=str),
                            content_type="application/json")
    raise Http404("format must be csv or json")


# --- calibrations -------------------------------------------------------------------------

def _visible_calibration(request, pk) -> Calibration:
    return get_object_or_404(
        Calibration.objects.select_related("persona", "study").filter(
            study__in=studies_visible_to(request.user)), pk=pk)


@login_required
@require_POST
def calibration_new(request, pk):
    """Queues a calibration of this persona against a study the user may see."""
    from .tasks import run_calibration

    persona = get_object_or_404(Persona, pk=pk)
    study = get_object_or_404(studies_visible_to(request.user), pk=request.POST.get("study") or 0)
    method = request.POST.get("method", "temperature")
    if method not in METHODS:
        messages.error(request, f"method {method!r} is not one of {', '.join(METHODS)}")
        return redirect("modeling:persona-metrics", pk=persona.pk)
    if not persona.is_usable:
        messages.error(request, f"persona {persona.name} has status {persona.status}; it cannot be scored")
        return redirect("modeling:persona-metrics", pk=persona.pk)
    run_calibration.delay(persona.pk, study.pk, method)
    messages.info(request, f"Calibration of {persona.name} against {study.name} ({method}) is queued; "
                           "it appears below when the worker has finished.")
    return redirect("modeling:persona-metrics", pk=persona.pk)


@login_required
def calibration_detail(request, pk):
    calibration = _visible_calibration(request, pk)
    result = calibration.result
    per_framing = result.get("parameters", {}).get("per_framing", {})
    after = {row["framing"]: row for row in result.get("after", {}).get("rates", [])}
    rates = [{**row, "after": after.get(row["framing"], {})}
             for row in result.get("before", {}).get("rates", [])]
    return render(request, "modeling/calibration.html", {
        "calibration": calibration,
        "result": result,
        "rates": rates,
        "parameters": sorted(per_framing.items()),
        "pooled": result.get("parameters", {}).get("pooled", {}),
        "before": result.get("before", {}),
        "after_section": result.get("after", {}),
    })


@login_required
def calibration_plot(request, pk, fmt):
    """False acceptance per framing: humans (with 95% intervals), persona before and after."""
    _check_format(fmt)
    calibration = _visible_calibration(request, pk)
    from .plots import calibration_figure, render

    return _plot_response(render(calibration_figure(calibration), fmt), fmt)


@login_required
def calibration_export(request, pk, fmt):
    """The whole result as JSON, or the per-framing rate table (before and after) as CSV."""
    calibration = _visible_calibration(request, pk)
    name = f"calibration-{calibration.pk}"
    if fmt == "json":
        response = HttpResponse(json.dumps({
            "id": calibration.pk, "persona": calibration.persona.name,
            "study": calibration.study.name, "method": calibration.method,
            "created": calibration.created.isoformat(), "result": calibration.result,
        }, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{name}.json"'
        return response
    if fmt == "csv":
        buffer = io.StringIO()
        rows = [{"stage": stage, **row} for stage in ("before", "after")
                for row in calibration.result.get(stage, {}).get("rates", [])]
        if rows:
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        response = HttpResponse(buffer.getvalue(), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response
    raise Http404("format must be json or csv")
