"""The researcher's study pages: studies, live progress, participants, open/pause/close."""
from statistics import median

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.models import Judgment, Participant, Study
from annotation.studies.selectors import studies_visible_to
from annotation.studies.services import StudyRuleError, study_set_status

# Prolific fills these placeholders with each participant's ids.
PROLIFIC_PARAMETERS = ("?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}"
                       "&SESSION_ID={{%SESSION_ID%}}")


@login_required
def study_list(request):
    studies = studies_visible_to(request.user).annotate(
        completed=Count("participants", filter=Q(participants__status=Participant.Status.COMPLETED)),
        active=Count("participants", filter=Q(participants__status=Participant.Status.ACTIVE)),
    )
    return render(request, "annotation/study_list.html", {"studies": studies})


def study_progress(study: Study) -> dict:
    """What the study page shows: batch fill, participants by status, time per item."""
    by_status = dict(study.participants.values_list("status").annotate(n=Count("id")))
    seconds = [
        (answered - shown).total_seconds()
        for shown, answered in Judgment.objects.filter(participant__study=study)
        .values_list("shown_at", "answered_at")[:20_000]
    ]
    batches = list(study.batches.order_by("index"))
    return {
        "batches": batches,
        "slots": sum(b.quota for b in batches),
        "completed": sum(b.completed_count for b in batches),
        "active": sum(b.active_count for b in batches),
        "by_status": [(label, by_status.get(value, 0)) for value, label in Participant.Status.choices],
        "median_seconds_per_item": round(median(seconds), 1) if seconds else None,
        "judgments": len(seconds),
    }


@login_required
def study_detail(request, pk):
    study = get_object_or_404(studies_visible_to(request.user), pk=pk)
    participants = study.participants.select_related("batch").annotate(
        answered=Count("judgments")).order_by("-created")[:500]
    entry = request.build_absolute_uri(reverse("annotation:study-entry", args=[study.pk]))
    return render(request, "annotation/study_detail.html", {
        "study": study,
        "progress": study_progress(study),
        "participants": participants,
        "prolific_url": entry + PROLIFIC_PARAMETERS,
        "entry_url": entry,
        "statuses": Study.Status.choices,
    })


@login_required
@require_POST
def study_status(request, pk):
    study = get_object_or_404(studies_visible_to(request.user), pk=pk)
    status = request.POST.get("status", "")
    try:
        study_set_status(study=study, status=status)
    except StudyRuleError as refused:
        messages.error(request, f"The status did not change: {refused}.")
    else:
        messages.success(request, f"The study is now {status}.")
    return redirect("annotation:study-detail", pk=study.pk)
