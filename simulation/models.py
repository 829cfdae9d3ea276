"""Simulation runs: one row per Monte Carlo study of information health (method.md 4).

The row holds what defines the run (agents, pool, policy, sizes, seed), so that the same row
run again gives the same numbers, and where its outputs live: the per-step results as a
Parquet file under MEDIA_ROOT/simulations/<id>/ and the comparison summary as JSON. The
database enforces the invariants a report relies on: positive sizes, a known status, a
progress in [0, 1], and shard counts that never pass their total.
"""
from django.conf import settings
from django.db import models
from django.db.models import F, Q

from annotation.models import Dataset
from core.jobs import Job, JobStatus

ALL_SPLITS = "all"


class CandidateMode(models.TextChoices):
    EXACT = "exact", "exact (cosine against the whole remaining pool)"
    INDEXED = "indexed", "indexed (nearest-neighbour candidates, then exact re-ranking)"


class SplitChoice(models.TextChoices):
    """Which claims of the dataset form the pool; FrameRef simulated on the test split."""

    TEST = "test", "test"
    DEV = "dev", "dev"
    TRAIN = "train", "train"
    NONE = "none", "none (claims without a split)"
    ALL = ALL_SPLITS, "all claims of the dataset"


class SimulationRun(Job):
    # A run is a chord of many Celery tasks (start, shards, merge): their ids are in task_ids.
    task_id = None

    name = models.CharField(max_length=200)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="simulation_runs")
    split = models.CharField(max_length=5, choices=SplitChoice.choices, default=SplitChoice.TEST)
    agents = models.JSONField(
        help_text='Agent specs, e.g. [{"kind": "persona", "persona": "baseline"}, '
                  '{"kind": "oracle"}]; see simulation/agent_builders.py.'
    )
    policy = models.CharField(max_length=50, default="reinforcement")
    policy_params = models.JSONField(default=dict, blank=True)
    candidate_mode = models.CharField(
        max_length=8, choices=CandidateMode.choices, default=CandidateMode.EXACT
    )
    trajectories = models.PositiveIntegerField(help_text="Trajectories per run and agent.")
    steps = models.PositiveIntegerField(help_text="Steps T of each trajectory.")
    runs = models.PositiveIntegerField(default=1, help_text="Independent repetitions (FrameRef: 3).")
    seed = models.BigIntegerField(default=0)

    shards_done = models.PositiveIntegerField(default=0)
    shards_total = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    results_path = models.CharField(
        max_length=500, blank=True, help_text="Per-step Parquet relative to MEDIA_ROOT."
    )
    summary = models.JSONField(default=dict, blank=True)
    provenance = models.JSONField(default=dict, blank=True)
    task_ids = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="simulation_runs",
    )

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(trajectories__gt=0), name="simulation_run_trajectories_positive"),
            models.CheckConstraint(condition=Q(steps__gt=0), name="simulation_run_steps_positive"),
            models.CheckConstraint(condition=Q(runs__gt=0), name="simulation_run_runs_positive"),
            models.CheckConstraint(condition=Q(progress__gte=0.0, progress__lte=1.0),
                                   name="simulation_run_progress_0_to_1"),
            models.CheckConstraint(condition=Q(status__in=JobStatus.values),
                                   name="simulation_run_valid_status"),
            models.CheckConstraint(condition=Q(split__in=SplitChoice.values),
                                   name="simulation_run_valid_split"),
            models.CheckConstraint(condition=Q(candidate_mode__in=CandidateMode.values),
                                   name="simulation_run_valid_candidate_mode"),
            models.CheckConstraint(condition=Q(shards_done__lte=F("shards_total")),
                                   name="simulation_run_shards_done_within_total"),
            # A report must never point at results that were not written.
            models.CheckConstraint(condition=~Q(status="succeeded") | ~Q(results_path=""),
                                   name="simulation_run_succeeded_has_results"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name}"

    @property
    def agent_names(self) -> list[str]:
        return [spec.get("name") or spec.get("kind", "?") for spec in self.agents or []]
