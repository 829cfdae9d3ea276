"""What a persona's training is told and tells back: hyperparameters, step reports, results.

Light to import (no torch), so the persona form, the services and the pages can use the
defaults and read stored hyperparameters; the loop itself is `modeling.training`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class ClaimRow:
    """One framed claim as training reads it."""

    claim_id: str
    base_id: str
    text: str
    label: str
    framing: str


@dataclass
class TrainingConfig:
    """Hyperparameters; method.md's LoRA settings, the optimisation scaled for a CPU.

    FrameRef trained 3-8B models at learning rate 1e-5 with batch 24 for one epoch of
    about 860,000 examples. A 135M model trained on a few thousand examples on a CPU sees
    two orders of magnitude fewer updates, so the default learning rate is 2e-4, the usual
    LoRA rate, which moves the label probabilities within a few hundred steps; the effective
    batch stays 24 (8 examples x 3 accumulated micro-batches). `max_examples` caps the
    training set so a persona trains in about 20 minutes on 2 CPU cores (see the README's
    measured step times); pass None to use the whole split.
    """

    r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    learning_rate: float = 2e-4
    batch_size: int = 8
    grad_accumulation: int = 3
    epochs: int = 1
    max_examples: int | None = 3000
    max_length: int = 256
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    checkpoint_every: int = 25

    @classmethod
    def from_dict(cls, values: dict | None) -> "TrainingConfig":
        """A config from stored hyperparameters; an unknown key is an error naming it."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {unknown}; accepted: {sorted(known)}")
        config = cls(**values)
        config.validate()
        return config

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        positive = ("r", "lora_alpha", "batch_size", "grad_accumulation", "epochs", "max_length",
                    "checkpoint_every")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"hyperparameter '{name}' must be at least 1, got {getattr(self, name)}")
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f"hyperparameter 'max_examples' must be at least 1, got {self.max_examples}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"hyperparameter 'lora_dropout' must lie in [0, 1), got {self.lora_dropout}")
        if not self.learning_rate > 0:
            raise ValueError(f"hyperparameter 'learning_rate' must be positive, got {self.learning_rate}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"hyperparameter 'warmup_ratio' must lie in [0, 1), got {self.warmup_ratio}")


@dataclass
class StepReport:
    step: int
    steps_total: int
    loss: float
    elapsed_seconds: float
    eta_seconds: float | None
    examples_seen: int


@dataclass
class TrainingResult:
    steps: int
    examples: int
    too_long: int
    loss_curve: list[dict]
    seconds: float
    resumed_from_step: int
    device: str


class TrainingCancelled(Exception):
    """Raised between steps when cancellation was asked for; a checkpoint was saved first."""

    def __init__(self, step: int) -> None:
        super().__init__(f"cancelled after step {step}")
        self.step = step
