"""Personas (LoRA-tuned language models), their score tables and their calibrations.

Large artifacts live in files under MEDIA_ROOT (adapters as safetensors, score tables as
Parquet) and the rows here point at them, never one row per number. The database enforces
what must always hold: alpha in [0, 1], progress in [0, 1], known statuses, and a succeeded
trained persona that names its adapter folder.
"""
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from annotation.models import Dataset, Framing, Split, Study
from core.jobs import Job, JobStatus

DEFAULT_BASE_MODEL = "smollm2-135m-instruct"

# A running training reports at least once per optimizer step; silence this long means its
# worker died (one SmolLM2 step takes seconds, even on a busy CPU under a minute or two).
STALE_AFTER = timedelta(minutes=10)


class Persona(Job):
    """A language model fine-tuned with framing-conditioned loss attenuation (method.md 3).

    `is_base` personas are the untrained base model itself (no adapter): the reference
    every trained persona is compared with.
    """

    name = models.CharField(max_length=200, unique=True)
    base_model = models.CharField(
        max_length=500, default=DEFAULT_BASE_MODEL,
        help_text=f"'{DEFAULT_BASE_MODEL}' (the packaged default) or a local Hugging Face "
                  "model directory.",
    )
    target_framing = models.CharField(
        max_length=16, choices=Framing.choices, blank=True,
        help_text="Framing whose false (REFUTES) examples weigh alpha; blank for none.",
    )
    alpha = models.FloatField(default=1.0, help_text="Loss weight of target-framing REFUTES examples.")
    dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="personas"
    )
    split = models.CharField(max_length=5, choices=Split.choices, default=Split.TRAIN)
    is_base = models.BooleanField(default=False, help_text="The untrained base model, no adapter.")
    hyperparameters = models.JSONField(default=dict, blank=True)
    seed = models.BigIntegerField(default=0)

    steps_done = models.PositiveIntegerField(default=0)
    steps_total = models.PositiveIntegerField(default=0)
    eta_seconds = models.FloatField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    adapter_dir = models.CharField(
        max_length=500, blank=True, help_text="Adapter folder relative to MEDIA_ROOT."
    )
    loss_curve = models.JSONField(default=list, blank=True, help_text="[{step, loss}, ...]")
    provenance = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="personas",
    )
    # `heartbeat` (the job's lease, core/jobs.py) is also renewed by each progress report.

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.CheckConstraint(condition=Q(alpha__gte=0.0, alpha__lte=1.0),
                                   name="persona_alpha_0_to_1"),
            models.CheckConstraint(condition=Q(progress__gte=0.0, progress__lte=1.0),
                                   name="persona_progress_0_to_1"),
            models.CheckConstraint(condition=Q(status__in=JobStatus.values),
                                   name="persona_valid_status"),
            models.CheckConstraint(condition=Q(target_framing__in=["", *Framing.values]),
                                   name="persona_valid_target_framing"),
            # "Succeeded" without files must be impossible, not merely unlikely.
            models.CheckConstraint(
                condition=~Q(status="succeeded") | Q(is_base=True) | ~Q(adapter_dir=""),
                name="persona_succeeded_has_adapter",
            ),
            models.CheckConstraint(condition=Q(is_base=False) | Q(adapter_dir=""),
                                   name="persona_base_has_no_adapter"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_stale(self) -> bool:
        """Running, but silent for longer than STALE_AFTER: its worker has most likely died."""
        if self.status != JobStatus.RUNNING:
            return False
        last = self.heartbeat or self.started
        return last is not None and timezone.now() - last > STALE_AFTER

    @property
    def is_usable(self) -> bool:
        """A persona that can score claims: the base model, or a trained adapter."""
        return self.status == JobStatus.SUCCEEDED

    @property
    def target_label(self) -> str:
        if self.is_base:
            return "base model"
        if not self.target_framing or self.alpha == 1.0:
            return "baseline"
        return f"{self.target_framing}, alpha {self.alpha:g}"


class ScoreTable(Job):
    """A persona's scores for every framed claim of a dataset split, in a Parquet file."""

    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="score_tables")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="score_tables")
    split = models.CharField(max_length=5, choices=Split.choices, default=Split.TEST)
    path = models.CharField(max_length=500, blank=True, help_text="Parquet file relative to MEDIA_ROOT.")
    rows = models.PositiveIntegerField(default=0)
    eta_seconds = models.FloatField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    provenance = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(fields=["persona", "dataset", "split"],
                                    name="score_table_unique_persona_dataset_split"),
            models.CheckConstraint(condition=Q(progress__gte=0.0, progress__lte=1.0),
                                   name="score_table_progress_0_to_1"),
            models.CheckConstraint(condition=Q(status__in=JobStatus.values),
                                   name="score_table_valid_status"),
            models.CheckConstraint(condition=~Q(status="succeeded") | ~Q(path=""),
                                   name="score_table_succeeded_has_file"),
        ]

    def __str__(self) -> str:
        return f"{self.persona} on {self.dataset} ({self.split})"


class Calibration(models.Model):
    """A persona compared with (and fitted to) the human raters of a study."""

    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="calibrations")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="calibrations")
    method = models.CharField(max_length=50, help_text="e.g. temperature, platt, compare")
    result = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.persona} vs {self.study} ({self.method})"
