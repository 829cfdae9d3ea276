"""Celery tasks of the modeling app. They run on the `models` queue (CELERY_TASK_ROUTES), so
heavy model work can go to a GPU machine whose worker serves only that queue."""
from __future__ import annotations

from celery import shared_task

from .services import persona_train


@shared_task(bind=True, name="modeling.train_persona", acks_late=True,
             reject_on_worker_lost=True)
def train_persona_task(self, persona_id: int, resume: bool = False) -> dict:
    """Trains (or resumes) a persona; a duplicated message finds it taken and does nothing.

    If the worker dies mid-training, the broker redelivers the message; the row is still
    RUNNING with this task id, so the redelivered run resumes from the last checkpoint.
    """
    persona = persona_train(persona_id=persona_id, resume=resume,
                            task_id=None if self.request.is_eager else self.request.id)
    if persona is None:
        return {"persona": persona_id, "skipped": True}
    return {"persona": persona_id, "status": persona.status, "steps": persona.steps_done}

