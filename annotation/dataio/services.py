"""Services that move a study's data out and in: tidy-table export jobs, Prolific imports.

Small exports stream straight to the browser, the API or the command; a `DataExport` row
tracks a large one that a Celery worker writes to a file under MEDIA_ROOT/exports/, with
its progress, so the page can show a bar and then a download link.
"""
from __future__ import annotations

import secrets
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.dataio.judgment_table import (
    ProgressCallback,
    clean_filters,
    export_file_name,
    export_to_file,
    judgment_export_queryset,
)
from annotation.dataio.prolific_import import (
    ItemAnswers,
    ProlificFileError,
    ProlificResults,
    natural_key,
    read_prolific_results,
)
from annotation.models import (
    Batch,
    BatchItem,
    DataExport,
    Dataset,
    FramedClaim,
    Judgment,
    Participant,
    Study,
)
from core.progress import Throttle
from core.vocabulary import FRAMINGS

EXPORTS_FOLDER = "exports"


def data_export_create(*, study: Study, fmt: str, options: dict | None = None, user=None,
                       raw_csv: bool = False) -> DataExport:
    """Records an export of `study` in `fmt` with `options` (filters) and queues it.

    The options are checked here, so a bad filter is refused at once rather than failing
    in the worker. The job is queued when the transaction commits, so the worker never
    looks for a row that is not there yet.
    """
    options = dict(options or {})
    filters = clean_filters(**options)
    if fmt not in DataExport.Format.values:
        raise ValueError(f"unknown export format '{fmt}'; accepted: {', '.join(DataExport.Format.values)}")
    with transaction.atomic():
        job = DataExport.objects.create(
            study=study,
            format=fmt,
            # `raw_csv` is kept beside the filters only when set, so earlier jobs read the same.
            options={**filters, **({"raw_csv": True} if raw_csv and fmt == "csv" else {})},
            rows_total=judgment_export_queryset(study=study, **filters).count(),
            created_by=user if user is not None and user.is_authenticated else None,
        )
        transaction.on_commit(lambda: data_export_enqueue(data_export=job))
    return job


def data_export_enqueue(*, data_export: DataExport) -> None:
    from annotation.tasks import run_data_export

    result = run_data_export.apply_async(args=[data_export.pk])
    DataExport.objects.filter(pk=data_export.pk, task_id="").update(task_id=result.id or "")


def data_export_path(data_export: DataExport) -> Path:
    """Where the job's file lives: MEDIA_ROOT/exports/<job id>/<file name>."""
    return Path(settings.MEDIA_ROOT) / data_export.file


def data_export_run(*, data_export: DataExport, progress: ProgressCallback | None = None) -> None:
    """Writes the export file and records the outcome on the job row.

    The file appears under its final name only when it is complete (see
    `export_to_file`); rows_written moves as the rows are written.
    """
    job = data_export
    relative = Path(EXPORTS_FOLDER) / str(job.pk) / export_file_name(job.study, job.format)
    written = 0
    throttle = Throttle(wait_first=True)

    def report(rows: int) -> None:
        nonlocal written
        written += rows
        if progress is not None:
            progress(rows)
        if throttle.due():
            DataExport.objects.filter(pk=job.pk).update(rows_written=written)

    try:
        rows = export_to_file(study=job.study, fmt=job.format,
                              path=Path(settings.MEDIA_ROOT) / relative, progress=report,
                              raw_csv=bool(job.options.get("raw_csv")),
                              **clean_filters(**{k: v for k, v in job.options.items() if k != "raw_csv"}))
    except Exception as exc:
        DataExport.objects.filter(pk=job.pk).update(
            status=DataExport.Status.FAILED, error=f"{type(exc).__name__}: {exc}",
            rows_written=written, finished=timezone.now(),
        )
        raise
    DataExport.objects.filter(pk=job.pk).update(
        status=DataExport.Status.SUCCEEDED, file=str(relative), rows_written=rows,
        rows_total=rows, finished=timezone.now(),
    )


# --- Prolific results -------------------------------------------------------------------

@dataclass(frozen=True)
class ProlificImportSummary:
    study: Study
    rows: int
    data_points: int
    task_groups: int
    participants: int
    completed: int
    excluded: int
    judgments: int
    # participants who answered in more than one task group (took two batches): imported,
    # their design violations left to the analysis's `design-violations` exclusion rule
    several_groups: int = 0


def _match_claims(results: ProlificResults, dataset: Dataset) -> dict[str, int]:
    """The framed claim of each data point, by exact text (spaces at either end ignored)."""
    texts = sorted({point.text for point in results.data_points.values()})
    found: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for start in range(0, len(texts), 500):
        rows = (FramedClaim.objects.filter(base_claim__dataset=dataset, text__in=texts[start:start + 500])
                .values_list("text", "pk", "base_claim__external_id", "framing"))
        for text, pk, base_id, framing in rows:
            found[text].append((pk, f"{base_id}:{framing}"))
    matched = {}
    for point in results.data_points.values():
        claims = found.get(point.text, [])
        if not claims:
            raise ProlificFileError(path=results.path, line=point.line, field="Claim", value=point.text,
                                    problem=f"no framed claim of dataset '{dataset.name}' has this text",
                                    accepted="the exact text of one framed claim of the dataset")
        if len(claims) > 1:
            ids = ", ".join(sorted(claim_id for _, claim_id in claims))
            raise ProlificFileError(path=results.path, line=point.line, field="Claim", value=point.text,
                                    problem=f"{len(claims)} framed claims of dataset '{dataset.name}' "
                                            f"have this text ({ids}); cannot tell which was shown")
        matched[point.id] = claims[0][0]
    return matched


def prolific_results_import(
    *,
    path: str | Path,
    dataset: Dataset,
    study_name: str,
    exclude: Sequence[str] = (),
    exclude_status: str = Participant.Status.RETURNED,
    owner=None,
) -> ProlificImportSummary:
    """Creates a closed study from Prolific's wide annotation export, as if it had run here.

    Each task group becomes a batch and each data point an item of its batch (in the
    natural order of the ids); each annotator a Prolific participant of their task group's
    batch, completed if they answered all its items (timed out otherwise), or
    `exclude_status` if listed in `exclude`; each (annotator, data point) a judgment.

    An annotator who answered in several task groups (took two batches) is imported with
    every answer: one participant, assigned to the batch of the group they answered most
    of, completed if they answered every item of every group they took part in, with a
    status note naming the groups. Judgments of an item outside their batch break the
    design only where they saw two framings of one base claim; those are flagged by the
    analysis's `design-violations` exclusion rule (on by default, counted in the report),
    which the researcher can switch off. The
    export has one time per answer and none for when an item was shown, so `answered_at`
    is the item's last answer, `shown_at` the annotator's previous answer (their first
    answer, for their first item), the order of the items is the order of those times, and
    no response time is recorded.

    All or nothing: any `ProlificFileError` (or a study name in use, an unknown
    `exclude` id) leaves the database as it was.
    """
    if exclude_status not in Participant.EXCLUDED_FROM_ANALYSIS:
        raise ValueError(f"cannot import excluded participants as '{exclude_status}'; accepted: "
                         f"{', '.join(Participant.EXCLUDED_FROM_ANALYSIS)}")
    if Study.objects.filter(name=study_name).exists():
        raise ValueError(f"a study named '{study_name}' already exists; choose another name")
    results = read_prolific_results(path)
    unknown = sorted(set(exclude) - set(results.annotator_groups))
    if unknown:
        raise ValueError(f"--exclude names annotator(s) not in {results.path}: {', '.join(unknown)}")
    claims = _match_claims(results, dataset)
    framed = dict(FramedClaim.objects.filter(pk__in=set(claims.values()))
                  .values_list("pk", "base_claim__external_id"))
    framing_of = dict(FramedClaim.objects.filter(pk__in=set(claims.values())).values_list("pk", "framing"))
    per_annotator: dict[str, list[ItemAnswers]] = defaultdict(list)
    for answer in results.answers:
        per_annotator[answer.annotator].append(answer)
    group_size = {group: len(results.data_points_of(group)) for group in results.task_groups}
    group_raters = defaultdict(int)
    task_groups_of = results.annotator_task_groups or {a: [g] for a, g in results.annotator_groups.items()}
    for groups in task_groups_of.values():
        for group in groups:
            group_raters[group] += 1
    answered_per_group = defaultdict(lambda: defaultdict(int))
    for answer in results.answers:
        answered_per_group[answer.annotator][results.data_points[answer.data_point].task_group] += 1
    excluded = set(exclude)
    now = timezone.now()
    with transaction.atomic():
        used = {framing_of[pk] for pk in claims.values()}
        study = Study.objects.create(
            dataset=dataset,
            name=study_name,
            owner=owner,
            status=Study.Status.CLOSED,
            base_claim_count=len(set(framed.values())),
            base_claim_ids=sorted(set(framed.values())),
            framings=[framing for framing in FRAMINGS if framing in used],
            batch_size=max(group_size.values()),
            raters_per_batch=max(1, max(group_raters.values(), default=1)),
            seed=0,
            completion_code="",
        )
        status_of = {}
        for annotator, items in per_annotator.items():
            group = results.annotator_groups[annotator]
            if annotator in excluded:
                status_of[annotator] = exclude_status
            elif all(answered_per_group[annotator][g] == group_size[g] for g in task_groups_of[annotator]):
                status_of[annotator] = Participant.Status.COMPLETED
            else:
                status_of[annotator] = Participant.Status.TIMED_OUT
        batches = {}
        for index, group in enumerate(results.task_groups):
            completed = sum(1 for a, g in results.annotator_groups.items()
                            if g == group and status_of[a] == Participant.Status.COMPLETED)
            batches[group] = Batch.objects.create(study=study, index=index, quota=group_raters[group],
                                                  completed_count=completed)
        items = []
        for group in results.task_groups:
            for position, point in enumerate(results.data_points_of(group), start=1):
                items.append(BatchItem(batch=batches[group], position=position,
                                       framed_claim_id=claims[point.id]))
        BatchItem.objects.bulk_create(items, batch_size=2_000)
        item_of = {point_id: item for point_id, item in zip(
            [p.id for g in results.task_groups for p in results.data_points_of(g)], items)}
        participants = []
        for annotator in sorted(per_annotator, key=natural_key):
            answered = per_annotator[annotator]
            status = status_of[annotator]
            group = results.annotator_groups[annotator]
            note = ""
            groups = task_groups_of[annotator]
            if status == Participant.Status.TIMED_OUT:
                note = "; ".join(
                    f"answered {answered_per_group[annotator][g]} of the {group_size[g]} items of task group "
                    f"{g}" for g in groups if answered_per_group[annotator][g] < group_size[g]) + " in the Prolific export"
            elif annotator in excluded:
                note = "excluded at import (--exclude)"
            if len(groups) > 1:
                note = "; ".join(filter(None, [note, (
                    f"answered in task groups {' and '.join(groups)} of the Prolific export (took more "
                    f"than one batch; assigned to the batch of task group {group}); judgments of a base "
                    "claim seen in two framings are left out by the design-violations exclusion rule")]))
            participants.append(Participant(
                study=study, external_id=annotator, source=Participant.Source.PROLIFIC,
                token=secrets.token_urlsafe(24), batch=batches[group], status=status,
                consented_at=min(a.first_answered for a in answered),
                completed_at=(max(a.last_answered for a in answered)
                              if status == Participant.Status.COMPLETED else None),
                status_changed_at=now if note else None, status_note=note,
            ))
        Participant.objects.bulk_create(participants, batch_size=2_000)
        judgments = []
        for participant in participants:
            answered = sorted(per_annotator[participant.external_id],
                              key=lambda a: (a.last_answered, item_of[a.data_point].position))
            previous = None
            for order, answer in enumerate(answered, start=1):
                first = answer.first_answered
                judgments.append(Judgment(
                    participant=participant, item=item_of[answer.data_point], accept=answer.accept,
                    confidence=answer.confidence, familiarity=answer.familiarity, position=order,
                    shown_at=previous if previous is not None and previous <= first else first,
                    answered_at=answer.last_answered, response_time_ms=None, attention_passed=None,
                    submission_key=uuid.uuid4(),
                ))
                previous = answer.last_answered
            # The last time Prolific saw them, as a session here records it.
            Participant.objects.filter(pk=participant.pk).update(last_seen_at=previous)
        Judgment.objects.bulk_create(judgments, batch_size=2_000)
    return ProlificImportSummary(
        study=study, rows=results.rows, data_points=len(results.data_points),
        task_groups=len(results.task_groups), participants=len(participants),
        completed=sum(1 for s in status_of.values() if s == Participant.Status.COMPLETED),
        excluded=sum(1 for s in status_of.values() if s in Participant.EXCLUDED_FROM_ANALYSIS),
        judgments=len(judgments),
        several_groups=len(results.in_several_groups()),
    )
