"""Persona pages: list, create (starts a Celery training task), detail with progress, cancel."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.figures import FIGURE_FORMATS
from core.jobs import JobStatus

from .forms import PersonaForm
from .models import Persona
from .services import (
    PersonaError,
    persona_create,
    persona_request_cancel,
    persona_start,
)


@login_required
def persona_list(request):
    personas = Persona.objects.select_related("dataset").order_by("-created")
    return render(request, "modeling/persona_list.html", {"personas": personas})


@login_required
def persona_new(request):
    form = PersonaForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            persona = persona_create(
                name=data["name"], dataset=data["dataset"], split=data["split"],
                target_framing=data["target_framing"], alpha=data["alpha"],
                base_model=data["base_model"], seed=data["seed"],
                hyperparameters=form.hyperparameters(), created_by=request.user,
            )
        except PersonaError as exc:
            form.add_error(None, str(exc))
        else:
            persona_start(persona=persona)
            return redirect("modeling:persona-detail", pk=persona.pk)
    return render(request, "modeling/persona_new.html", {"form": form})


@login_required
def persona_detail(request, pk):
    persona = get_object_or_404(Persona.objects.select_related("dataset", "created_by"), pk=pk)
    return render(request, "modeling/persona_detail.html", {
        "persona": persona,
        "active": persona.status in (JobStatus.QUEUED, JobStatus.RUNNING),
        "percent": round(100 * persona.progress, 1),
        "hyperparameters": sorted(persona.hyperparameters.items()),
    })


@login_required
@require_POST
def persona_cancel(request, pk):
    persona = get_object_or_404(Persona, pk=pk)
    if persona_request_cancel(persona=persona):
        messages.info(request, "Cancellation requested; training stops after the current step.")
    else:
        messages.info(request, f"Nothing to cancel: the persona is {persona.status}.")
    return redirect("modeling:persona-detail", pk=pk)


@login_required
def persona_loss_plot(request, pk, fmt):
    from .plots import (  # matplotlib: only where a figure is drawn
        loss_curve_figure,
        render,
    )

    if fmt not in FIGURE_FORMATS:
        raise Http404(f"no figure format '{fmt}'")
    persona = get_object_or_404(Persona, pk=pk)
    figure = loss_curve_figure(persona.loss_curve or [], title=persona.name)
    response = HttpResponse(render(figure, fmt), content_type=FIGURE_FORMATS[fmt])
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="persona-{pk}-loss.{fmt}"'
    return response
