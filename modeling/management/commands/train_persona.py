"""`manage.py train_persona`: train (or resume) a persona in this process, with a progress bar."""
from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.claims.selectors import dataset_lookup
from annotation.models import Dataset, Framing, Split
from core.jobs import JobStatus
from modeling.base_models import DEFAULT_BASE_MODEL
from modeling.models import Persona
from modeling.services import (
    RESUMABLE,
    PersonaError,
    persona_create,
    persona_start,
    persona_train,
)
from modeling.training import TrainingConfig

DEFAULTS = TrainingConfig()


def default_persona_name(*, dataset: str, target_framing: str, alpha: float, seed: int) -> str:
    """e.g. 'framelab-facts authoritative a0.3 s0'; a baseline reads 'baseline a1'."""
    kind = target_framing or "baseline"
    base = f"{dataset} {kind} a{alpha:g} s{seed}"
    name, n = base, 2
    while Persona.objects.filter(name=name).exists():
        name, n = f"{base} ({n})", n + 1
    return name


def add_hyperparameter_arguments(parser) -> None:
    """The options train_persona and sweep_alpha share."""
    parser.add_argument("--base-model", default=DEFAULT_BASE_MODEL,
                        help=f"'{DEFAULT_BASE_MODEL}' (default) or a local Hugging Face model folder")
    parser.add_argument("--split", default=Split.TRAIN, choices=[s for s in Split.values if s != "none"])
    parser.add_argument("--max-examples", type=int, default=DEFAULTS.max_examples,
                        help=f"framed claims to train on, as whole base claims (default "
                             f"{DEFAULTS.max_examples}; 0 for the whole split)")
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                        help=f"examples per forward pass (default {DEFAULTS.batch_size})")
    parser.add_argument("--grad-accumulation", type=int, default=DEFAULTS.grad_accumulation,
                        help="micro-batches per optimizer step (default "
                             f"{DEFAULTS.grad_accumulation}: effective batch "
                             f"{DEFAULTS.batch_size * DEFAULTS.grad_accumulation})")
    parser.add_argument("--lr", type=float, default=DEFAULTS.learning_rate,
                        help=f"learning rate (default {DEFAULTS.learning_rate:g})")
    parser.add_argument("--max-length", type=int, default=DEFAULTS.max_length)
    parser.add_argument("--lora-r", type=int, default=DEFAULTS.r)
    parser.add_argument("--lora-alpha", type=int, default=DEFAULTS.lora_alpha)
    parser.add_argument("--lora-dropout", type=float, default=DEFAULTS.lora_dropout)
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch (default: torch's choice, one per core); on "
                             "a machine shared with other jobs 1 can be several times faster")
    parser.add_argument("--checkpoint-every", type=int, default=DEFAULTS.checkpoint_every,
                        help="optimizer steps between checkpoints (default "
                             f"{DEFAULTS.checkpoint_every})")


def hyperparameters_from(options: dict) -> dict:
    return {
        "max_examples": options["max_examples"] or None, "epochs": options["epochs"],
        "batch_size": options["batch_size"], "grad_accumulation": options["grad_accumulation"],
        "learning_rate": options["lr"], "max_length": options["max_length"],
        "r": options["lora_r"], "lora_alpha": options["lora_alpha"],
        "lora_dropout": options["lora_dropout"], "checkpoint_every": options["checkpoint_every"],
    }


class ProgressBar:
    """A tqdm bar over optimizer steps showing the loss; on standard error."""

    def __init__(self, description: str, *, disable: bool) -> None:
        self.bar = tqdm(desc=description, unit="step", file=sys.stderr, disable=disable,
                        dynamic_ncols=True, mininterval=0.5)

    def __call__(self, report) -> None:
        if self.bar.total != report.steps_total:
            self.bar.total = report.steps_total
        self.bar.n = report.step
        self.bar.set_postfix_str(f"loss {report.loss:.4f}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def train_in_process(command: BaseCommand, persona: Persona, *, resume: bool, quiet: bool,
                     device: str | None = None, threads: int = 0, force: bool = False) -> Persona:
    if threads:
        import torch

        torch.set_num_threads(threads)
    bar = ProgressBar(f"training {persona.name}", disable=quiet)
    try:
        persona = persona_train(persona_id=persona.pk, resume=resume, on_step=bar, device=device,
                                force=force)
    except Exception as exc:
        raise CommandError(f"training persona {persona.pk} ({persona.name}) failed: {exc}\n"
                           f"Resume it with `manage.py train_persona --resume {persona.pk}`.") from exc
    finally:
        bar.close()
    if persona is None:
        raise CommandError("the persona is not queued or resumable (another process runs it?)")
    return persona


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
            persona = train_in_process(self, persona, resume=True, quiet=options["quiet"],
                                       device=options["device"], threads=options["threads"],
                                       force=options["force"])
            return self._report(persona)
        if not options["dataset"]:
            raise CommandError("--dataset is required (or --resume PERSONA)")
        try:
            dataset = dataset_lookup(options["dataset"])
        except Dataset.DoesNotExist as exc:
            raise CommandError(str(exc)) from None
        name = options["name"] or default_persona_name(
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
        persona = train_in_process(self, persona, resume=False, quiet=options["quiet"],
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

