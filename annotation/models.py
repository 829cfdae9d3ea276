"""The annotation tables: claim datasets, human studies, their participants and judgments, exports.

- Claims: a `Dataset` holds `BaseClaim`s (a ground truth and a split) and their
  `FramedClaim` restatements, one per framing; `ClaimImport` tracks an upload run by a worker.
- Studies: a `Study` over a dataset (design, questions, consent and instructions, sharing),
  its `AttentionCheck`s, its `Batch`es of `BatchItem`s (one rater's assignment each).
- People and answers: a `Participant` is one person's session in a study; a `Judgment` is
  their current answer to one item (accept, confidence, familiarity, timing), and a
  `JudgmentRevision` keeps an answer they later changed.
- Data out: a `DataExport` is a tidy-table export written to a file by a worker.

The database itself enforces the invariants: for claims those of method.md section 1 (one
external id per base claim within a dataset, one restatement per framing of a base claim,
only the known framings, labels, splits and verification states), for studies those the
design and assignment rely on (one session per participant and study, one judgment per
participant and item, a batch never completed by more raters than its quota, confidence and
familiarity between 1 and 5).
"""
from django.conf import settings
from django.db import models
from django.db.models import F, Q

from annotation.validators import completion_url_problem, validate_completion_url
from core.jobs import Job
from core.vocabulary import FRAMINGS, NO_SPLIT, SPLITS, TRUTH_LABELS


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


class ClaimImport(Job):
    """One import of claim files into a dataset, started from the web and run by a worker."""

    # Its progress (bytes and rows read) lives in the Celery task's state, not in a column.
    progress = None

    dataset_name = models.CharField(max_length=200)
    dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="imports"
    )
    files = models.JSONField(help_text="Paths of the uploaded files, relative to MEDIA_ROOT.")
    skip_existing = models.BooleanField(default=False)
    options = models.JSONField(default=dict, blank=True, help_text="default split, verification")
    bytes_total = models.PositiveBigIntegerField(default=0)
    rows_imported = models.PositiveBigIntegerField(default=0)
    rows_skipped = models.PositiveBigIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"import #{self.pk} into {self.dataset_name} ({self.status})"


# --- Human studies ----------------------------------------------------------------------

DEFAULT_INSTRUCTIONS = """\
In this study you will read a series of short statements, one at a time. For each statement, please answer three questions:

1. Is this accurate? Answer Yes if you believe the statement is true, No if you believe it is false.
2. How confident are you in your answer? From 1 (not at all confident) to 5 (very confident).
3. How familiar are you with this topic? From 1 (not at all familiar) to 5 (very familiar).

Use only what you already know. Please do not look anything up, ask anyone, or use any tool: there are no trick questions, and we are interested in your own judgment, whatever it is. Some statements are true and some are false. You can use the keyboard: Y or N for the first question, 1 to 5 for the scales, and Enter to go on."""

DEFAULT_CONSENT = """\
You are invited to take part in a research study on how people judge short factual statements. You will read statements on general topics and say whether you think each is accurate, how confident you are, and how familiar the topic is to you. It takes about 10 to 15 minutes.

Taking part is voluntary. You may stop at any time by closing this page or returning the study on the platform that sent you, without giving a reason. We record your answers, how long each answer took, and the participant ID your recruitment platform passes to us; we do not ask for your name or contact details. The anonymised answers may be published and shared with other researchers. Some statements are false: please do not take any statement here as fact. If you have questions, contact the research team through the recruitment platform.

By continuing you confirm that you are 18 or older, that you have read this information, and that you agree to take part."""


class Study(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        OPEN = "open"
        PAUSED = "paused"
        CLOSED = "closed"

    class AttentionFailPolicy(models.TextChoices):
        RECORD = "record", "record the outcome only"
        EXCLUDE = "exclude", "let the participant finish, then exclude them"
        END = "end", "end the session at once and exclude the participant"

    name = models.CharField(max_length=200, unique=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="studies")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="studies",
    )
    collaborators = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="shared_studies",
        help_text="Researchers who may see and manage this study besides its owner.",
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT)
    created = models.DateTimeField(auto_now_add=True)
    # Item selection, kept so the design can be reproduced from the seed.
    base_claim_count = models.PositiveIntegerField(null=True, blank=True)
    base_claim_ids = models.JSONField(default=list, blank=True,
                                      help_text="An explicit list of base claim ids, if chosen by hand.")
    framings = models.JSONField(default=list)
    split = models.CharField(max_length=5, blank=True,
                             help_text="Only base claims of this split; blank for any split.")
    batch_size = models.PositiveIntegerField()
    raters_per_batch = models.PositiveIntegerField()
    seed = models.BigIntegerField(default=0)
    # What participants read.
    question_accurate = models.CharField(max_length=300, default="Is this accurate?")
    question_confidence = models.CharField(
        max_length=300, default="How confident are you in your answer?")
    question_familiarity = models.CharField(
        max_length=300, default="How familiar are you with this topic?")
    confidence_low_label = models.CharField(max_length=100, default="Not at all confident")
    confidence_high_label = models.CharField(max_length=100, default="Very confident")
    familiarity_low_label = models.CharField(max_length=100, default="Not at all familiar")
    familiarity_high_label = models.CharField(max_length=100, default="Very familiar")
    instructions = models.TextField(default=DEFAULT_INSTRUCTIONS)
    consent_text = models.TextField(default=DEFAULT_CONSENT)
    completion_code = models.CharField(max_length=100, blank=True)
    completion_url = models.URLField(
        blank=True, validators=[validate_completion_url],
        help_text="Where a finished participant is sent (http or https), e.g. Prolific's completion URL.")
    time_limit_minutes = models.PositiveIntegerField(
        default=60, help_text="A session idle this long is timed out and its slot reopened.")
    attention_fail_policy = models.CharField(
        max_length=8, choices=AttentionFailPolicy.choices, default=AttentionFailPolicy.RECORD)

    class Meta:
        ordering = ["-created"]
        verbose_name_plural = "studies"
        constraints = [
            models.CheckConstraint(condition=Q(batch_size__gte=1), name="study_batch_size_positive"),
            models.CheckConstraint(condition=Q(raters_per_batch__gte=1),
                                   name="study_raters_per_batch_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def accepts_participants(self) -> bool:
        return self.status == self.Status.OPEN

    @property
    def safe_completion_url(self) -> str:
        """The completion URL if it is an http(s) URL, else "": a value stored before the rule
        (or written around it) is never rendered as a link or a refresh target."""
        return "" if completion_url_problem(self.completion_url) else self.completion_url


class AttentionCheck(models.Model):
    """A statement with a known answer, shown at a fixed position in every batch."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="attention_checks")
    text = models.TextField()
    expected_accept = models.BooleanField(help_text="True if the right answer is Yes (accurate).")
    position = models.PositiveIntegerField(help_text="1-based position within each batch.")

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["study", "position"], name="attention_check_unique_position"),
        ]

    def __str__(self) -> str:
        return f"check at {self.position}: {self.text[:40]}"


class Batch(models.Model):
    """One rater's set of items; `quota` raters complete it.

    The two counters are kept in the same transactions that start, finish or release a
    session, so that assignment reads one row per batch instead of counting sessions.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="batches")
    index = models.PositiveIntegerField()
    quota = models.PositiveIntegerField()
    active_count = models.IntegerField(default=0)
    completed_count = models.IntegerField(default=0)

    class Meta:
        ordering = ["study", "index"]
        constraints = [
            models.UniqueConstraint(fields=["study", "index"], name="batch_unique_index"),
            models.CheckConstraint(condition=Q(completed_count__lte=F("quota")),
                                   name="batch_completed_within_quota"),
            models.CheckConstraint(condition=Q(active_count__gte=0) & Q(completed_count__gte=0),
                                   name="batch_counts_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.study} batch {self.index + 1}"


class BatchItem(models.Model):
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField(help_text="1-based order in which it is shown.")
    framed_claim = models.ForeignKey(FramedClaim, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="batch_items")
    attention_check = models.ForeignKey(AttentionCheck, null=True, blank=True,
                                        on_delete=models.CASCADE, related_name="batch_items")

    class Meta:
        ordering = ["batch", "position"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "position"], name="batch_item_unique_position"),
            models.CheckConstraint(
                condition=(Q(framed_claim__isnull=False, attention_check__isnull=True)
                           | Q(framed_claim__isnull=True, attention_check__isnull=False)),
                name="batch_item_claim_or_check",
            ),
        ]

    @property
    def text(self) -> str:
        return self.framed_claim.text if self.framed_claim_id else self.attention_check.text


class Participant(models.Model):
    """One person's session in a study, keyed by the id their recruitment platform gives."""

    class Source(models.TextChoices):
        PROLIFIC = "prolific"
        MTURK = "mturk"
        GENERIC = "generic"
        # A language model that took the study through the bot interface (rate_study):
        # left out of every analysis of human raters unless asked for.
        PERSONA = "persona"

    class Status(models.TextChoices):
        CONSENTING = "consenting", "has not consented yet"
        ACTIVE = "active"
        COMPLETED = "completed"
        RETURNED = "returned"
        TIMED_OUT = "timed_out", "timed out"
        REJECTED = "rejected"
        EXCLUDED = "excluded"

    # A participant in one of these holds a slot of their batch (counted in active_count).
    HOLDS_SLOT = (Status.ACTIVE,)
    # Excluded from analysis: they returned, were rejected or excluded, or never finished.
    EXCLUDED_FROM_ANALYSIS = (Status.RETURNED, Status.TIMED_OUT, Status.REJECTED, Status.EXCLUDED)

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="participants")
    external_id = models.CharField(max_length=200)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.GENERIC)
    platform_study_id = models.CharField(max_length=200, blank=True)
    platform_session_id = models.CharField(max_length=200, blank=True)
    mturk_hit_id = models.CharField(max_length=200, blank=True)
    token = models.CharField(max_length=64, unique=True)
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="participants")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CONSENTING)
    attention_failures = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    consented_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    status_note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["created"]
        constraints = [
            models.UniqueConstraint(fields=["study", "external_id"],
                                    name="participant_one_session_per_study"),
            models.CheckConstraint(
                condition=~Q(status__in=["active", "completed"]) | Q(batch__isnull=False),
                name="participant_active_has_batch",
            ),
        ]
        indexes = [models.Index(fields=["study", "status", "last_seen_at"],
                                name="participant_status_seen")]

    def __str__(self) -> str:
        return f"{self.external_id} in {self.study}"


class Judgment(models.Model):
    """A participant's current answer to one item; earlier answers live in JudgmentRevision."""

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="judgments")
    item = models.ForeignKey(BatchItem, on_delete=models.PROTECT, related_name="judgments")
    accept = models.BooleanField(help_text="Yes to 'Is this accurate?' (the rater's SUPPORTS).")
    confidence = models.PositiveSmallIntegerField()
    familiarity = models.PositiveSmallIntegerField()
    position = models.PositiveIntegerField(help_text="Order in which the item was shown (1-based).")
    shown_at = models.DateTimeField()
    answered_at = models.DateTimeField()
    response_time_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Measured in the browser, when JavaScript ran.")
    attention_passed = models.BooleanField(null=True, blank=True)
    submission_key = models.UUIDField()
    revisions = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["participant", "position"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "item"], name="judgment_one_per_item"),
            models.CheckConstraint(condition=Q(confidence__gte=1, confidence__lte=5),
                                   name="judgment_confidence_1_to_5"),
            models.CheckConstraint(condition=Q(familiarity__gte=1, familiarity__lte=5),
                                   name="judgment_familiarity_1_to_5"),
        ]


class JudgmentRevision(models.Model):
    """An answer that was later changed with "Previous": kept, never overwritten."""

    judgment = models.ForeignKey(Judgment, on_delete=models.CASCADE, related_name="history")
    accept = models.BooleanField()
    confidence = models.PositiveSmallIntegerField()
    familiarity = models.PositiveSmallIntegerField()
    shown_at = models.DateTimeField()
    answered_at = models.DateTimeField()
    response_time_ms = models.PositiveIntegerField(null=True, blank=True)
    submission_key = models.UUIDField()
    replaced_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["judgment", "answered_at"]


class DataExport(Job):
    """A tidy-table export of a study's judgments written to a file by a Celery job.

    Small exports stream straight from the API or the command; this row tracks the large
    ones: their progress, the file under MEDIA_ROOT and who asked for it.
    """

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        JSONL = "jsonl", "JSON Lines"
        PARQUET = "parquet", "Parquet"

    # Its progress is counted in rows: rows_written of rows_total.
    progress = None

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=8, choices=Format.choices)
    options = models.JSONField(default=dict, blank=True,
                               help_text="Filters and switches the export was asked with.")
    rows_total = models.PositiveBigIntegerField(default=0)
    rows_written = models.PositiveBigIntegerField(default=0)
    file = models.CharField(max_length=500, blank=True, help_text="Path relative to MEDIA_ROOT.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="data_exports",
    )

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.study} as {self.format} ({self.status})"


class ModelFit(Job):
    """A fit of the study report's mixed-effects model, run by a worker (it takes tens of
    seconds): the report page starts it, shows its progress and, once done, its result.

    A fit belongs to the study's data as they were (`data_version`) and to the analysis
    options it was asked with (`options_key`, a digest of `options`): new answers or other
    exclusions make the report ask for a new fit, and the old one stays until cleaned up.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="model_fits")
    options = models.JSONField(default=dict, help_text="The report options the fit was asked with.")
    options_key = models.CharField(max_length=64, help_text="Digest of the options (a look-up key).")
    data_version = models.CharField(max_length=16, help_text="The study's data fingerprint when asked.")
    stage = models.CharField(max_length=200, blank=True, help_text="What the running fit is doing.")
    result = models.JSONField(null=True, blank=True, help_text="The model's entry in the report.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="model_fits",
    )

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["study", "data_version", "options_key"])]

    def __str__(self) -> str:
        return f"mixed model of {self.study} ({self.status})"
