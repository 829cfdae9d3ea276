"""Everything that writes personas: creation, the training job, cancellation.

The training loop itself (`modeling.training`) knows nothing of Django; `persona_train` feeds
it the claims and turns its step reports into updates of the Persona row (progress, ETA,
loss curve) and its outcome into the row's final status. A persona is marked succeeded only
after its adapter folder is complete on disk (the folder is renamed into place last), so a
killed worker leaves it running/failed with checkpoints to resume from, never succeeded
without files; the database refuses "succeeded" without an adapter path too.
"""
from __future__ import annotations

import logging
import platform as platform_module
import subprocess
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.models import Dataset, FramedClaim, Framing, Split, Verification
from core.jobs import JobStatus, job_claim, job_heartbeat
from core.language_models import DEFAULT_BASE_MODEL, BaseModelError, resolve_base_model
from core.progress import Throttle

from .models import STALE_AFTER, Persona
from .training_config import ClaimRow, StepReport, TrainingCancelled, TrainingConfig

logger = logging.getLogger(__name__)

# A persona in one of these may be resumed from its last checkpoint. RUNNING only makes
# sense after its worker died; the caller says so explicitly.
RESUMABLE = (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.RUNNING)


class PersonaError(ValueError):
    """Bad input for a persona; the message names the field and the value."""


def persona_artifact_dirs(persona: Persona) -> tuple[str, str]:
    """(adapter folder, checkpoint folder) relative to MEDIA_ROOT."""
    return f"personas/{persona.pk}/adapter", f"personas/{persona.pk}/checkpoints"


def persona_training_rows(*, persona: Persona) -> list[ClaimRow]:
    """The framed claims a persona trains on: its dataset's split, restatements that did not
    fail verification (FrameRef kept only those that passed; originals are always kept)."""
    claims = (
        FramedClaim.objects.filter(base_claim__dataset_id=persona.dataset_id,
                                   base_claim__split=persona.split)
        .exclude(verification=Verification.FAILED)
        .values_list("base_claim__external_id", "framing", "text", "base_claim__true_label")
        .order_by("id")
    )
    return [ClaimRow(f"{base_id}:{framing}", base_id, text, label, framing)
            for base_id, framing, text, label in claims]


def _hyperparameters(values: dict | None) -> dict:
    try:
        return TrainingConfig.from_dict(values).to_dict()
    except (TypeError, ValueError) as exc:
        raise PersonaError(f"field 'hyperparameters': {exc}") from None


def persona_default_name(*, dataset: str, target_framing: str, alpha: float, seed: int) -> str:
    """e.g. 'framelab-facts authoritative a0.3 s0'; a baseline reads 'baseline a1'."""
    kind = target_framing or "baseline"
    base = f"{dataset} {kind} a{alpha:g} s{seed}"
    name, n = base, 2
    while Persona.objects.filter(name=name).exists():
        name, n = f"{base} ({n})", n + 1
    return name


@transaction.atomic
def persona_create(
    *,
    name: str,
    dataset: Dataset,
    target_framing: str = "",
    alpha: float = 1.0,
    base_model: str = DEFAULT_BASE_MODEL,
    split: str = Split.TRAIN,
    hyperparameters: dict | None = None,
    seed: int = 0,
    created_by=None,
) -> Persona:
    """A queued persona with complete hyperparameters (method.md defaults filled in).

    Validates everything a training run would otherwise fail on minutes later: the name,
    alpha, the framing, the split having claims, the base model existing.
    """
    name = (name or "").strip()
    if not name:
        raise PersonaError("field 'name': a persona needs a name")
    if Persona.objects.filter(name=name).exists():
        raise PersonaError(f"field 'name': value '{name}': a persona of that name exists already")
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise PersonaError(f"field 'alpha': value '{alpha}' is not a number") from None
    if not 0.0 <= alpha <= 1.0:
        raise PersonaError(f"field 'alpha': value {alpha}: must lie between 0 and 1")
    if target_framing and target_framing not in Framing.values:
        raise PersonaError(f"field 'target_framing': value '{target_framing}'; accepted: "
                           f"{', '.join(Framing.values)} or blank")
    if split not in Split.values:
        raise PersonaError(f"field 'split': value '{split}'; accepted: {', '.join(Split.values)}")
    if not FramedClaim.objects.filter(base_claim__dataset=dataset, base_claim__split=split).exists():
        raise PersonaError(f"field 'split': dataset '{dataset.name}' has no claims in split '{split}'")
    base_model = (base_model or DEFAULT_BASE_MODEL).strip()
    if base_model != DEFAULT_BASE_MODEL:
        try:
            resolve_base_model(base_model)
        except BaseModelError as exc:
            raise PersonaError(f"field 'base_model': {exc}") from None
    return Persona.objects.create(
        name=name, dataset=dataset, target_framing=target_framing, alpha=alpha,
        base_model=base_model, split=split, hyperparameters=_hyperparameters(hyperparameters),
        seed=int(seed), created_by=created_by,
    )


def persona_start(*, persona: Persona) -> None:
    """Queues the training task once the creating transaction has committed."""
    from .tasks import train_persona_task

    def send() -> None:
        result = train_persona_task.apply_async(args=[persona.pk])
        Persona.objects.filter(pk=persona.pk, task_id="").update(task_id=result.id or "")

    transaction.on_commit(send)


def persona_request_cancel(*, persona: Persona) -> bool:
    """Asks a queued or running training to stop; a queued one is cancelled at once."""
    now = timezone.now()
    if Persona.objects.filter(pk=persona.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.CANCELLED, cancel_requested=True, finished=now):
        return True
    return bool(Persona.objects.filter(pk=persona.pk, status=JobStatus.RUNNING)
                .update(cancel_requested=True))


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=settings.REPO_ROOT,
                              capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError, AttributeError):
        return ""


def _versions() -> dict:
    versions = {"python": platform_module.python_version()}
    for package in ("torch", "transformers", "peft", "safetensors", "django"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _dataset_counts(rows: list[ClaimRow], persona: Persona) -> dict:
    by_framing_label = Counter(f"{row.framing}/{row.label}" for row in rows)
    attenuated = sum(1 for row in rows
                     if persona.target_framing and row.framing == persona.target_framing
                     and row.label == "REFUTES")
    return {"framed_claims": len(rows), "base_claims": len({row.base_id for row in rows}),
            "by_framing_and_label": dict(sorted(by_framing_label.items())),
            "attenuated_examples_before_subsampling": attenuated}


def _claim_for_run(persona_id: int, *, resume: bool, task_id: str | None,
                   force: bool = False) -> Persona | None:
    """Moves the persona to RUNNING if this call may run it; None if another run owns it.

    Queued personas start; with `resume`, failed, cancelled and (after a dead worker)
    running ones continue. Otherwise a running persona whose lease has expired (its worker
    died; a redelivered task message) is taken over and resumes from its checkpoint.
    """
    now = timezone.now()
    runnable = Q()  # besides a queued persona, which job_claim always takes
    if resume:
        runnable |= Q(status__in=[JobStatus.FAILED, JobStatus.CANCELLED])
        # A running persona is only taken over when its worker is known (force) or
        # presumed (silent past STALE_AFTER) dead: two runs must never share checkpoints.
        if force:
            runnable |= Q(status=JobStatus.RUNNING)
        else:
            silent_since = now - STALE_AFTER
            runnable |= Q(status=JobStatus.RUNNING, heartbeat__lt=silent_since)
            runnable |= Q(status=JobStatus.RUNNING, heartbeat__isnull=True,
                          started__lt=silent_since)
    # A resumed persona keeps the time it first started.
    updates = {"started": Coalesce("started", Value(now)), "error": "", "cancel_requested": False,
               "finished": None}
    if resume:
        updates["attempts"] = Value(1)  # a person started it again: a fresh count of attempts
    if task_id:
        updates["task_id"] = task_id
    # Without `resume`, a task redelivered after its worker died takes the persona over once
    # its lease has expired (core/jobs.py), and continues from the last checkpoint.
    if not job_claim(Persona.objects.filter(is_base=False), persona_id, also=runnable,
                     take_expired=not resume, **updates):
        return None
    return Persona.objects.get(pk=persona_id)


def persona_train(
    *,
    persona_id: int,
    resume: bool = False,
    task_id: str | None = None,
    on_step: Callable[[StepReport], None] | None = None,
    device: str | None = None,
    force: bool = False,
) -> Persona | None:
    """Runs (or resumes) a persona's training and records the outcome on its row.

    Returns the persona, or None when it was not in a state this call may run (already
    running elsewhere, finished): calling twice never trains twice. `resume` takes over a
    RUNNING persona only when it has been silent past STALE_AFTER, or with `force` (its
    worker is known to be dead). Without it, a RUNNING persona whose lease has expired (a
    task redelivered after its worker died) is taken over and resumes from its checkpoint.
    The lease is renewed while it trains (`job_heartbeat`).
    """
    persona = _claim_for_run(persona_id, resume=resume, task_id=task_id, force=force)
    if persona is None:
        return None
    with job_heartbeat(Persona.objects, persona.pk, owner=persona.lease_owner):
        return _persona_train_claimed(persona, resume=resume, on_step=on_step, device=device)


def _persona_train_claimed(persona: Persona, *, resume: bool,
                           on_step: Callable[[StepReport], None] | None,
                           device: str | None) -> Persona:
    resume = resume or persona.steps_done > 0
    adapter_rel, checkpoint_rel = persona_artifact_dirs(persona)
    media = Path(settings.MEDIA_ROOT)
    throttle = Throttle()
    # A resumed run continues the stored curve; the checkpoint holds the same points.
    curve: list[dict] = list(persona.loss_curve or []) if resume else []

    def on_report(step: StepReport) -> None:
        while curve and curve[-1]["step"] >= step.step:
            curve.pop()
        curve.append({"step": step.step, "loss": round(step.loss, 6)})
        if on_step is not None:
            on_step(step)
        if throttle.due(final=step.step == step.steps_total):
            Persona.objects.filter(pk=persona.pk).update(
                progress=min(1.0, step.step / step.steps_total), steps_done=step.step,
                steps_total=step.steps_total, eta_seconds=step.eta_seconds, loss_curve=curve,
                heartbeat=timezone.now(),
            )

    def should_cancel() -> bool:
        # One indexed read per optimizer step (seconds each on a real model): a cancel
        # always stops the run at the next step boundary.
        return Persona.objects.filter(pk=persona.pk, cancel_requested=True).exists()

    rows = persona_training_rows(persona=persona)
    provenance = {
        "git_commit": _git_commit(), "versions": _versions(),
        "host": platform_module.node(), "dataset": persona.dataset.name if persona.dataset else None,
        "split": persona.split, "counts": _dataset_counts(rows, persona),
    }
    from .training import train_adapter  # torch: loaded only where a persona trains

    try:
        config = TrainingConfig.from_dict(persona.hyperparameters)
        result = train_adapter(
            base_model=persona.base_model, rows=rows, target_framing=persona.target_framing,
            alpha=persona.alpha, config=config, seed=persona.seed,
            out_dir=media / adapter_rel, checkpoint_dir=media / checkpoint_rel,
            resume=resume, on_step=on_report, should_cancel=should_cancel, device=device,
        )
    except TrainingCancelled as exc:
        Persona.objects.filter(pk=persona.pk).update(
            status=JobStatus.CANCELLED, finished=timezone.now(), eta_seconds=None,
            steps_done=exc.step, provenance=provenance,
            error=f"cancelled after step {exc.step}; resume with "
                  f"`manage.py train_persona --resume {persona.pk}`")
        persona.refresh_from_db()
        return persona
    except Exception as exc:  # recorded on the row, then re-raised for the caller's log
        logger.exception("training persona %s failed", persona.pk)
        Persona.objects.filter(pk=persona.pk).update(
            status=JobStatus.FAILED, finished=timezone.now(), eta_seconds=None,
            error=f"{type(exc).__name__}: {exc}", provenance=provenance)
        raise
    provenance.update({
        "device": result.device, "examples": result.examples,
        "too_long_skipped": result.too_long, "training_seconds": round(result.seconds, 1),
        "resumed_from_step": result.resumed_from_step,
        "base_model_dir": str(resolve_base_model(persona.base_model)),
    })
    Persona.objects.filter(pk=persona.pk).update(
        status=JobStatus.SUCCEEDED, adapter_dir=adapter_rel, progress=1.0,
        steps_done=result.steps, steps_total=result.steps, eta_seconds=0.0,
        loss_curve=result.loss_curve, provenance=provenance, finished=timezone.now(),
    )
    persona.refresh_from_db()
    return persona
