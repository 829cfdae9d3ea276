"""The researchers' REST API: datasets, studies, participants, judgments, exports, analyses.

Thin by design: each view parses its input with a serializer, calls the same service or
selector the pages and commands use, and renders the result. Every study-scoped query
starts from `studies_visible_to(request.user)`, so another researcher's study, and anything
inside it, answers 404 exactly as a study that does not exist. Every endpoint needs an
authenticated researcher (`annotation.api.permissions.IsResearcher`); only the token endpoint
and the schema pages are open, and those are rate-limited.
"""
from __future__ import annotations

import re
from dataclasses import replace

from django.db import IntegrityError, transaction
from django.http import FileResponse, Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.decorators import api_view, permission_classes, throttle_classes
from rest_framework.exceptions import NotFound, Throttled, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

import annotation.api.serializers as s
from annotation.analysis.options import AnalysisOptions
from annotation.api.permissions import MayChangeSharing
from annotation.api.throttling import TokenRateThrottle
from annotation.claims.files import ClaimFileError
from annotation.claims.selectors import (
    claim_import_progress,
    claim_imports_visible_to,
    dataset_composition,
    dataset_list_with_counts,
)
from annotation.claims.services import claim_import_create
from annotation.claims.uploads import UploadTooLarge
from annotation.dataio.judgment_table import (
    CONTENT_TYPES,
    EXPORT_FORMATS,
    export_chunks,
    export_file_name,
)
from annotation.dataio.selectors import data_exports_visible_to
from annotation.dataio.services import data_export_create, data_export_path
from annotation.models import (
    ClaimImport,
    DataExport,
    Participant,
    Study,
)
from annotation.studies.assignment import participant_mark
from annotation.studies.design import DesignError
from annotation.studies.selectors import (
    TRUTH_WORDS,
    filter_judgments,
    judgments_visible_to,
    participants_with_answer_counts,
    studies_visible_to,
    studies_with_batch_counts_visible_to,
)
from annotation.studies.services import (
    StudyRuleError,
    study_create,
    study_set_status,
    study_update,
)
from annotation.studies.views import study_progress
from core.login_limits import LockedOut, LoginAttempt
from core.schema import ErrorSerializer

NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such object among those you may see.")
BAD_REQUEST = OpenApiResponse(description="Invalid input; the body names each field and what is wrong.")


class Pagination(PageNumberPagination):
    """`?page=N&page_size=M` (at most 1,000 a page); the response has count, next, previous.

    A page past the end is a 404 (DRF's rule); a page size that is not a positive integer
    is a 400 rather than silently the default, so a typo in a script shows.
    """

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw in (None, ""):
            return self.page_size
        # ASCII digits only: "²" is a digit to str.isdigit() but int() refuses it (a 500).
        if not re.fullmatch(r"[0-9]+", raw) or not raw.strip("0"):
            raise ValidationError({self.page_size_query_param: [
                f"'{raw:.60}' is not a page size; accepted: an integer from 1 to {self.max_page_size}"]})
        # Compared as text first: int() of a string of thousands of digits raises.
        raw = raw.lstrip("0")
        return self.max_page_size if len(raw) > 9 else min(int(raw), self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = (
                    f"Results per page (default {self.page_size}; larger than "
                    f"{self.max_page_size} gives {self.max_page_size}).")
        return parameters


PAGE_NOT_FOUND = OpenApiResponse(ErrorSerializer, description="A page past the last one.")


def visible_study(request, pk) -> Study:
    """The study `pk` if the requesting researcher may see it; 404 otherwise."""
    return get_object_or_404(studies_visible_to(request.user), pk=pk)


def _parse_query(serializer_class, request) -> dict:
    """Validated query parameters: a bad value is a 400 naming the parameter and value."""
    data = {}
    for name, field in serializer_class().fields.items():
        if isinstance(field, serializers.ListField):
            values = [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]
            if values:
                data[name] = values
        elif name in request.query_params:
            data[name] = request.query_params[name]
    parsed = serializer_class(data=data, context={"strings": True})
    parsed.is_valid(raise_exception=True)
    return parsed.validated_data


# --- Authentication -------------------------------------------------------------------------

@extend_schema(tags=["auth"])
class TokenView(APIView):
    """A researcher's API token, for scripts: `Authorization: Token <key>`."""

    throttle_classes = [TokenRateThrottle]
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def get_permissions(self):
        if self.request.method == "POST":
            return [AllowAny()]
        return super().get_permissions()

    def get_throttles(self):
        if self.request.method == "POST":
            return super().get_throttles()
        return []

    @extend_schema(
        summary="Get your API token",
        description="Exchanges a researcher's username and password for their token (created on "
                    "first use; the same token afterwards). Limited to a few attempts a minute "
                    "per address (`API_THROTTLE_TOKEN`), and like the login pages to a few "
                    "failures per account and per address before a lockout (429 with "
                    "`Retry-After`; see docs/security.md). `manage.py drf_create_token USERNAME` "
                    "does the same on the server.",
        request=AuthTokenSerializer,
        responses={200: inline_serializer("Token", {"token": serializers.CharField()}),
                   400: BAD_REQUEST},
        auth=[],
    )
    def post(self, request):
        username = request.data.get("username", "") if hasattr(request.data, "get") else ""
        attempt = LoginAttempt(request, username)
        try:
            attempt.begin()
        except LockedOut as locked:
            raise Throttled(wait=locked.retry_after, detail=locked.message()) from None
        credentials = AuthTokenSerializer(data=request.data, context={"request": request})
        if not credentials.is_valid():
            attempt.failed()
            raise ValidationError(credentials.errors)
        attempt.succeeded()
        token, _ = Token.objects.get_or_create(user=credentials.validated_data["user"])
        return Response({"token": token.key})

    @extend_schema(summary="Revoke your API token",
                   description="Deletes your token; scripts using it stop working. The next "
                               "POST creates a new one.",
                   request=None, responses={204: None})
    def delete(self, request):
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Datasets and imports -------------------------------------------------------------------

@extend_schema(tags=["datasets"], summary="List datasets",
               parameters=[s.DatasetQuery], responses={200: s.DatasetSerializer(many=True),
                                                     400: BAD_REQUEST, 404: PAGE_NOT_FOUND})
class DatasetListView(generics.ListAPIView):
    """Every claim dataset with its number of base claims. Datasets are shared by all
    researchers of the platform (studies are not)."""

    serializer_class = s.DatasetSerializer
    pagination_class = Pagination

    def get_queryset(self):
        query = _parse_query(s.DatasetQuery, self.request)
        datasets = dataset_list_with_counts()
        if query.get("name"):
            datasets = datasets.filter(name__icontains=query["name"])
        return datasets


@extend_schema(tags=["datasets"], summary="A dataset and its composition",
               responses={200: s.DatasetDetailSerializer, 404: NOT_FOUND})
class DatasetDetailView(APIView):
    """A dataset with the counts a researcher checks first: base claims by split and truth,
    framed claims by framing."""

    def get(self, request, pk):
        dataset = get_object_or_404(dataset_list_with_counts(), pk=pk)
        context = {"request": request, "composition": dataset_composition(dataset=dataset)}
        return Response(s.DatasetDetailSerializer(dataset, context=context).data)


@extend_schema_view(
    get=extend_schema(summary="List your claim imports",
                      responses={200: s.ClaimImportSerializer(many=True), 400: BAD_REQUEST,
                                 404: PAGE_NOT_FOUND}),
    post=extend_schema(
        summary="Upload claim files to import",
        description="Stores the uploaded files and queues their import into `dataset_name` "
                    "(created if new) as a background job; answers 202 at once with the job, "
                    "whose `url` reports its status. The import is all or nothing: a bad row "
                    "fails the job with a message naming the file, line, field and value, and "
                    "leaves the dataset as it was. Uploads larger than the server's limits "
                    "(`FRAMELAB_MAX_UPLOAD_FILE_BYTES` a file, `FRAMELAB_MAX_UPLOAD_REQUEST_BYTES` "
                    "a request) are refused with 413 before they are stored; the uploaded files "
                    "are deleted when the job ends.",
        request={"multipart/form-data": s.ClaimImportCreateSerializer},
        responses={202: s.ClaimImportSerializer, 400: BAD_REQUEST,
                   413: OpenApiResponse(ErrorSerializer, description="The upload is larger than "
                                        "the server's limits; the message says which and by how "
                                        "much.")},
    ),
)
@extend_schema(tags=["datasets"])
class ClaimImportListCreateView(generics.ListAPIView):
    serializer_class = s.ClaimImportSerializer
    pagination_class = Pagination
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        return claim_imports_visible_to(self.request.user)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["progress"] = claim_import_progress(
            self.get_queryset().filter(status=ClaimImport.Status.RUNNING))
        return context

    def post(self, request):
        # Not request.data.copy(): that deep-copies the uploads, and an upload spooled to a
        # temporary file cannot be copied.
        fields = {key: request.data.get(key) for key in request.data if key != "files"}
        upload = s.ClaimImportCreateSerializer(data={**fields, "files": request.FILES.getlist("files")})
        upload.is_valid(raise_exception=True)
        try:
            job = claim_import_create(**upload.validated_data, created_by=request.user)
        except UploadTooLarge as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        except ClaimFileError as exc:
            raise ValidationError({"files": [str(exc)]}) from None
        job.refresh_from_db()  # with eager Celery (debugging) the import has run already
        body = s.ClaimImportSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


@extend_schema(tags=["datasets"], summary="Status of a claim import",
               responses={200: s.ClaimImportSerializer, 404: NOT_FOUND})
class ClaimImportDetailView(APIView):
    """queued, running (with bytes and rows read so far), succeeded (rows imported and
    skipped, the dataset's id) or failed (the error naming file, line, field and value)."""

    def get(self, request, pk):
        job = get_object_or_404(claim_imports_visible_to(request.user), pk=pk)
        context = {"request": request, "progress": claim_import_progress([job])}
        return Response(s.ClaimImportSerializer(job, context=context).data)


# --- Studies --------------------------------------------------------------------------------

@extend_schema_view(
    get=extend_schema(summary="List your studies", parameters=[s.StudyQuery],
                      responses={200: s.StudySerializer(many=True), 400: BAD_REQUEST,
                                 404: PAGE_NOT_FOUND},
                      description="The studies you own, those shared with you, and (for a "
                                  "superuser) all studies; newest first."),
    post=extend_schema(
        summary="Create a study",
        description="Designs a balanced study from a dataset (base claims balanced by truth, "
                    "every framing dealt into batches so that no batch holds two framings of one "
                    "claim) and stores it with you as its owner. An infeasible design is a 400 "
                    "saying why.",
        request=s.StudyCreateSerializer,
        responses={201: s.StudySerializer, 400: BAD_REQUEST},
        examples=[OpenApiExample("FrameRef's design", request_only=True, value={
            "dataset": 1, "name": "FrameRef replication", "base_claims": 40, "batch_size": 20,
            "raters_per_batch": 3, "seed": 123,
            "completion_url": "https://app.prolific.com/submissions/complete?cc=YOURCODE",
            "completion_code": "YOURCODE",
            "attention_checks": [{"text": "Water boils at 20 degrees Celsius at sea level.",
                                  "expected_accept": False, "position": 10}],
        })],
    ),
)
@extend_schema(tags=["studies"])
class StudyListCreateView(generics.ListAPIView):
    serializer_class = s.StudySerializer
    pagination_class = Pagination

    def get_queryset(self):
        query = _parse_query(s.StudyQuery, self.request)
        studies = studies_with_batch_counts_visible_to(self.request.user)
        if "status" in query:
            studies = studies.filter(status=query["status"])
        if "dataset" in query:
            studies = studies.filter(dataset_id=query["dataset"])
        if query.get("name"):
            studies = studies.filter(name__icontains=query["name"])
        return studies

    def post(self, request):
        form = s.StudyCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        checks = [(c["text"], c["expected_accept"], c["position"]) for c in data.pop("attention_checks")]
        external_ids = data.pop("base_claim_ids", None)
        try:
            study = study_create(**data, base_claim_external_ids=external_ids,
                                 attention_checks=checks, owner=request.user)
        except DesignError as exc:
            raise ValidationError({"non_field_errors": [str(exc)]}) from None
        except StudyRuleError as refused:
            raise ValidationError({refused.field: [str(refused)]}) from None
        except IntegrityError:
            # Two requests creating the same name at once: the unique constraint decides.
            raise ValidationError({"name": [f"a study named '{data['name']}' already exists"]}) from None
        study = studies_with_batch_counts_visible_to(request.user).get(pk=study.pk)
        body = s.StudySerializer(study, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


@extend_schema_view(
    get=extend_schema(summary="A study", responses={200: s.StudySerializer, 404: NOT_FOUND}),
    patch=extend_schema(
        summary="Change a study's editable fields",
        description="Name, completion code and URL, time limit and attention-check policy can "
                    "change at any time. The texts participants read (questions, scale labels, "
                    "instructions, consent) can change only until the first participant enters. "
                    "The design (dataset, claims, framings, batches, seed) never changes.",
        request=s.StudyUpdateSerializer,
        responses={200: s.StudySerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    ),
)
@extend_schema(tags=["studies"])
class StudyDetailView(APIView):
    http_method_names = ["get", "patch", "head", "options"]

    def get(self, request, pk):
        study = get_object_or_404(studies_with_batch_counts_visible_to(request.user), pk=pk)
        return Response(s.StudySerializer(study, context={"request": request}).data)

    def patch(self, request, pk):
        study = visible_study(request, pk)
        form = s.StudyUpdateSerializer(study, data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        try:
            study_update(study=study, changes=dict(form.validated_data))
        except StudyRuleError as refused:
            raise ValidationError({refused.field: [str(refused)]}) from None
        except IntegrityError:
            raise ValidationError({"name": ["a study with this name already exists"]}) from None
        study = studies_with_batch_counts_visible_to(request.user).get(pk=pk)
        return Response(s.StudySerializer(study, context={"request": request}).data)


# The status each action moves to; which statuses it may start from is the service's rule
# (annotation.studies.services.STATUS_ALLOWED_FROM), the same for every entry point.
STATUS_ACTIONS = {"open": Study.Status.OPEN, "pause": Study.Status.PAUSED,
                  "close": Study.Status.CLOSED}


class StudyStatusView(APIView):
    """Open, pause or close a study (the `action` comes from the URL)."""

    action = ""

    def post(self, request, pk):
        study = visible_study(request, pk)
        try:
            study_set_status(study=study, status=STATUS_ACTIONS[self.action])
        except StudyRuleError as refused:
            return Response({"detail": str(refused)}, status=status.HTTP_409_CONFLICT)
        study = studies_with_batch_counts_visible_to(request.user).get(pk=pk)
        return Response(s.StudySerializer(study, context={"request": request}).data)


def _status_view(action: str, summary: str, description: str):
    view = type(f"Study{action.title()}View", (StudyStatusView,), {"action": action})
    return extend_schema(
        tags=["studies"], summary=summary, description=description, request=None,
        responses={200: s.StudySerializer, 404: NOT_FOUND,
                   409: OpenApiResponse(ErrorSerializer, description="Not from this status.")},
    )(view)


StudyOpenView = _status_view(
    "open", "Open a study", "New participants may enter. From draft, paused or closed.")
StudyPauseView = _status_view(
    "pause", "Pause a study", "No new participants; sessions in progress go on. From open only.")
StudyCloseView = _status_view(
    "close", "Close a study", "No new participants; sessions in progress go on until they end.")


@extend_schema(tags=["studies"], summary="A study's progress",
               responses={200: s.StudyProgressSerializer, 404: NOT_FOUND})
class StudyProgressView(APIView):
    """Batch fill, participants by status and the median time per item, as on the study page."""

    def get(self, request, pk):
        study = visible_study(request, pk)
        progress = study_progress(study)
        statuses = [value for value, _ in Participant.Status.choices]
        return Response(s.StudyProgressSerializer({
            "status": study.status,
            "slots": progress["slots"],
            "completed": progress["completed"],
            "active": progress["active"],
            "judgments": progress["judgments"],
            "median_seconds_per_item": progress["median_seconds_per_item"],
            # study_progress lists (label, count) in the order of the choices.
            "participants_by_status": {value: count for value, (_, count)
                                       in zip(statuses, progress["by_status"])},
            "batches": progress["batches"],
        }).data)


# --- Sharing --------------------------------------------------------------------------------

def _collaborators(study):
    return s.UserSerializer(study.collaborators.order_by("username"), many=True).data


@extend_schema_view(
    get=extend_schema(summary="A study's collaborators", responses={200: s.UserSerializer(many=True),
                                                                     404: NOT_FOUND}),
    post=extend_schema(
        summary="Share a study with a researcher",
        description="Owner (or superuser) only. Collaborators see and manage the study (status, "
                    "participants, exports, analyses) but cannot change its sharing.",
        request=s.CollaboratorAddSerializer,
        responses={200: s.UserSerializer(many=True), 400: BAD_REQUEST,
                   403: OpenApiResponse(ErrorSerializer, description="Not the study's owner."),
                   404: NOT_FOUND},
    ),
)
@extend_schema(tags=["studies"])
class StudyCollaboratorsView(APIView):
    permission_classes = [*APIView.permission_classes, MayChangeSharing]

    def get(self, request, pk):
        study = visible_study(request, pk)
        return Response(_collaborators(study))

    def post(self, request, pk):
        study = visible_study(request, pk)
        self.check_object_permissions(request, study)
        form = s.CollaboratorAddSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        user = form.validated_data["username"]
        if user.pk == study.owner_id:
            raise ValidationError({"username": [f"'{user.username}' owns this study already"]})
        study.collaborators.add(user)
        return Response(_collaborators(study))


@extend_schema(
    tags=["studies"], summary="Stop sharing a study with a researcher",
    description="Owner (or superuser) only. Removing someone who is not a collaborator is a 404.",
    request=None,
    responses={200: s.UserSerializer(many=True),
               403: OpenApiResponse(ErrorSerializer, description="Not the study's owner."),
               404: NOT_FOUND},
)
class StudyCollaboratorDetailView(APIView):
    permission_classes = [*APIView.permission_classes, MayChangeSharing]

    def delete(self, request, pk, username):
        study = visible_study(request, pk)
        self.check_object_permissions(request, study)
        user = study.collaborators.filter(username=username).first()
        if user is None:
            raise NotFound(f"'{username}' is not a collaborator of this study")
        study.collaborators.remove(user)
        return Response(_collaborators(study))


# --- Participants ---------------------------------------------------------------------------

@extend_schema(tags=["participants"], summary="A study's participants",
               parameters=[s.ParticipantQuery], responses={200: s.ParticipantSerializer(many=True),
                                                         400: BAD_REQUEST, 404: NOT_FOUND})
class ParticipantListView(generics.ListAPIView):
    """Participants in the order they entered, with their status and answers so far."""

    serializer_class = s.ParticipantSerializer
    pagination_class = Pagination

    def get_queryset(self):
        study = visible_study(self.request, self.kwargs["pk"])
        query = _parse_query(s.ParticipantQuery, self.request)
        participants = participants_with_answer_counts(study)
        if "status" in query:
            participants = participants.filter(status__in=query["status"])
        if "external_id" in query:
            participants = participants.filter(external_id=query["external_id"])
        if "batch" in query:
            participants = participants.filter(batch__index=query["batch"])
        return participants.order_by("created", "id")


@extend_schema(tags=["participants"], summary="A participant",
               responses={200: s.ParticipantSerializer, 404: NOT_FOUND})
class ParticipantDetailView(APIView):
    def get(self, request, pk, participant_pk):
        study = visible_study(request, pk)
        participant = get_object_or_404(participants_with_answer_counts(study), pk=participant_pk)
        return Response(s.ParticipantSerializer(participant).data)


MARK_DESCRIPTION = (
    "Marks participants returned, timed out, rejected or excluded: their batch slot reopens "
    "for a new rater and their judgments leave the analysis (they are kept, flagged). "
    "Marking a participant with the status they have is a no-op.")


@extend_schema(tags=["participants"], summary="Mark a participant",
               description=MARK_DESCRIPTION, request=s.ParticipantMarkSerializer,
               responses={200: s.ParticipantSerializer, 400: BAD_REQUEST, 404: NOT_FOUND})
class ParticipantMarkView(APIView):
    def post(self, request, pk, participant_pk):
        study = visible_study(request, pk)
        participant = get_object_or_404(study.participants, pk=participant_pk)
        form = s.ParticipantMarkSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        participant_mark(participant=participant, **form.validated_data)
        return Response(s.ParticipantSerializer(participants_with_answer_counts(study).get(pk=participant.pk)).data)


@extend_schema(tags=["participants"], summary="Mark participants by their platform ids",
               description=MARK_DESCRIPTION + " All or nothing: if any id is not a participant "
                           "of the study, nothing changes and the 400 names the missing ids. "
                           "Paste Prolific's list of returned submissions here.",
               request=s.ParticipantBulkMarkSerializer,
               responses={200: s.ParticipantBulkMarkResultSerializer, 400: BAD_REQUEST,
                          404: NOT_FOUND})
class ParticipantBulkMarkView(APIView):
    @extend_schema(operation_id="studies_participants_bulk_mark")
    def post(self, request, pk):
        study = visible_study(request, pk)
        form = s.ParticipantBulkMarkSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        external_ids = list(dict.fromkeys(form.validated_data["external_ids"]))
        found = {p.external_id: p for p in study.participants.filter(external_id__in=external_ids)}
        missing = [pid for pid in external_ids if pid not in found]
        if missing:
            raise ValidationError({"external_ids": [
                f"study '{study.name}' has no participant(s) {', '.join(missing)}; nothing was changed"]})
        with transaction.atomic():
            for external_id in external_ids:
                participant_mark(participant=found[external_id], status=form.validated_data["status"],
                                 note=form.validated_data["note"])
        marked = participants_with_answer_counts(study).filter(external_id__in=external_ids).order_by("created", "id")
        return Response(s.ParticipantBulkMarkResultSerializer({
            "status": form.validated_data["status"], "marked": len(external_ids),
            "participants": marked}).data)


# --- Judgments ------------------------------------------------------------------------------

@extend_schema(tags=["judgments"], summary="List judgments",
               parameters=[s.JudgmentQuery],
               responses={200: s.JudgmentSerializer(many=True), 400: BAD_REQUEST,
                          404: OpenApiResponse(ErrorSerializer,
                                               description="`study` is not one you may see.")})
class JudgmentListView(generics.ListAPIView):
    """Participants' current answers (earlier answers changed with "Previous" are kept but not
    listed), in the order of study, participant and position. For the whole table in one file,
    use the study's export."""

    serializer_class = s.JudgmentSerializer
    pagination_class = Pagination

    def get_queryset(self):
        query = _parse_query(s.JudgmentQuery, self.request)
        judgments = judgments_visible_to(self.request.user)
        if "study" in query:
            visible_study(self.request, query["study"])
            judgments = judgments.filter(participant__study_id=query["study"])
        judgments = filter_judgments(judgments, query)
        if "participant" in query:
            judgments = judgments.filter(participant__external_id=query["participant"])
        return judgments.order_by("participant__study_id", "participant_id", "position", "id")


@extend_schema(tags=["judgments"], summary="A judgment",
               responses={200: s.JudgmentSerializer, 404: NOT_FOUND})
class JudgmentDetailView(APIView):
    def get(self, request, pk):
        judgment = get_object_or_404(judgments_visible_to(request.user), pk=pk)
        return Response(s.JudgmentSerializer(judgment).data)



# --- Exports --------------------------------------------------------------------------------

def _export_filters(filters: dict) -> dict:
    """`s.JudgmentFilters` in the keyword form of `annotation.dataio.judgment_table`."""
    return {
        "framing": filters.get("framing"),
        "truth": [TRUTH_WORDS[word] for word in filters["truth"]] if "truth" in filters else None,
        "participant_status": filters.get("participant_status"),
        "include_excluded": filters["include_excluded"],
        "include_attention_checks": filters["include_attention_checks"],
    }


class ExportFileRenderer(BaseRenderer):
    """Lets content negotiation choose an export format (`Accept: text/csv`,
    `?format=parquet`); the export's bytes are streamed by the view, and only an error body
    (a dict) is ever rendered here, as JSON."""

    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else JSONRenderer().render(data)


def _export_renderer(fmt: str):
    media_type = CONTENT_TYPES[fmt].split(";")[0]
    return type(f"{fmt.title()}ExportRenderer", (ExportFileRenderer,), {"media_type": media_type,
                                                                         "format": fmt})


EXPORT_RENDERERS = [JSONRenderer, *(_export_renderer(fmt) for fmt in EXPORT_FORMATS)]


class ExportFileView(APIView):
    """An endpoint that answers a file, and JSON whenever it answers an error."""

    renderer_classes = EXPORT_RENDERERS

    def initial(self, request, *args, **kwargs):
        # DRF's content negotiation takes `?format=` (empty) for no format at all; the schema
        # offers only the renderers' names, so an empty value is refused, as an unknown one is.
        if request.query_params.get("format") == "":
            formats = ", ".join(renderer.format for renderer in self.renderer_classes)
            raise ValidationError({"format": [f"give one of {formats}, or leave the parameter out"]})
        super().initial(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


EXPORT_DESCRIPTION = (
    "The tidy judgment table ([Method, section 2.4](/method/#section-2-4)), one row per "
    "(participant, item): FrameRef's ten "
    "columns (`DataPoint_ID, Task_Group_ID, text, Annotator_ID, full_claim_id, framing_type, "
    "true_label, accurate_response, confidence_response, familiarity_response`) with exactly "
    "those names, then the platform's own (study, batch, position, timestamps, response time, "
    "attention check, participant status, `excluded`, ...). Excluded participants are kept and "
    "flagged unless `include_excluded=false`.")


@extend_schema(
    tags=["exports"], summary="Download a study's judgments (streamed)",
    description=EXPORT_DESCRIPTION + " Streamed with constant memory, whatever the study's size; "
                "for very large studies a background export (POST .../exports/) gives a file to "
                "download later.",
    parameters=[s.ExportQuery],
    responses={(200, "text/csv"): OpenApiTypes.BINARY,
               (200, "application/jsonl"): OpenApiTypes.BINARY,
               (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY,
               400: BAD_REQUEST, 404: NOT_FOUND},
)
class JudgmentExportView(ExportFileView):
    def get(self, request, pk):
        study = visible_study(request, pk)
        query = _parse_query(s.ExportQuery, request)
        negotiated = getattr(request.accepted_renderer, "format", "")
        fmt = query.get("file_format") or (negotiated if negotiated in EXPORT_FORMATS else "csv")
        chunks = export_chunks(study=study, fmt=fmt, raw_csv=query["raw_csv"],
                               **_export_filters(query))
        response = StreamingHttpResponse(chunks, content_type=CONTENT_TYPES[fmt])
        response["Content-Disposition"] = f'attachment; filename="{export_file_name(study, fmt)}"'
        return response


@extend_schema_view(
    get=extend_schema(summary="A study's background exports",
                      responses={200: s.DataExportSerializer(many=True), 400: BAD_REQUEST,
                                 404: NOT_FOUND}),
    post=extend_schema(
        summary="Start a background export",
        description=EXPORT_DESCRIPTION + " A worker writes the file; the answer (202) is the job, "
                    "whose `url` reports progress and, once it succeeded, a `download_url`.",
        request=s.DataExportCreateSerializer,
        responses={202: s.DataExportSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    ),
)
@extend_schema(tags=["exports"])
class StudyExportListCreateView(generics.ListAPIView):
    serializer_class = s.DataExportSerializer
    pagination_class = Pagination

    def get_queryset(self):
        study = visible_study(self.request, self.kwargs["pk"])
        return study.exports.order_by("-created", "-id")

    def post(self, request, pk):
        study = visible_study(request, pk)
        form = s.DataExportCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            job = data_export_create(study=study, fmt=form.validated_data["file_format"],
                                     options=_export_filters(form.validated_data), user=request.user,
                                     raw_csv=form.validated_data["raw_csv"])
        except ValueError as exc:
            raise ValidationError({"non_field_errors": [str(exc)]}) from None
        job.refresh_from_db()
        body = s.DataExportSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


@extend_schema(tags=["exports"], summary="Status of a background export",
               responses={200: s.DataExportSerializer, 404: NOT_FOUND})
class DataExportDetailView(APIView):
    """queued, running (rows written of the total), succeeded (with `download_url`) or failed
    (with the error)."""

    def get(self, request, pk):
        job = get_object_or_404(data_exports_visible_to(request.user), pk=pk)
        return Response(s.DataExportSerializer(job, context={"request": request}).data)


@extend_schema(tags=["exports"], summary="Download a finished export",
               description="The file of a succeeded export (404 once it was deleted from the "
                           "artifact store).",
               responses={(200, "text/csv"): OpenApiTypes.BINARY,
                          (200, "application/jsonl"): OpenApiTypes.BINARY,
                          (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY,
                          400: BAD_REQUEST, 404: NOT_FOUND,
                          409: OpenApiResponse(ErrorSerializer, description="Not finished.")})
class DataExportDownloadView(ExportFileView):
    def get(self, request, pk):
        job = get_object_or_404(data_exports_visible_to(request.user), pk=pk)
        if job.status != DataExport.Status.SUCCEEDED or not job.file:
            return Response({"detail": f"the export is {job.status}, not ready to download"},
                            status=status.HTTP_409_CONFLICT)
        path = data_export_path(job)
        if not path.is_file():
            raise Http404("the export's file is no longer in the artifact store")
        return FileResponse(open(path, "rb"), as_attachment=True,
                            filename=export_file_name(job.study, job.format),
                            content_type=CONTENT_TYPES[job.format])


# --- Analysis -------------------------------------------------------------------------------

ANALYSIS_RESULT = inline_serializer("StudyAnalysis", {
    "options": serializers.DictField(help_text="The options used, defaults filled in."),
    "counts": serializers.DictField(help_text="Judgments, participants and items before and "
                                              "after the exclusions."),
    "exclusions": serializers.ListField(
        child=serializers.DictField(), help_text="Each rule with the participants and judgments "
                                                 "it flagged and removed."),
    "framings": serializers.ListField(
        child=serializers.DictField(),
        help_text="Per framing (and `all`): n, accuracy overall and on true and false claims, "
                  "acceptance, false acceptance and false rejection rates, mean confidence and "
                  "familiarity, each with a confidence interval (by default two-way cluster-robust: "
                  "clustered by participant and by base claim; see the `interval` option), and "
                  "the difference from the original wording with its interval."),
    "chi_square": serializers.DictField(help_text="Descriptive (assumes independent judgments): framing "
                                                  "x response tests, for false and for true claims."),
    "framing_tests": serializers.DictField(
        help_text="The primary test: per framing, the false-acceptance difference from the original "
                  "wording with a p-value from permutations of framing labels within base claims, "
                  "Holm-adjusted across framings."),
    "familiarity_tests": serializers.DictField(
        help_text="Descriptive (assumes independent judgments): false acceptance at the chosen "
                  "familiarity levels, binomial test against 0.5."),
    "agreement": serializers.DictField(help_text="Krippendorff's alpha on acceptance."),
    "mixed_model": serializers.DictField(help_text="The mixed-effects logistic regression."),
    "confidence_distribution": serializers.ListField(child=serializers.DictField()),
    "notes": serializers.ListField(child=serializers.CharField()),
})


@extend_schema(
    tags=["analysis"], summary="A study's analysis",
    description="The statistics of a study report ([Method, section 2.5](/method/#section-2-5)) "
                "on the study's judgments, with "
                "exclusions applied by default and listed with their counts. The same numbers "
                "as the study report page and `manage.py analyze_study`. A bad parameter is a "
                "400 naming it and its value.",
    parameters=[s.AnalysisQuery],
    responses={200: ANALYSIS_RESULT, 400: OpenApiResponse(ErrorSerializer), 404: NOT_FOUND},
)
class StudyAnalysisView(APIView):
    def get(self, request, pk):
        # pandas and scipy load with the first analysis, not with the API.
        from annotation.analysis.study import report_analysis

        study = visible_study(request, pk)
        try:
            options = AnalysisOptions.from_params(request.query_params)
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(report_analysis(study=study, options=options).to_dict())


MODEL_FIT = inline_serializer("StudyModelFit", {
    "mixed_model": serializers.DictField(
        help_text="The model's entry in the analysis: `fitted` true with its terms, implied rates "
                  "and sampling diagnostics, or false with `reason` (not fitted yet, being "
                  "fitted, failed)."),
    "job": serializers.DictField(allow_null=True, help_text=(
        "The background fit for the study's current data under these options: status "
        "(queued, running, succeeded, failed), progress (0-1), stage, error; null if none was "
        "started.")),
})


@extend_schema(
    tags=["analysis"], summary="A study's mixed model, fitted in the background",
    description="GET: the mixed-effects model of the study's current data under the analysis "
                "options in the query string (the same as for the analysis; only the exclusions, "
                "`min_median_response_ms`, `confidence_level` and `seed` matter), and its "
                "background job. POST (no body, the options in the query string): start the fit; "
                "202 with the queued job, or 200 with the job already queued, running or done. "
                "Poll with GET until `job.status` is `succeeded` (tens of seconds).",
    parameters=[s.AnalysisQuery], request=None,
    responses={200: MODEL_FIT, 202: MODEL_FIT, 400: OpenApiResponse(ErrorSerializer), 404: NOT_FOUND},
)
class StudyAnalysisModelView(APIView):
    def _options(self, request):
        options = AnalysisOptions.from_params(request.query_params)
        return options if options.mixed_model else replace(options, mixed_model=True)

    def _body(self, study, options) -> dict:
        from annotation.analysis.model_fits import model_entry

        entry = model_entry(study=study, options=options)
        return {"mixed_model": entry, "job": entry.pop("job", None)}

    def get(self, request, pk):
        study = visible_study(request, pk)
        try:
            options = self._options(request)
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(self._body(study, options))

    def post(self, request, pk):
        from annotation.analysis.model_fits import model_fit_start

        study = visible_study(request, pk)
        try:
            options = self._options(request)
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        _, created = model_fit_start(study=study, options=options, user=request.user)
        return Response(self._body(study, options),
                        status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@permission_classes([AllowAny])
@throttle_classes([])
def not_found(request, *args, **kwargs):
    return Response({"detail": f"no API endpoint at {request.path}; see /api/docs/"},
                    status=status.HTTP_404_NOT_FOUND)
