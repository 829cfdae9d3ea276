"""The report's mixed-effects model, fitted in the background (a `ModelFit` job).

The model takes tens of seconds (NUTS, `annotation.analysis.mixed_model`), too long for a
page request and too heavy for the web process (JAX), so the report page and the API show
the rest of the analysis at once and the model from a `ModelFit` row: started with a
button (or a POST to the API), run by a worker with its progress on the row, and kept for
the study's data and the options it was fitted under. `manage.py analyze_study` fits it
in its own process instead.

Only the options the model depends on (the exclusion policy, the confidence level, the
seed) pick a fit: changing the interval method or the permutations keeps it.
"""
from __future__ import annotations

import hashlib
from dataclasses import replace

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from annotation.analysis.options import AnalysisOptions
from annotation.models import ModelFit, Study
from core.jobs import FINISHED_STATUSES, JobStatus
from core.progress import Throttle

#: The options (query-string names) that change the model's fit.
MODEL_PARAMETERS = ("exclusions", "min_median_response_ms", "confidence_level", "seed")
#: Roughly how long a FrameRef-sized fit takes on a 2-core machine (the page says so).
TYPICAL_SECONDS = 30


def model_parameters(options: AnalysisOptions) -> dict[str, str]:
    params = options.to_params()
    return {name: params[name] for name in MODEL_PARAMETERS}


def model_options_key(options: AnalysisOptions) -> str:
    text = "&".join(f"{key}={value}" for key, value in sorted(model_parameters(options).items()))
    return hashlib.sha256(text.encode()).hexdigest()


def model_fit_current(*, study: Study, options: AnalysisOptions, data_version: str | None = None) -> ModelFit | None:
    """The latest fit asked for `study`'s data as they are now and these options, if any
    (a failed or cancelled one included, so the page can say what happened)."""
    from annotation.analysis.study import study_data_version

    data_version = data_version or study_data_version(study)
    return (ModelFit.objects.filter(study=study, data_version=data_version,
                                    options_key=model_options_key(options))
            .order_by("-created", "-id").first())


def model_fit_start(*, study: Study, options: AnalysisOptions, user=None) -> tuple[ModelFit, bool]:
    """Queues a fit for the study's current data under `options`, unless one is queued,
    running or done already: (the fit, whether it is new). A failed fit is asked again."""
    from annotation.analysis.study import study_data_version

    data_version = study_data_version(study)
    with transaction.atomic():
        # One request at a time per study decides whether a fit is new (two clicks, one fit).
        Study.objects.select_for_update().filter(pk=study.pk).first()
        current = model_fit_current(study=study, options=options, data_version=data_version)
        if current is not None and current.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED):
            return current, False
        fit = ModelFit.objects.create(
            study=study, options=model_parameters(options), options_key=model_options_key(options),
            data_version=data_version, stage="waiting for a worker",
            created_by=user if user is not None and user.is_authenticated else None)
        transaction.on_commit(lambda: model_fit_enqueue(model_fit=fit))
    return fit, True


def model_fit_enqueue(*, model_fit: ModelFit) -> None:
    from annotation.tasks import run_model_fit

    result = run_model_fit.apply_async(args=[model_fit.pk])
    ModelFit.objects.filter(pk=model_fit.pk, task_id="").update(task_id=result.id or "")


def model_fit_run(*, model_fit: ModelFit) -> None:
    """Fits the model to the study's judgments (the report's exclusions) and stores the
    report's entry on the row; progress and stage move as NUTS goes."""
    from annotation.analysis.statistics import fit_report_model
    from annotation.dataio.judgment_table import judgment_table

    job = model_fit
    options = AnalysisOptions.from_params(job.options)
    throttle = Throttle()

    def report(fraction: float, stage: str) -> None:
        if throttle.due(final=fraction >= 1):
            ModelFit.objects.filter(pk=job.pk).update(progress=min(max(fraction, 0.0), 1.0), stage=stage[:200])

    try:
        report(0.0, "reading the judgments")
        table = judgment_table(study=job.study, include_attention_checks=True)
        entry = fit_report_model(table, options, progress=report)
    except Exception as exc:
        ModelFit.objects.filter(pk=job.pk).update(
            status=JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}", finished=timezone.now())
        raise
    ModelFit.objects.filter(pk=job.pk).update(
        status=JobStatus.SUCCEEDED, result=entry, progress=1.0, stage="done", finished=timezone.now())


def model_entry(*, study: Study, options: AnalysisOptions, data_version: str | None = None,
                base: dict | None = None) -> dict:
    """The report's `mixed_model` entry: the stored fit for these data and options, or, where
    there is none yet, why not and what to do, with the fit's job (`job`) where one exists.
    `base` is the entry of the analysis computed without the model (its counts are kept)."""
    from annotation.analysis.mixed_model import not_fitted

    base = base or not_fitted(None, "")
    if not options.mixed_model:
        return {**base, "reason": "switched off"}
    fit = model_fit_current(study=study, options=options, data_version=data_version)
    if fit is not None and fit.status == JobStatus.SUCCEEDED and fit.result:
        entry = dict(fit.result)
    elif fit is None:
        entry = {**base, "reason": "not fitted yet for these data and options: start the fit "
                                   f"(it runs in the background, about {TYPICAL_SECONDS} seconds)"}
    elif fit.status in FINISHED_STATUSES:
        entry = {**base, "reason": f"the last fit {fit.status}" + (f": {fit.error}" if fit.error else "")
                                   + "; start it again"}
    else:
        entry = {**base, "reason": f"being fitted ({fit.progress:.0%}: {fit.stage or fit.status})"}
    entry["job"] = model_fit_summary(fit) if fit is not None else None
    return entry


def model_fit_summary(fit: ModelFit) -> dict:
    return {
        "id": fit.pk, "status": fit.status, "progress": round(fit.progress, 3), "stage": fit.stage,
        "error": fit.error, "created": fit.created.isoformat() if fit.created else None,
        "finished": fit.finished.isoformat() if fit.finished else None, "attempts": fit.attempts,
        "url": reverse("api:study-analysis-model", args=[fit.study_id]),
    }


def with_model_entry(result, *, study: Study, options: AnalysisOptions, data_version: str | None = None):
    """`result` (an analysis computed without the model) with the stored model's entry."""
    return replace(result, options=options, mixed_model=model_entry(
        study=study, options=options, data_version=data_version, base=result.mixed_model))
