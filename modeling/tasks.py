"""Celery tasks of the modeling app. They run on the `models` queue (CELERY_TASK_ROUTES), so
heavy model work can go to a GPU machine whose worker serves only that queue."""
from __future__ import annotations

from celery import shared_task

from .services import persona_train


@shared_task(bind=True, name="modeling.train_persona", acks_late=True,
             reject_on_worker_lost=True)
def train_persona_task(self, persona_id: int, resume: bool = False) -> dict:
    """Trains (or resumes) a persona; a duplicated message finds it taken and does nothing.

    If the worker dies mid-training, the broker redelivers the message; once the persona's
    lease has expired the redelivered run takes it over and resumes from the last checkpoint
    (before that it does nothing, and beat's recover-jobs queues it again; docs/jobs.md).
    """
    from django.conf import settings

    if getattr(settings, "TORCH_THREADS", 0):
        import torch

        torch.set_num_threads(settings.TORCH_THREADS)
    persona = persona_train(persona_id=persona_id, resume=resume,
                            task_id=None if self.request.is_eager else self.request.id)
    if persona is None:
        return {"persona": persona_id, "skipped": True}
    return {"persona": persona_id, "status": persona.status, "steps": persona.steps_done}


# --- scoring and calibration (modeling/score_services.py) ----------------------------------

@shared_task(bind=True, name="modeling.score_table", acks_late=True, reject_on_worker_lost=True)
def run_score_table(self, score_table_id: int) -> dict:
    """Scores a queued ScoreTable; a duplicated message finds it taken and does nothing."""
    from core.jobs import job_claim

    from .models import ScoreTable
    from .score_services import score_table_run

    # Claim the row: only a queued table (or one whose worker died and whose lease has
    # expired: a redelivered message) is run; anything else is done, cancelled or running.
    claimed = job_claim(ScoreTable.objects, score_table_id, take_expired=True)
    table = ScoreTable.objects.select_related("persona", "dataset").filter(pk=score_table_id).first()
    if table is None:
        return {"score_table": score_table_id, "skipped": True}
    if not claimed:
        return {"score_table": score_table_id, "status": table.status, "skipped": True}
    table = score_table_run(score_table=table)
    return {"score_table": score_table_id, "status": table.status, "rows": table.rows}


@shared_task(name="modeling.calibrate_persona")
def run_calibration(persona_id: int, study_id: int, method: str = "temperature",
                    seed: int = 0) -> dict:
    """Calibrates a persona against a study; each run stores a new Calibration row."""
    from annotation.models import Study

    from .models import Persona
    from .score_services import calibration_run

    persona = Persona.objects.get(pk=persona_id)
    study = Study.objects.get(pk=study_id)
    calibration = calibration_run(persona=persona, study=study, method=method, seed=seed)
    return {"calibration": calibration.pk, "gap_summary": calibration.result["gap_summary"]}
