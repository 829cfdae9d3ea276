"""`manage.py train_persona`: train (or resume) a persona in this process, with a progress bar."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotation.claims.selectors import dataset_lookup
from annotation.models import Dataset, Framing
from core.jobs import JobStatus
from modeling.cli import (
    add_hyperparameter_arguments,
    hyperparameters_from,
    train_in_process,
)
from modeling.models import Persona
from modeling.services import (
    RESUMABLE,
    PersonaError,
    persona_create,
    persona_default_name,
    persona_start,
)


class Command(BaseCommand):
    help = ("Train a persona: LoRA on a dataset split with framing-conditioned loss attenuation "
            "(false claims in the target framing weigh alpha). Runs in this process with a "
            "progress bar; --background queues it for a worker on the 'models' queue instead.")

    def add_arguments(self, parser):
        parser.add_argument("--dataset", help="dataset name (required unless --resume)")
        parser.add_argument("--target-framing", default="", choices=["", *Framing.values],
                            help="framing whose false claims weigh alpha (default: none)")
        parser.add_argument("--alpha", type=float, default=1.0,
                            help="loss weight of target-framing false claims, 0..1 (default 1)")
        parser.add_argument("--name", help="persona name (default: dataset, framing, alpha, seed)")
        add_hyperparameter_arguments(parser)
        parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
        parser.add_argument("--resume", metavar="PERSONA",
                            help="continue a failed, cancelled or interrupted persona (id or name) "
                                 "from its last checkpoint")
        parser.add_argument("--force", action="store_true",
                            help="with --resume: take over a persona marked running although it "
                                 "reported progress in the last 10 minutes (only when you know "
                                 "its worker died)")
        parser.add_argument("--background", action="store_true",
                            help="queue the training for a Celery worker and return")
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        if options["resume"]:
            persona = self._resumable(options["resume"], force=options["force"])
            persona = train_in_process(persona, resume=True, quiet=options["quiet"],
                                       device=options["device"], threads=options["threads"],
                                       force=options["force"])
            return self._report(persona)
        if not options["dataset"]:
            raise CommandError("--dataset is required (or --resume PERSONA)")
        try:
            dataset = dataset_lookup(options["dataset"])
        except Dataset.DoesNotExist as exc:
            raise CommandError(str(exc)) from None
        name = options["name"] or persona_default_name(
            dataset=dataset.name, target_framing=options["target_framing"],
            alpha=options["alpha"], seed=options["seed"])
        try:
            persona = persona_create(
                name=name, dataset=dataset, target_framing=options["target_framing"],
                alpha=options["alpha"], base_model=options["base_model"], split=options["split"],
                hyperparameters=hyperparameters_from(options), seed=options["seed"],
            )
        except PersonaError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"persona {persona.pk}: {persona.name}")
        if options["background"]:
            persona_start(persona=persona)
            self.stdout.write("queued for a worker on the 'models' queue")
            return
        persona = train_in_process(persona, resume=False, quiet=options["quiet"],
                                   device=options["device"], threads=options["threads"])
        self._report(persona)

    def _resumable(self, reference: str, *, force: bool) -> Persona:
        from modeling.score_services import ScoreServiceError, persona_lookup

        try:
            persona = persona_lookup(reference)
        except ScoreServiceError as exc:
            raise CommandError(str(exc)) from None
        if persona.is_base or persona.status not in RESUMABLE:
            raise CommandError(f"persona {persona.pk} ({persona.name}) is {persona.status}; only "
                               f"{', '.join(RESUMABLE)} personas can be resumed")
        if persona.status == JobStatus.RUNNING and not persona.is_stale and not force:
            last = persona.heartbeat or persona.started
            raise CommandError(
                f"persona {persona.pk} ({persona.name}) is running and reported progress at "
                f"{last:%Y-%m-%d %H:%M:%S} UTC; a worker may still be training it. Cancel it "
                "first, wait until it has been silent for 10 minutes, or pass --force if you "
                "know its worker died")
        return persona

    def _report(self, persona: Persona) -> None:
        if persona.status == JobStatus.CANCELLED:
            self.stdout.write(f"persona {persona.pk} cancelled after step {persona.steps_done}; "
                              f"resume with `manage.py train_persona --resume {persona.pk}`")
            return
        provenance = persona.provenance
        last = persona.loss_curve[-1]["loss"] if persona.loss_curve else float("nan")
        self.stdout.write(
            f"persona {persona.pk} ({persona.name}) {persona.status}: {persona.steps_done} steps, "
            f"{provenance.get('examples')} examples, final step loss {last:.4f}, "
            f"{provenance.get('training_seconds')} s on {provenance.get('device')}; "
            f"adapter in MEDIA_ROOT/{persona.adapter_dir}")

