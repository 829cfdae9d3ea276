"""Researcher pages for datasets and their imports; thin: parse, call, render."""
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render

from annotation.claims.files import ClaimFileError
from annotation.claims.forms import ClaimImportForm
from annotation.claims.selectors import (
    claim_import_file_names,
    claim_import_progress,
    claim_imports_visible_to,
    dataset_composition,
    dataset_list_with_counts,
    framed_claims_filtered,
)
from annotation.claims.services import claim_import_create
from annotation.claims.uploads import UploadTooLarge
from annotation.models import ClaimImport, Dataset, Framing, Split, TruthLabel


@login_required
def dataset_list(request):
    return render(request, "annotation/dataset_list.html", {
        "datasets": dataset_list_with_counts(),
        "recent_imports": claim_imports_visible_to(request.user)[:10],
    })


@login_required
def dataset_detail(request, pk):
    dataset = get_object_or_404(Dataset, pk=pk)
    filters = {key: request.GET.get(key, "").strip()
               for key in ("framing", "split", "true_label", "search")}
    claims = framed_claims_filtered(dataset=dataset, **filters)
    page = Paginator(claims, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "annotation/dataset_detail.html", {
        "dataset": dataset,
        "composition": dataset_composition(dataset=dataset),
        "page": page,
        "filters": filters,
        "query": query.urlencode(),
        "framings": Framing.choices,
        "splits": Split.choices,
        "labels": TruthLabel.choices,
    })


@login_required
def claim_import_new(request):
    form = ClaimImportForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            job = claim_import_create(
                dataset_name=form.cleaned_data["dataset_name"],
                files=form.cleaned_data["files"],
                skip_existing=form.cleaned_data["skip_existing"],
                default_split=form.cleaned_data["default_split"],
                verification=form.cleaned_data["verification"],
                created_by=request.user,
            )
        except ClaimFileError as exc:
            form.add_error("files", str(exc))
            status = 413 if isinstance(exc, UploadTooLarge) else 200
        else:
            return redirect("annotation:claim-import-detail", pk=job.pk)
    return render(request, "annotation/claim_import_new.html", {"form": form}, status=status)


@login_required
def claim_import_detail(request, pk):
    job = get_object_or_404(claim_imports_visible_to(request.user), pk=pk)
    progress = claim_import_progress([job]).get(job.pk)
    return render(request, "annotation/claim_import_detail.html", {
        "job": job,
        "file_names": claim_import_file_names(job.files),
        "progress": progress,
        "finished": job.status in (ClaimImport.Status.SUCCEEDED, ClaimImport.Status.FAILED),
    })
