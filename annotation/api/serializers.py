"""The API's request and response shapes, one small serializer per contract.

They parse and render only: writes go through the services (`annotation.claims.services`,
`annotation.studies.services`, `annotation.studies.assignment`), and what a researcher may see is decided
by the selectors before anything reaches a serializer.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.analysis.options import (
    DEFAULT_INTERVAL,
    EXCLUSION_RULES,
    INTERVAL_METHODS,
)
from annotation.claims.files import VERIFICATION_STATES
from annotation.claims.selectors import claim_import_file_names
from annotation.models import (
    AttentionCheck,
    ClaimImport,
    DataExport,
    Dataset,
    Framing,
    Judgment,
    Participant,
    Split,
    Study,
    TruthLabel,
)
from annotation.studies.assignment import MARKABLE
from annotation.studies.selectors import TRUTH_WORDS
from annotation.validators import validate_completion_url
from core.lookup import MAX_ID
from core.vocabulary import FRAMINGS, NO_SPLIT, SPLITS

# --- Datasets and imports -----------------------------------------------------------------

# --- Input types as the schema states them -------------------------------------------------

def _json_type_problem(field, value) -> str | None:
    """Why `value` (from a JSON body) is not of the JSON type the schema gives `field`."""
    if value is None:
        return None  # allow_null decides
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "a boolean (true or false)"
    if isinstance(field, (serializers.IntegerField, serializers.PrimaryKeyRelatedField)):
        whole = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
        return None if whole else "an integer"
    if isinstance(field, serializers.FloatField):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if number else "a number"
    if isinstance(field, (serializers.CharField, serializers.ChoiceField)):
        return None if isinstance(value, str) else "a string"
    if isinstance(field, (serializers.ListField, serializers.ListSerializer)):
        if not isinstance(value, list):
            return "a list"
        if isinstance(field, serializers.ListField):
            for item in value:
                problem = _json_type_problem(field.child, item)
                if problem:
                    return f"a list of {problem.removeprefix('a ').removeprefix('an ')}s"
        return None
    if isinstance(field, serializers.Serializer):
        return None if isinstance(value, dict) else "an object"
    return None


FORM_BOOLEANS = {"true": True, "false": False}


class StrictTypes:
    """Input exactly as the schema states it, so that what the schema calls invalid is refused.

    DRF is lenient: in a JSON body it takes `0` for a string, `"1"` or `"yes"` for a boolean and
    `"7"` for an integer. Here a JSON body's values must have the schema's JSON types; form
    bodies and query strings (where everything is a string) keep DRF's parsing, except that a
    boolean is `true` or `false` (any case), nothing else."""

    def to_internal_value(self, data):
        root = self.root
        as_strings = hasattr(getattr(root, "initial_data", None), "getlist") or \
            root.context.get("strings", False)
        if isinstance(data, dict) or hasattr(data, "getlist"):
            errors = {}
            for name, field in self.fields.items():
                if field.read_only or name not in data:
                    continue
                if as_strings:
                    if isinstance(field, serializers.BooleanField):
                        values = data.getlist(name) if hasattr(data, "getlist") else [data[name]]
                        if any(str(v).lower() not in FORM_BOOLEANS for v in values):
                            errors[name] = ["Must be true or false."]
                    continue
                problem = _json_type_problem(field, data[name])
                if problem:
                    errors[name] = [f"Incorrect type: expected {problem}, got "
                                    f"{type(data[name]).__name__} {data[name]!r:.40}."]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class DatasetSerializer(serializers.ModelSerializer):
    base_claim_count = serializers.IntegerField(read_only=True, help_text="Base claims (all splits).")

    class Meta:
        model = Dataset
        fields = ["id", "name", "description", "source", "licence", "created", "base_claim_count"]


class SplitCompositionSerializer(serializers.Serializer):
    split = serializers.ChoiceField(choices=Split.choices)
    true = serializers.IntegerField(help_text="Base claims labelled SUPPORTS.")
    false = serializers.IntegerField(help_text="Base claims labelled REFUTES.")


class CompositionSerializer(serializers.Serializer):
    base_claims = serializers.IntegerField()
    framed_claims = serializers.IntegerField()
    splits = SplitCompositionSerializer(many=True, help_text="Splits that hold any base claim.")
    framings = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Framed claims per framing, every framing listed (0 where there are none).",
    )

    def to_representation(self, composition):
        return {**composition, "framings": dict(composition["framings"])}


class DatasetDetailSerializer(DatasetSerializer):
    composition = serializers.SerializerMethodField()

    class Meta(DatasetSerializer.Meta):
        fields = [*DatasetSerializer.Meta.fields, "composition"]

    @extend_schema_field(CompositionSerializer)
    def get_composition(self, dataset):
        return CompositionSerializer(self.context["composition"]).data


class ImportProgressSerializer(serializers.Serializer):
    bytes = serializers.IntegerField(help_text="Bytes of the uploaded files read so far.")
    rows = serializers.IntegerField(help_text="Rows handled so far.")


class ClaimImportSerializer(serializers.ModelSerializer):
    files = serializers.SerializerMethodField(help_text="The uploaded files' names.")
    default_split = serializers.SerializerMethodField()
    verification = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField(
        help_text="While running (with a worker that reports it): bytes and rows so far.")
    url = serializers.SerializerMethodField(help_text="This status endpoint.")

    class Meta:
        model = ClaimImport
        fields = ["id", "url", "dataset_name", "dataset", "files", "skip_existing", "default_split",
                  "verification", "status", "bytes_total", "rows_imported", "rows_skipped",
                  "error", "progress", "created", "started", "finished"]
        read_only_fields = fields

    def get_files(self, job) -> list[str]:
        return claim_import_file_names(job.files)

    def get_default_split(self, job) -> str:
        return job.options.get("default_split", NO_SPLIT)

    def get_verification(self, job) -> str:
        return job.options.get("verification", "unverified")

    @extend_schema_field(ImportProgressSerializer(allow_null=True))
    def get_progress(self, job):
        progress = self.context.get("progress", {}).get(job.pk)
        return ImportProgressSerializer(progress).data if progress else None

    def get_url(self, job) -> str:
        return _absolute(self, reverse("api:import-detail", args=[job.pk]))


class ClaimImportCreateSerializer(serializers.Serializer):
    dataset_name = serializers.CharField(
        max_length=200, help_text="An existing dataset to add to, or the name of a new one.")
    files = serializers.ListField(
        child=serializers.FileField(),
        allow_empty=False, min_length=1,
        help_text="FrameRef JSON Lines (.jsonl, .jsonl.gz), Parquet or CSV (.csv, .csv.gz) files "
                  "with the columns claim_id, restated_claim, framing_type, true_label. Names "
                  "like train-0000.jsonl set the split.",
    )
    default_split = serializers.ChoiceField(
        choices=Split.choices, default=NO_SPLIT, help_text="Split of rows that name none.")
    verification = serializers.ChoiceField(
        choices=list(VERIFICATION_STATES), default="unverified",
        help_text="Verification state of the restatements.")
    skip_existing = serializers.BooleanField(
        default=False, help_text="Skip rows already in the dataset instead of refusing them.")


# --- Studies --------------------------------------------------------------------------------

class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = get_user_model()
        fields = ["id", "username"]
        read_only_fields = fields


class AttentionCheckSerializer(StrictTypes, serializers.ModelSerializer):
    class Meta:
        model = AttentionCheck
        fields = ["text", "expected_accept", "position"]


# What participants read: fixed once someone has taken part, so every answer in a study was
# given to the same wording.
PARTICIPANT_TEXT_FIELDS = (
    "question_accurate", "question_confidence", "question_familiarity",
    "confidence_low_label", "confidence_high_label", "familiarity_low_label",
    "familiarity_high_label", "instructions", "consent_text",
)
# Safe to change at any time.
ADMINISTRATIVE_FIELDS = ("name", "completion_code", "completion_url", "time_limit_minutes",
                         "attention_fail_policy")
DESIGN_FIELDS = ("dataset", "base_claim_count", "base_claim_ids", "framings", "split",
                 "batch_size", "raters_per_batch", "seed")


class StudySerializer(serializers.ModelSerializer):
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)
    owner = UserSerializer(read_only=True, allow_null=True)
    attention_checks = AttentionCheckSerializer(many=True, read_only=True)
    batch_count = serializers.SerializerMethodField()
    entry_url = serializers.SerializerMethodField(
        help_text="The link to give the recruitment platform (append ?PROLIFIC_PID=... etc.).")
    # A URL or empty: as a string, since an empty value is no `uri`.
    completion_url = serializers.CharField(
        read_only=True, help_text="Where a finished participant is sent (empty: nowhere).")
    url = serializers.SerializerMethodField()

    class Meta:
        model = Study
        fields = ["id", "url", "name", "status", "dataset", "dataset_name", "owner", "created",
                  *DESIGN_FIELDS[1:], "batch_count", "attention_checks", "entry_url",
                  *ADMINISTRATIVE_FIELDS[1:], *PARTICIPANT_TEXT_FIELDS]
        read_only_fields = fields

    def get_batch_count(self, study) -> int:
        annotated = getattr(study, "batch_count", None)
        return annotated if annotated is not None else study.batches.count()

    def get_entry_url(self, study) -> str:
        return _absolute(self, reverse("annotation:study-entry", args=[study.pk]))

    def get_url(self, study) -> str:
        return _absolute(self, reverse("api:study-detail", args=[study.pk]))


class StudyCreateSerializer(StrictTypes, serializers.Serializer):
    dataset = serializers.PrimaryKeyRelatedField(
        queryset=Dataset.objects.all(), help_text="The dataset's id.")
    name = serializers.CharField(max_length=200)
    base_claims = serializers.IntegerField(
        min_value=2, required=False, allow_null=True, default=None,
        help_text="Number of base claims, half true and half false (default 40 unless "
                  "`base_claim_ids` is given).")
    base_claim_ids = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, allow_empty=False, min_length=1,
        help_text="Exactly these base claims (their external ids) instead of a random draw.")
    framings = serializers.ListField(
        child=serializers.ChoiceField(choices=Framing.choices), required=False,
        allow_empty=False, min_length=1, default=list(FRAMINGS),
        help_text="Framings to show (default: all six).")
    split = serializers.ChoiceField(choices=["", *SPLITS, NO_SPLIT], default="",
                                    help_text="Only base claims of this split (blank: any).")
    batch_size = serializers.IntegerField(min_value=1, max_value=1000, default=20)
    raters_per_batch = serializers.IntegerField(min_value=1, max_value=10_000, default=3)
    seed = serializers.IntegerField(default=123, min_value=-MAX_ID - 1, max_value=MAX_ID,
                                    help_text="The design's random seed.")
    status = serializers.ChoiceField(choices=[Study.Status.DRAFT, Study.Status.OPEN],
                                     default=Study.Status.DRAFT)
    completion_code = serializers.CharField(max_length=100, required=False, allow_blank=True,
                                            help_text="Default: a random code.")
    completion_url = serializers.URLField(
        required=False, allow_blank=True, default="", max_length=200,
        validators=[validate_completion_url],
        help_text="Where a finished participant is sent: an http or https URL (empty: nowhere).")
    time_limit_minutes = serializers.IntegerField(min_value=1, max_value=24 * 60, default=60)
    attention_checks = AttentionCheckSerializer(many=True, required=False, default=list)
    attention_fail_policy = serializers.ChoiceField(choices=Study.AttentionFailPolicy.choices,
                                                    default=Study.AttentionFailPolicy.RECORD)

    def validate_name(self, name):
        if Study.objects.filter(name=name).exists():
            raise serializers.ValidationError(f"a study named '{name}' already exists")
        return name

    def validate(self, data):
        if data.get("base_claims") is None and not data.get("base_claim_ids"):
            data["base_claims"] = 40
        positions = [check["position"] for check in data["attention_checks"]]
        duplicates = sorted({p for p in positions if positions.count(p) > 1})
        if duplicates:
            raise serializers.ValidationError(
                {"attention_checks": f"two checks at position(s) {duplicates}"})
        return data


class StudyUpdateSerializer(StrictTypes, serializers.ModelSerializer):
    """The fields a researcher may change after creation. The design (dataset, claims,
    framings, batches, seed) never changes; the texts participants read change only while
    nobody has entered the study."""

    class Meta:
        model = Study
        fields = [*ADMINISTRATIVE_FIELDS, *PARTICIPANT_TEXT_FIELDS]
        extra_kwargs = {"time_limit_minutes": {"min_value": 1, "max_value": 24 * 60}}

    def to_internal_value(self, data):
        # DRF skips an empty form field (multipart or urlencoded) in a partial update instead of
        # refusing it, so a PATCH emptying the consent text answered 200 and changed nothing.
        # A field that may not be blank (the schema's minLength 1) is refused in every encoding.
        if hasattr(data, "getlist"):
            blank = [name for name, field in self.fields.items()
                     if name in data and not getattr(field, "allow_blank", True)
                     and not str(data.get(name, "")).strip()]
            if blank:
                raise serializers.ValidationError({name: ["This field may not be blank."]
                                                   for name in blank})
        return super().to_internal_value(data)

    def validate_name(self, name):
        if Study.objects.filter(name=name).exclude(pk=self.instance.pk).exists():
            raise serializers.ValidationError(f"a study named '{name}' already exists")
        return name

    def validate(self, data):
        changed_texts = [field for field in PARTICIPANT_TEXT_FIELDS
                         if field in data and data[field] != getattr(self.instance, field)]
        if changed_texts and self.instance.participants.exists():
            raise serializers.ValidationError({
                field: "participants have already seen this text; it cannot change now "
                       "(create a new study to change what participants read)"
                for field in changed_texts
            })
        return data


class BatchProgressSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="0-based batch index.")
    quota = serializers.IntegerField()
    active_count = serializers.IntegerField()
    completed_count = serializers.IntegerField()


class StudyProgressSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Study.Status.choices)
    slots = serializers.IntegerField(help_text="Sessions the design needs (batches x raters).")
    completed = serializers.IntegerField()
    active = serializers.IntegerField()
    judgments = serializers.IntegerField()
    median_seconds_per_item = serializers.FloatField(allow_null=True)
    participants_by_status = serializers.DictField(
        child=serializers.IntegerField(), help_text="Participants per status, every status listed.")
    batches = BatchProgressSerializer(many=True)


class CollaboratorAddSerializer(StrictTypes, serializers.Serializer):
    username = serializers.CharField(max_length=150)

    def validate_username(self, username):
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise serializers.ValidationError(f"no active user named '{username}'")
        return user


class StatusChangeSerializer(serializers.Serializer):
    """No body is needed; the schema says so explicitly."""


# --- Participants ---------------------------------------------------------------------------

class ParticipantSerializer(serializers.ModelSerializer):
    batch_index = serializers.IntegerField(source="batch.index", read_only=True, allow_null=True)
    answered = serializers.IntegerField(read_only=True, help_text="Judgments given so far.")

    class Meta:
        model = Participant
        fields = ["id", "external_id", "source", "platform_study_id", "platform_session_id",
                  "status", "status_note", "batch_index", "answered", "attention_failures",
                  "created", "consented_at", "last_seen_at", "completed_at", "status_changed_at"]
        read_only_fields = fields


class ParticipantMarkSerializer(StrictTypes, serializers.Serializer):
    status = serializers.ChoiceField(choices=list(MARKABLE))
    note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="",
                                 help_text="Why, kept with the participant.")


class ParticipantBulkMarkSerializer(ParticipantMarkSerializer):
    external_ids = serializers.ListField(
        child=serializers.CharField(max_length=200), allow_empty=False, min_length=1, max_length=10_000,
        help_text="Participants' platform ids (e.g. Prolific PIDs). All or nothing: one unknown "
                  "id changes nothing.")


class ParticipantBulkMarkResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=list(MARKABLE))
    marked = serializers.IntegerField()
    participants = ParticipantSerializer(many=True)


# --- Judgments ------------------------------------------------------------------------------

class JudgmentSerializer(serializers.ModelSerializer):
    study = serializers.IntegerField(source="participant.study_id", read_only=True)
    participant = serializers.IntegerField(source="participant_id", read_only=True)
    participant_external_id = serializers.CharField(source="participant.external_id", read_only=True)
    participant_status = serializers.ChoiceField(source="participant.status", read_only=True,
                                                 choices=Participant.Status.choices)
    batch_index = serializers.IntegerField(source="item.batch.index", read_only=True)
    full_claim_id = serializers.SerializerMethodField(
        help_text="`<base id>:<framing>`; null for an attention check.")
    framing = serializers.SerializerMethodField()
    true_label = serializers.SerializerMethodField()
    text = serializers.SerializerMethodField()
    attention_check = serializers.SerializerMethodField(
        help_text="True when the item is an attention check, not a claim.")
    accurate_response = serializers.SerializerMethodField(
        help_text="The answer to 'Is this accurate?' as a label: Yes is SUPPORTS.")

    class Meta:
        model = Judgment
        fields = ["id", "study", "participant", "participant_external_id", "participant_status",
                  "batch_index", "position", "full_claim_id", "framing", "true_label", "text",
                  "attention_check", "accept", "accurate_response", "confidence", "familiarity",
                  "shown_at", "answered_at", "response_time_ms", "attention_passed", "revisions"]
        read_only_fields = fields

    def _framed(self, judgment):
        return judgment.item.framed_claim

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_full_claim_id(self, judgment) -> str | None:
        framed = self._framed(judgment)
        return framed.claim_id if framed else None

    @extend_schema_field(serializers.ChoiceField(choices=Framing.choices, allow_null=True))
    def get_framing(self, judgment):
        framed = self._framed(judgment)
        return framed.framing if framed else None

    @extend_schema_field(serializers.ChoiceField(choices=TruthLabel.choices, allow_null=True))
    def get_true_label(self, judgment):
        framed = self._framed(judgment)
        return framed.base_claim.true_label if framed else None

    def get_text(self, judgment) -> str:
        return judgment.item.text

    def get_attention_check(self, judgment) -> bool:
        return judgment.item.attention_check_id is not None

    @extend_schema_field(serializers.ChoiceField(choices=TruthLabel.choices))
    def get_accurate_response(self, judgment):
        return TruthLabel.SUPPORTS if judgment.accept else TruthLabel.REFUTES


# --- Exports --------------------------------------------------------------------------------

class DataExportSerializer(serializers.ModelSerializer):
    file_format = serializers.ChoiceField(source="format", choices=DataExport.Format.choices,
                                          read_only=True)
    progress = serializers.SerializerMethodField(help_text="Share of rows written, 0 to 1.")
    download_url = serializers.SerializerMethodField(
        help_text="Where the finished file is served; null until the export succeeded.")
    url = serializers.SerializerMethodField()

    class Meta:
        model = DataExport
        fields = ["id", "url", "study", "file_format", "options", "status", "rows_total",
                  "rows_written", "progress", "error", "download_url", "created", "started",
                  "finished"]
        read_only_fields = fields

    def get_progress(self, export) -> float | None:
        if export.status == DataExport.Status.SUCCEEDED:
            return 1.0
        if not export.rows_total:
            return None
        return min(1.0, export.rows_written / export.rows_total)

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_download_url(self, export) -> str | None:
        if export.status != DataExport.Status.SUCCEEDED or not export.file:
            return None
        return _absolute(self, reverse("api:export-download", args=[export.pk]))

    def get_url(self, export) -> str:
        return _absolute(self, reverse("api:export-detail", args=[export.pk]))


def _absolute(serializer, path: str) -> str:
    request = serializer.context.get("request")
    return request.build_absolute_uri(path) if request is not None else path


# --- Query parameters (parsed by the views, documented in the schema) ---------------------

class DatasetQuery(StrictTypes, serializers.Serializer):
    name = serializers.CharField(required=False, trim_whitespace=False,
                                 help_text="Only datasets whose name contains this.")


class StudyQuery(StrictTypes, serializers.Serializer):
    status = serializers.ChoiceField(choices=Study.Status.choices, required=False)
    dataset = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID,
                                       help_text="Only studies of this dataset (id).")
    name = serializers.CharField(required=False, trim_whitespace=False,
                                 help_text="Only studies whose name contains this.")


class ParticipantQuery(StrictTypes, serializers.Serializer):
    status = serializers.ListField(
        child=serializers.ChoiceField(choices=Participant.Status.choices), required=False,
        help_text="Only participants with one of these statuses (repeat the parameter or "
                  "separate with commas).")
    external_id = serializers.CharField(required=False, trim_whitespace=False,
                                        help_text="The participant's platform id, e.g. a Prolific PID.")
    batch = serializers.IntegerField(required=False, min_value=0, max_value=MAX_ID,
                                     help_text="0-based batch index.")


class JudgmentFilters(StrictTypes, serializers.Serializer):
    """The filters the judgments list and the exports share, with the same names and meaning."""

    framing = serializers.ListField(
        child=serializers.ChoiceField(choices=Framing.choices), required=False,
        help_text="Only claims in these framings (repeat or comma-separate).")
    truth = serializers.ListField(
        child=serializers.ChoiceField(choices=list(TRUTH_WORDS)), required=False,
        help_text="Only true claims (SUPPORTS or true) or only false ones (REFUTES or false).")
    participant_status = serializers.ListField(
        child=serializers.ChoiceField(choices=Participant.Status.choices), required=False,
        help_text="Only participants with one of these statuses (repeat or comma-separate).")
    include_excluded = serializers.BooleanField(
        required=False, default=True,
        help_text="false: leave out participants the analysis excludes (returned, timed out, "
                  "rejected, excluded).")
    include_attention_checks = serializers.BooleanField(
        required=False, default=False,
        help_text="true: include answers to attention checks (they have no framing, so a "
                  "framing or truth filter still leaves them out).")


class JudgmentQuery(JudgmentFilters):
    study = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID,
                                     help_text="Only this study's judgments (id).")
    participant = serializers.CharField(required=False, trim_whitespace=False,
                                        help_text="Only this participant (platform id).")


RAW_CSV_HELP = ("true: CSV cells exactly as stored. By default (false) a text cell starting with "
                "= + - @ ' or a tab or carriage return gets a ' in front, so that a spreadsheet "
                "shows it as text instead of running it as a formula. JSON Lines and Parquet are "
                "always as stored.")


class ExportQuery(JudgmentFilters):
    raw_csv = serializers.BooleanField(required=False, default=False, help_text=RAW_CSV_HELP)
    file_format = serializers.ChoiceField(
        choices=DataExport.Format.choices, required=False,
        help_text="csv (the default), jsonl (JSON Lines) or parquet. Without it, an Accept header "
                  "naming one of the three types, or `?format=csv|jsonl|parquet`, chooses.")


class DataExportCreateSerializer(JudgmentFilters):
    file_format = serializers.ChoiceField(choices=DataExport.Format.choices, default="csv")
    raw_csv = serializers.BooleanField(required=False, default=False, help_text=RAW_CSV_HELP)


class AnalysisQuery(StrictTypes, serializers.Serializer):
    """Documents the parameters; `AnalysisOptions.from_params` parses them."""

    exclusions = serializers.ListField(
        child=serializers.ChoiceField(choices=[*EXCLUSION_RULES, "all", "none"]), required=False,
        help_text="Exclusion rules to apply (repeat or comma-separate): `all` (the default), "
                  "`none`, or some of: " + "; ".join(
                      f"`{rule}`: {text}" for rule, text in EXCLUSION_RULES.items()) + ".")
    min_median_response_ms = serializers.FloatField(
        required=False, min_value=0, help_text="The `fast` rule's threshold (default 2000).")
    familiarity = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=5), required=False,
        help_text="Familiarity levels for the false-acceptance binomial tests (repeat or "
                  "comma-separate; default 4,5).")
    interval = serializers.ChoiceField(
        choices=list(INTERVAL_METHODS), required=False,
        help_text="How rates, means and differences from the original get their intervals: "
                  + "; ".join(f"`{name}`: {text}" for name, text in INTERVAL_METHODS.items())
                  + f". Default `{DEFAULT_INTERVAL}` (accounts for clustering by participant and by base claim).")
    bootstrap = serializers.IntegerField(
        required=False, min_value=0, max_value=100_000,
        help_text="Resamples of the bootstrap intervals (default 2000; 0: no intervals); "
                  "the default two-way interval needs none.")
    permutations = serializers.IntegerField(
        required=False, min_value=0, max_value=100_000,
        help_text="Permutations of framing labels within base claims for the primary test of each "
                  "framing's effect on false acceptance (default 2000; 0: no test).")
    confidence_level = serializers.FloatField(required=False, min_value=0.5, max_value=0.9999,
                                              help_text="Default 0.95.")
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**63 - 1,
                                    help_text="Seed of the bootstrap and the permutations (default 0).")
    mixed_model = serializers.BooleanField(
        required=False, help_text="Fit the mixed-effects logistic regression (default true).")
