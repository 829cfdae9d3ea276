"""How persona trainings and score tables are recovered when their worker dies
(core/recovery.py).

A training is started again and continues from its last checkpoint (a fresh start if it had
none); a score table is scored again from the start (its file is written whole, once).
"""
from __future__ import annotations

from core.recovery import JobKind, register_job_kind


def _retry_persona(persona) -> None:
    from .services import persona_start

    persona_start(persona=persona)


def _persona_lost(persona) -> str:
    if persona.steps_done:
        return (f"training stopped after step {persona.steps_done} of {persona.steps_total}; "
                f"its last checkpoint is kept: resume it (`manage.py train_persona --resume "
                f"{persona.pk}`)")
    return "no training step was saved; start the training again"


def _retry_score_table(table) -> None:
    from .score_services import score_table_enqueue

    score_table_enqueue(score_table=table)


def register() -> None:
    register_job_kind(JobKind(
        model="modeling.Persona", name="persona training", lost=_persona_lost,
        retry=_retry_persona, requeue={"task_id": "", "eta_seconds": None}))
    register_job_kind(JobKind(
        model="modeling.ScoreTable", name="scoring", lost="no scores were saved; score again",
        retry=_retry_score_table, requeue={"task_id": "", "progress": 0.0, "eta_seconds": None}))
