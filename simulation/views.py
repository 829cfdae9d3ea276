"""Researcher pages of simulation runs: list, start, report with figures and downloads.

Thin: parse, call a service or selector, render. Figures are drawn on request from the
run's stored summary (the per-step curves), so a report needs no worker and never goes
stale; the per-step table is served from its Parquet file.

The services compute with numpy, pandas and scipy: each view imports them where it calls
them, so the list, the form, a running run's progress page and a finished run's report
(which reads the stored summary as it is) load none of it; the figures and tables do.
"""
from __future__ import annotations

import io
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.figures import FIGURE_FORMATS, figure_bytes
from core.jobs import JobStatus

from .forms import SimulationRunForm
from .plots import FIGURES, curve_figure
from .selectors import simulation_runs_visible_to, summary_records

TABLES = {
    "agents": "per agent: mean_IH with its interval, P(correct), confidence, claims encountered",
    "differences": "differences between agents, with bootstrap intervals",
    "curves": "per step and agent: mean H_t and H_t / t with 95% intervals",
}
CONVENTIONS = ("platform", "frameref")
TABLE_FORMATS = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


def _conventions(request) -> str:
    """The report's summary conventions from `?conventions=` (platform by default)."""
    value = request.GET.get("conventions") or "platform"
    if value not in CONVENTIONS:
        raise Http404(f"conventions: value {value!r}: accepted: {', '.join(CONVENTIONS)}")
    return value


@login_required
def run_list(request):
    runs = simulation_runs_visible_to(request.user)
    page = Paginator(runs, 50).get_page(request.GET.get("page"))
    return render(request, "simulation/run_list.html", {"page": page})


@login_required
def run_new(request):
    form = SimulationRunForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        from .services import (
            SimulationConfigError,
            simulation_run_create,
            simulation_run_enqueue,
        )

        data = form.cleaned_data
        try:
            run = simulation_run_create(
                name=data["name"], dataset=data["dataset"], split=data["split"], agents=data["agents"],
                policy=data["policy"], policy_params=data["policy_params"],
                candidate_mode=data["candidate_mode"], trajectories=data["trajectories"],
                steps=data["steps"], runs=data["runs"], seed=data["seed"], user=request.user,
                decision=data["decision"])
        except SimulationConfigError as exc:
            form.add_error(None, str(exc))
        else:
            simulation_run_enqueue(run=run, shards=data["shards"])
            return redirect("simulation:run-detail", pk=run.pk)
    return render(request, "simulation/run_new.html", {"form": form})


@login_required
def run_detail(request, pk):
    run = get_object_or_404(simulation_runs_visible_to(request.user), pk=pk)
    context = {"run": run, "finished": run.is_finished, "percent": round(100 * run.progress)}
    if run.status == JobStatus.SUCCEEDED:
        conventions = _conventions(request)
        context.update(
            conventions=conventions,
            conventions_query="?conventions=frameref" if conventions == "frameref" else "",
            conventions_missing=conventions != "platform" and not summary_records(run, "agents", conventions),
            agents=summary_records(run, "agents", conventions),
            differences=summary_records(run, "differences", conventions),
            figures=[(kind, spec["title"]) for kind, spec in FIGURES.items()],
            tables=TABLES,
            provenance_json=json.dumps(run.provenance, indent=2, sort_keys=True),
        )
    return render(request, "simulation/run_detail.html", context)


@login_required
@require_POST
def run_cancel(request, pk):
    run = get_object_or_404(simulation_runs_visible_to(request.user), pk=pk)
    if run.is_finished:
        messages.info(request, f"Run #{run.pk} had already {run.status}; nothing to cancel.")
    else:
        from .services import simulation_run_cancel

        simulation_run_cancel(run=run)
        messages.info(request, f"Run #{run.pk} cancelled.")
    return redirect("simulation:run-detail", pk=run.pk)


def _finished_run(request, pk):
    run = get_object_or_404(simulation_runs_visible_to(request.user), pk=pk)
    if run.status != JobStatus.SUCCEEDED:
        raise Http404(f"run {pk} has no results (it is {run.status})")
    return run


def _attachment(response: HttpResponse, filename: str) -> HttpResponse:
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
def run_figure(request, pk, kind, fmt):
    from .services import summary_table

    run = _finished_run(request, pk)
    if kind not in FIGURES or fmt not in FIGURE_FORMATS:
        raise Http404("no such figure")
    conventions = _conventions(request)
    curves = summary_table(run, "curves", conventions)
    if curves.empty:
        raise Http404(f"run {pk} has no summary by the {conventions} conventions")
    figure = curve_figure(curves, kind=kind,
                          agents=[spec["name"] for spec in run.agents],
                          subtitle=f"{run.name}: {run.trajectories} trajectories x {run.runs} runs, "
                                   f"policy {run.policy}")
    response = HttpResponse(figure_bytes(figure, fmt), content_type=FIGURE_FORMATS[fmt])
    if request.GET.get("download"):
        suffix = "" if conventions == "platform" else f"-{conventions}"
        _attachment(response, f"simulation-{run.pk}-{kind}{suffix}.{fmt}")
    return response


@login_required
def run_table(request, pk, table, fmt):
    from .services import summary_table

    run = _finished_run(request, pk)
    if table not in TABLES or fmt not in TABLE_FORMATS:
        raise Http404("no such table")
    conventions = _conventions(request)
    frame = summary_table(run, table, conventions)
    if frame.empty and conventions != "platform":
        raise Http404(f"run {pk} has no summary by the {conventions} conventions")
    if fmt == "csv":
        body = frame.to_csv(index=False).encode("utf-8")
    else:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        body = buffer.getvalue()
    return _attachment(HttpResponse(body, content_type=TABLE_FORMATS[fmt]),
                       f"simulation-{run.pk}-{table}{'' if conventions == 'platform' else '-' + conventions}.{fmt}")


@login_required
def run_steps(request, pk):
    from .services import results_file

    run = _finished_run(request, pk)
    path = results_file(run)
    if not path.exists():
        raise Http404("the per-step results file is missing from the artifact store")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=f"simulation-{run.pk}-steps.parquet",
                        content_type=TABLE_FORMATS["parquet"])

