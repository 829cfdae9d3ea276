"""Datasets of claims: base claims with a ground truth, and their framed restatements.

The database itself enforces the invariants of method.md section 1: one external id per
base claim within a dataset, one restatement per framing of a base claim, and only the
known framings, labels, splits and verification states.
"""
from django.conf import settings
from django.db import models
from django.db.models import Q

from .vocabulary import FRAMINGS, NO_SPLIT, SPLITS, TRUTH_LABELS


class Framing(models.TextChoices):
    ORIGINAL = "original", "Original"
    AUTHORITATIVE = "authoritative", "Authoritative"
    CONSENSUS = "consensus", "Consensus"
    EMOTIONAL = "emotional", "Emotional"
    PRESTIGE = "prestige", "Prestige"
    SENSATIONALIST = "sensationalist", "Sensationalist"


class TruthLabel(models.TextChoices):
    SUPPORTS = "SUPPORTS", "SUPPORTS (true)"
    REFUTES = "REFUTES", "REFUTES (false)"


class Split(models.TextChoices):
    TRAIN = "train", "train"
    DEV = "dev", "dev"
    TEST = "test", "test"
    NONE = NO_SPLIT, "none"


class Verification(models.TextChoices):
    """Outcome of the restatement check of method.md section 1 ("same claim? PASS/FAIL")."""

    NOT_APPLICABLE = "not_applicable", "not applicable (original text)"
    UNVERIFIED = "unverified", "unverified"
    PASSED = "passed", "passed"
    FAILED = "failed", "failed"


assert tuple(Framing.values) == FRAMINGS
assert tuple(TruthLabel.values) == TRUTH_LABELS
assert tuple(Split.values) == (*SPLITS, NO_SPLIT)


class Dataset(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    source = models.CharField(
        max_length=500, blank=True, help_text="Where the claims come from, e.g. a paper or URL."
    )
    licence = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class BaseClaim(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="base_claims")
    external_id = models.CharField(
        max_length=200, help_text="The claim's id in its source, e.g. fever-75397."
    )
    true_label = models.CharField(max_length=8, choices=TruthLabel.choices)
    split = models.CharField(max_length=5, choices=Split.choices, default=Split.NONE)
    topic = models.CharField(max_length=200, blank=True)
    source = models.CharField(
        max_length=500, blank=True, help_text="The claim's source document, e.g. a Wikipedia page."
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "external_id"], name="base_claim_unique_external_id"
            ),
            models.CheckConstraint(
                condition=Q(true_label__in=TruthLabel.values), name="base_claim_valid_label"
            ),
            models.CheckConstraint(
                condition=Q(split__in=Split.values), name="base_claim_valid_split"
            ),
            models.CheckConstraint(
                condition=~Q(external_id=""), name="base_claim_external_id_not_empty"
            ),
        ]
        indexes = [models.Index(fields=["dataset", "split"], name="base_claim_dataset_split")]

    def __str__(self) -> str:
        return self.external_id

    @property
    def is_true(self) -> bool:
        return self.true_label == TruthLabel.SUPPORTS


class FramedClaim(models.Model):
    # The unique (base_claim, framing) index also serves lookups by base claim, so the
    # foreign key needs no index of its own.
    base_claim = models.ForeignKey(
        BaseClaim, on_delete=models.CASCADE, related_name="framed_claims", db_index=False
    )
    framing = models.CharField(max_length=16, choices=Framing.choices)
    text = models.TextField()
    verification = models.CharField(
        max_length=16, choices=Verification.choices, default=Verification.UNVERIFIED
    )
    generator = models.CharField(
        max_length=200,
        blank=True,
        help_text="Provenance of the text: the release it came from, or the framer and model.",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["base_claim", "framing"], name="framed_claim_unique_framing"
            ),
            models.CheckConstraint(
                condition=Q(framing__in=Framing.values), name="framed_claim_valid_framing"
            ),
            models.CheckConstraint(
                condition=Q(verification__in=Verification.values),
                name="framed_claim_valid_verification",
            ),
            models.CheckConstraint(condition=~Q(text=""), name="framed_claim_text_not_empty"),
        ]

    def __str__(self) -> str:
        return self.claim_id

    @property
    def claim_id(self) -> str:
        """FrameRef's id of this row: `<base id>:<framing>`."""
        return f"{self.base_claim.external_id}:{self.framing}"


class ClaimImport(models.Model):
    """One import of claim files into a dataset, started from the web and run by a worker."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    dataset_name = models.CharField(max_length=200)
    dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="imports"
    )
    files = models.JSONField(help_text="Paths of the uploaded files, relative to MEDIA_ROOT.")
    skip_existing = models.BooleanField(default=False)
    options = models.JSONField(default=dict, blank=True, help_text="default split, verification")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    task_id = models.CharField(max_length=64, blank=True)
    bytes_total = models.PositiveBigIntegerField(default=0)
    rows_imported = models.PositiveBigIntegerField(default=0)
    rows_skipped = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"import #{self.pk} into {self.dataset_name} ({self.status})"
