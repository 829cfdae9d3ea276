"""What the training commands (train_persona, sweep_alpha) share: the hyperparameter
options, their translation into a persona's hyperparameters, and a training run in this
process behind a progress bar."""
from __future__ import annotations

import sys

from django.core.management.base import CommandError
from tqdm import tqdm

from annotation.models import Split
from core.language_models import DEFAULT_BASE_MODEL

from .models import Persona
from .services import persona_train
from .training_config import TrainingConfig

DEFAULTS = TrainingConfig()


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


def train_in_process(persona: Persona, *, resume: bool, quiet: bool, device: str | None = None,
                     threads: int = 0, force: bool = False) -> Persona:
    """Trains (or resumes) the persona here with a progress bar; CommandError if it fails or
    is not this process's to run."""
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
