"""The researcher's export pages: stream a study's tidy table now, or run a large one as a job."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import (
    FileResponse,
    Http404,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from annotation.dataio.judgment_table import (
    CONTENT_TYPES,
    EXPORT_FORMATS,
    clean_filters,
    export_chunks,
    export_file_name,
    judgment_export_queryset,
)
from annotation.dataio.selectors import data_exports_visible_to
from annotation.dataio.services import data_export_create, data_export_path
from annotation.models import DataExport, Participant
from annotation.studies.selectors import studies_visible_to
from core.vocabulary import FRAMINGS

# Above this many rows the page suggests a background job instead of a direct download.
DIRECT_DOWNLOAD_ROWS = 200_000


def _filters_from(data) -> dict:
    """Filters from a GET or POST form; `ValueError` names a bad value."""
    return clean_filters(
        framing=data.getlist("framing") or None,
        truth=data.getlist("truth") or None,
        participant_status=data.getlist("participant_status") or None,
        # The form's checkbox for excluded participants is on by default: a study's whole
        # record is what a researcher exports first; the analysis applies exclusions itself.
        include_excluded=data.get("include_excluded") == "on" if data.get("submitted") else True,
        include_attention_checks=data.get("include_attention_checks") == "on",
    )


@login_required
@require_http_methods(["GET", "POST"])
def study_exports(request, pk):
    study = get_object_or_404(studies_visible_to(request.user), pk=pk)
    if request.method == "POST":
        fmt = request.POST.get("format", "")
        try:
            filters = _filters_from(request.POST)
            if fmt not in EXPORT_FORMATS:
                raise ValueError(f"unknown export format '{fmt}'; accepted: {', '.join(EXPORT_FORMATS)}")
        except ValueError as exc:
            messages.error(request, str(exc))
            return redirect("annotation:study-exports", pk=study.pk)
        job = data_export_create(study=study, fmt=fmt, options=filters, user=request.user,
                                 raw_csv=request.POST.get("raw_csv") == "on")
        return redirect("annotation:export-detail", pk=job.pk)
    try:
        filters = _filters_from(request.GET)
    except ValueError as exc:
        messages.error(request, str(exc))
        filters = clean_filters()
    rows = judgment_export_queryset(study=study, **filters).count()
    return render(request, "annotation/export_list.html", {
        "study": study,
        "rows": rows,
        "filters": filters,
        "large": rows > DIRECT_DOWNLOAD_ROWS,
        "direct_download_rows": DIRECT_DOWNLOAD_ROWS,
        "formats": DataExport.Format.choices,
        "framings": FRAMINGS,
        "statuses": Participant.Status.choices,
        "jobs": study.exports.select_related("created_by")[:50],
        "query": request.GET.urlencode(),
        "raw_csv": request.GET.get("raw_csv") == "on",
    })


@login_required
def study_export_stream(request, pk):
    """The export as a streamed download: memory stays flat however many rows there are."""
    study = get_object_or_404(studies_visible_to(request.user), pk=pk)
    fmt = request.GET.get("format", "csv")
    try:
        filters = _filters_from(request.GET)
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"unknown export format '{fmt}'; accepted: {', '.join(EXPORT_FORMATS)}")
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")
    raw_csv = request.GET.get("raw_csv") in ("on", "true", "1")
    response = StreamingHttpResponse(export_chunks(study=study, fmt=fmt, raw_csv=raw_csv, **filters),
                                     content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{export_file_name(study, fmt)}"'
    return response


def _visible_export(request, pk) -> DataExport:
    return get_object_or_404(
        data_exports_visible_to(request.user).select_related("created_by"), pk=pk)


@login_required
def export_detail(request, pk):
    job = _visible_export(request, pk)
    finished = job.status in (DataExport.Status.SUCCEEDED, DataExport.Status.FAILED)
    percent = round(100 * job.rows_written / job.rows_total) if job.rows_total else None
    return render(request, "annotation/export_detail.html", {
        "job": job, "study": job.study, "finished": finished, "percent": percent,
    })


@login_required
def export_download(request, pk):
    job = _visible_export(request, pk)
    if job.status != DataExport.Status.SUCCEEDED or not job.file:
        raise Http404("This export has no file yet.")
    path = data_export_path(job)
    if not path.is_file():
        raise Http404("The export's file is no longer there; start the export again.")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name,
                        content_type=CONTENT_TYPES[job.format])
