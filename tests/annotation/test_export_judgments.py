"""The tidy judgment table: its columns, round trips through CSV, JSON Lines and Parquet,
streaming in chunks, the command, the background job and the export pages' permissions."""
import io
import random
import uuid
from datetime import timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

import annotation.dataio.judgment_table as judgment_export
from annotation.dataio.judgment_table import (
    COLUMNS,
    CONTENT_TYPES,
    EXPORT_FORMATS,
    PLATFORM_COLUMNS,
    TIDY_COLUMNS,
    export_chunks,
    export_file_name,
    export_to_file,
    judgment_export_queryset,
    judgment_table,
    judgment_table_rows,
    read_judgment_table,
)
from annotation.dataio.services import data_export_create, data_export_path
from annotation.models import Batch, DataExport, Dataset, Judgment, Participant, Study
from annotation.studies.assignment import (
    participant_consent,
    participant_enter,
    participant_mark,
)
from annotation.studies.judgments import Answer, judgment_record
from annotation.studies.selectors import batch_items
from annotation.studies.services import study_create
from annotation.tasks import run_data_export

pytestmark = pytest.mark.django_db

FRAMEREF_COLUMNS = ["DataPoint_ID", "Task_Group_ID", "text", "Annotator_ID", "full_claim_id",
                    "framing_type", "true_label", "accurate_response", "confidence_response",
                    "familiarity_response"]


def take_session(study, pid, rng, *, answers=None, source="prolific", revise=None):
    """A participant's session through the real services; answers `answers` items (all if
    None); after the item at `revise` + 1, goes back and changes the answer to `revise`."""
    participant = participant_enter(study=study, external_id=pid, source=source,
                                    platform_study_id="STUDY1", platform_session_id=f"SES-{pid}")
    participant = participant_consent(participant=participant)
    items = batch_items(participant.batch_id)
    for position in sorted(items)[:answers]:
        item = items[position]
        shown = timezone.now() - timedelta(seconds=rng.randint(2, 30))
        judgment_record(participant=participant, item=item, answer=Answer(
            accept=rng.random() < 0.6, confidence=rng.randint(1, 5), familiarity=rng.randint(1, 5),
            shown_at=shown, submission_key=uuid.uuid4(),
            response_time_ms=rng.choice([None, rng.randint(800, 9000)])))
        if revise is not None and position == revise + 1:
            judgment_record(participant=participant, item=items[revise], answer=Answer(
                accept=False, confidence=5, familiarity=1, shown_at=timezone.now(),
                submission_key=uuid.uuid4()))
    participant.refresh_from_db()
    return participant


@pytest.fixture
def study():
    """A small study run through the platform's own services: six raters, one attention
    check per batch, one changed answer, one rater who returned half-way."""
    call_command("load_demo", no_user=True)
    study = study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name="Export pilot",
                         base_claims=8, batch_size=6, raters_per_batch=2, seed=3,
                         status=Study.Status.OPEN,
                         attention_checks=[("The Sun is a star.", True, 3)])
    rng = random.Random(11)
    for pid in ("P1", "P2", "P3", "P4", "P5"):
        take_session(study, pid, rng, revise=2 if pid == "P1" else None)
    quitter = take_session(study, "P6", rng, answers=3)
    participant_mark(participant=quitter, status=Participant.Status.RETURNED, note="returned on Prolific")
    return study


def expected_rows(study, include_checks=False):
    """The table computed straight from the models, independently of the export's query."""
    rows = []
    judgments = (Judgment.objects.filter(participant__study=study)
                 .select_related("participant", "item__batch", "item__framed_claim__base_claim",
                                 "item__attention_check")
                 .order_by("participant_id", "position"))
    for j in judgments:
        claim = j.item.framed_claim
        if claim is None and not include_checks:
            continue
        rows.append({
            "DataPoint_ID": j.item.pk,
            "Task_Group_ID": j.item.batch.index + 1,
            "text": j.item.text,
            "Annotator_ID": j.participant.external_id,
            "full_claim_id": claim.claim_id if claim else None,
            "framing_type": claim.framing if claim else None,
            "true_label": (claim.base_claim.true_label if claim else
                           ("SUPPORTS" if j.item.attention_check.expected_accept else "REFUTES")),
            "accurate_response": "SUPPORTS" if j.accept else "REFUTES",
            "confidence_response": j.confidence,
            "familiarity_response": j.familiarity,
            "participant_status": j.participant.status,
            "excluded": j.participant.status in Participant.EXCLUDED_FROM_ANALYSIS,
            "shown_at": j.shown_at,
            "answered_at": j.answered_at,
            "response_time_ms": j.response_time_ms,
            "revisions": j.revisions,
        })
    return rows


def test_file_names_are_plain_ascii(study):
    study.name = "Étude n°2: pilot / wave 1"
    assert export_file_name(study, "parquet") == f"judgments-tude-n-2-pilot-wave-1-{study.pk}.parquet"
    with pytest.raises(ValueError, match="unknown export format 'xlsx'"):
        export_file_name(study, "xlsx")


def test_column_names_are_frameref_then_the_platform():
    assert list(TIDY_COLUMNS) == FRAMEREF_COLUMNS
    assert COLUMNS == TIDY_COLUMNS + PLATFORM_COLUMNS
    for needed in ("study", "batch", "position", "shown_at", "answered_at", "response_time_ms",
                   "attention_passed", "participant_status", "excluded"):
        assert needed in PLATFORM_COLUMNS
    assert EXPORT_FORMATS == ("csv", "jsonl", "parquet")
    assert set(CONTENT_TYPES) == set(EXPORT_FORMATS)


def test_the_table_holds_what_the_database_holds(study):
    table = judgment_table(study=study)
    expected = expected_rows(study)
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == len(expected) == 5 * 6 + 2  # P6 answered 3 items, one an attention check
    for column in ("DataPoint_ID", "Task_Group_ID", "text", "Annotator_ID", "full_claim_id",
                   "framing_type", "true_label", "accurate_response", "confidence_response",
                   "familiarity_response", "participant_status", "excluded", "revisions"):
        assert table[column].tolist() == [row[column] for row in expected], column
    assert table["shown_at"].tolist() == [pd.Timestamp(row["shown_at"]) for row in expected]
    assert table["response_time_ms"].astype(object).where(table["response_time_ms"].notna(), None).tolist() \
        == [row["response_time_ms"] for row in expected]
    assert table["revisions"].sum() == 1
    assert set(table.loc[table["Annotator_ID"] == "P6", "excluded"]) == {True}
    assert not table["is_attention_check"].any()
    # Each data point is one item of one batch, shared by the raters of that batch.
    per_item = table.groupby("DataPoint_ID")["Task_Group_ID"].nunique()
    assert (per_item == 1).all()
    assert table.dtypes["DataPoint_ID"] == "int64" and table.dtypes["confidence_response"] == "int64"
    assert str(table.dtypes["shown_at"]) == "datetime64[us, UTC]"


def test_attention_checks_on_request(study):
    table = judgment_table(study=study, include_attention_checks=True)
    checks = table[table["is_attention_check"]]
    assert len(checks) == 6  # one per participant: P6 reached position 3
    assert checks["full_claim_id"].isna().all() and checks["framing_type"].isna().all()
    assert set(checks["true_label"]) == {"SUPPORTS"} and set(checks["text"]) == {"The Sun is a star."}
    expected = [row["accurate_response"] == "SUPPORTS"
                for row in expected_rows(study, include_checks=True) if row["full_claim_id"] is None]
    assert checks["attention_passed"].tolist() == expected
    assert table[~table["is_attention_check"]]["attention_passed"].isna().all()


def test_filters(study):
    full = judgment_table(study=study)
    false_only = judgment_table(study=study, truth="false")
    assert len(false_only) == (full["true_label"] == "REFUTES").sum() > 0
    assert set(false_only["true_label"]) == {"REFUTES"}
    two = judgment_table(study=study, framing=["authoritative", "consensus"])
    assert set(two["framing_type"]) == {"authoritative", "consensus"}
    assert len(two) == full["framing_type"].isin(["authoritative", "consensus"]).sum()
    kept = judgment_table(study=study, include_excluded=False)
    assert "P6" not in set(kept["Annotator_ID"]) and len(kept) == len(full) - 2
    returned = judgment_table(study=study, participant_status="returned")
    assert set(returned["Annotator_ID"]) == {"P6"}
    with pytest.raises(ValueError, match="unknown framing 'loud'; accepted: original"):
        judgment_table(study=study, framing="loud")
    with pytest.raises(ValueError, match="unknown participant status"):
        judgment_export_queryset(study=study, participant_status="gone")


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_round_trip_through_each_format(study, tmp_path, fmt):
    path = tmp_path / export_file_name(study, fmt)
    rows = export_to_file(study=study, fmt=fmt, path=path, include_attention_checks=True)
    assert rows == Judgment.objects.filter(participant__study=study).count()
    table = judgment_table(study=study, include_attention_checks=True)
    back = read_judgment_table(path)
    assert list(back.columns) == list(COLUMNS)
    pd.testing.assert_frame_equal(back, table)
    # And as a FrameRef notebook reads it, without any of the platform's help.
    plain = {"csv": lambda p: pd.read_csv(p), "jsonl": lambda p: pd.read_json(p, lines=True),
             "parquet": pd.read_parquet}[fmt](path)
    assert list(plain.columns[:10]) == FRAMEREF_COLUMNS
    assert plain["confidence_response"].dtype == "int64"
    assert plain["DataPoint_ID"].dtype == "int64"
    assert set(plain["accurate_response"]) <= {"SUPPORTS", "REFUTES"}
    false_claims = plain[plain["true_label"] == "REFUTES"]
    assert (false_claims["accurate_response"] == "SUPPORTS").mean() == pytest.approx(
        ((table["true_label"] == "REFUTES") & (table["accurate_response"] == "SUPPORTS")).sum()
        / (table["true_label"] == "REFUTES").sum())


def test_parquet_has_a_row_group_per_chunk(study, tmp_path):
    path = tmp_path / "j.parquet"
    rows = export_to_file(study=study, fmt="parquet", path=path, chunk_size=10)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == rows == 32
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [10, 10, 10, 2]


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_an_empty_export_is_still_a_readable_file(study, tmp_path, fmt):
    path = tmp_path / f"empty.{fmt}"
    assert export_to_file(study=study, fmt=fmt, path=path, participant_status="rejected") == 0
    back = read_judgment_table(path)
    assert list(back.columns) == list(COLUMNS) and len(back) == 0


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_chunks_go_out_before_the_rows_are_all_read(study, monkeypatch, fmt):
    """Constant memory by design: the first chunk is handed on after `chunk_size` rows."""
    consumed = []
    real = judgment_export._tuples

    def counting(**kwargs):
        for row in real(**kwargs):
            consumed.append(row)
            yield row

    monkeypatch.setattr(judgment_export, "_tuples", counting)
    chunks = export_chunks(study=study, fmt=fmt, chunk_size=4, use_copy=False)
    first = next(chunks)
    if fmt == "csv":
        assert first.startswith(b"DataPoint_ID,Task_Group_ID,text,") and not consumed
        first = next(chunks)
    if fmt == "parquet":
        assert first == b"PAR1"  # the magic bytes go out before any row is read
        assert not consumed
        first = next(chunks)
    assert len(consumed) == 4, "the first rows went out after reading only the first chunk"
    if fmt == "jsonl":
        assert first.count(b"\n") == 4
    rest = list(chunks)
    assert len(consumed) == 32 and rest


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's")
@pytest.mark.parametrize("filters", [{}, {"include_attention_checks": True},
                                     {"truth": "REFUTES", "include_excluded": False},
                                     {"participant_status": "rejected"}])
def test_copy_writes_the_same_csv_as_python(study, filters):
    """On PostgreSQL the database writes the CSV, byte for byte what the Python path writes,
    and the Parquet made from it holds the same table."""
    from annotation.models import FramedClaim

    Participant.objects.filter(external_id="P2").update(platform_study_id="", platform_session_id="")
    Study.objects.filter(pk=study.pk).update(name='Pilot\'s 100% "wave", 1')
    study.refresh_from_db()
    shown = Judgment.objects.filter(participant__study=study).values("item__framed_claim")[:1]
    FramedClaim.objects.filter(pk__in=shown).update(text='He said "no",\nthen left; 50% sure')
    Judgment.objects.filter(participant__external_id="P3", position=2).update(
        shown_at=timezone.now().replace(microsecond=0))
    by_python = b"".join(export_chunks(study=study, fmt="csv", use_copy=False, **filters))
    progress = []
    by_copy = b"".join(export_chunks(study=study, fmt="csv", use_copy=True, chunk_size=5,
                                     progress=progress.append, **filters))
    assert by_copy == by_python
    assert sum(progress) == judgment_export_queryset(study=study, **filters).count()
    assert max(progress, default=0) <= 5
    if not filters:
        assert b'"He said ""no"",\nthen left; 50% sure"' in by_copy
        assert b'"Pilot\'s 100% ""wave"", 1"' in by_copy
    parquet_by_copy = b"".join(export_chunks(study=study, fmt="parquet", use_copy=True, chunk_size=5,
                                             **filters))
    parquet_by_python = b"".join(export_chunks(study=study, fmt="parquet", use_copy=False, **filters))
    pd.testing.assert_frame_equal(read_judgment_table(io.BytesIO(parquet_by_copy), "parquet"),
                                  read_judgment_table(io.BytesIO(parquet_by_python), "parquet"))
    assert pq.read_schema(io.BytesIO(parquet_by_copy)) == pq.read_schema(io.BytesIO(parquet_by_python))
    with pytest.raises(ValueError, match="COPY exports need PostgreSQL, and CSV or Parquet"):
        next(export_chunks(study=study, fmt="jsonl", use_copy=True))


def test_export_to_file_leaves_nothing_behind_on_failure(study, tmp_path, monkeypatch):
    path = tmp_path / "out.csv"
    path.write_text("the previous export\n")

    def failing(**kwargs):
        yield b"DataPoint_ID\n"
        raise RuntimeError("database went away")

    monkeypatch.setattr(judgment_export, "export_chunks", failing)
    with pytest.raises(RuntimeError):
        export_to_file(study=study, fmt="csv", path=path)
    assert path.read_text() == "the previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_rows_as_dicts_stream(study):
    rows = judgment_table_rows(study=study, chunk_size=3)
    first = next(rows)
    assert list(first) == list(COLUMNS) and first["study"] == "Export pilot"
    assert 1 + sum(1 for _ in rows) == 32


def test_the_command_writes_each_format(study, tmp_path):
    for fmt in EXPORT_FORMATS:
        out = tmp_path / f"judgments.{fmt}"
        stdout = io.StringIO()
        call_command("export_judgments", "--study", str(study.pk), "--format", fmt, "--out", str(out),
                     "--no-progress", stdout=stdout)
        assert "wrote 32 judgments of 'Export pilot'" in stdout.getvalue()
        pd.testing.assert_frame_equal(read_judgment_table(out), judgment_table(study=study))
    with pytest.raises(CommandError, match="already exists"):
        call_command("export_judgments", "--study", "Export pilot", "--format", "csv",
                     "--out", str(tmp_path / "judgments.csv"), "--no-progress")


def test_the_command_filters_and_writes_to_stdout(study):
    stdout = io.StringIO()
    call_command("export_judgments", "--study", "Export pilot", "--format", "csv", "--out", "-",
                 "--exclude-excluded", "--framing", "original,emotional", stdout=stdout)
    back = read_judgment_table(io.StringIO(stdout.getvalue()), "csv")
    pd.testing.assert_frame_equal(back, judgment_table(study=study, include_excluded=False,
                                                        framing=["original", "emotional"]))
    assert "P6" not in set(back["Annotator_ID"])
    with pytest.raises(CommandError, match="no study with the id or name 'nope'"):
        call_command("export_judgments", "--study", "nope", "--format", "csv", "--out", "-")
    with pytest.raises(CommandError, match="Parquet is binary"):
        call_command("export_judgments", "--study", "Export pilot", "--format", "parquet", "--out", "-")
    with pytest.raises(CommandError, match="unknown framing 'loud'"):
        call_command("export_judgments", "--study", "Export pilot", "--format", "csv", "--out", "-",
                     "--framing", "loud")


def test_the_background_job_writes_a_file_once(study, media_root, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = data_export_create(study=study, fmt="parquet", options={"truth": "REFUTES"}, user=None)
    job.refresh_from_db()
    assert job.status == DataExport.Status.SUCCEEDED, job.error
    assert job.rows_written == job.rows_total == len(judgment_table(study=study, truth="REFUTES"))
    assert job.options["truth"] == ["REFUTES"] and job.task_id
    path = data_export_path(job)
    assert path.parent.parent == media_root / "exports" and path.name == export_file_name(study, "parquet")
    pd.testing.assert_frame_equal(read_judgment_table(path),
                                  judgment_table(study=study, truth="REFUTES"))
    # A duplicated message does nothing twice.
    before = path.stat().st_mtime_ns
    assert run_data_export(job.pk)["skipped"] is True
    assert path.stat().st_mtime_ns == before
    assert run_data_export(10_000_000) == {"status": "missing", "skipped": True}
    with pytest.raises(ValueError, match="unknown truth value"):
        data_export_create(study=study, fmt="csv", options={"truth": "maybe"})


# --- Pages ------------------------------------------------------------------------------

@pytest.fixture
def owner(study):
    user = get_user_model().objects.create_user("owner", password="pw")
    Study.objects.filter(pk=study.pk).update(owner=user)
    return user


def test_the_owner_downloads_and_runs_exports(client, study, owner, media_root,
                                              django_capture_on_commit_callbacks):
    client.force_login(owner)
    detail = client.get(reverse("annotation:study-detail", args=[study.pk]))
    assert reverse("annotation:study-exports", args=[study.pk]).encode() in detail.content
    page = client.get(reverse("annotation:study-exports", args=[study.pk]))
    assert page.status_code == 200 and b"<strong>32</strong> rows match" in page.content
    filtered = client.get(reverse("annotation:study-exports", args=[study.pk]), {
        "submitted": "1", "format": "parquet", "framing": ["original", "emotional"], "truth": "REFUTES",
        "participant_status": "completed", "include_excluded": "on"})
    expected = len(judgment_table(study=study, framing=["original", "emotional"], truth="REFUTES",
                                  participant_status="completed"))
    assert f"<strong>{expected}</strong> rows match".encode() in filtered.content
    assert b'<input type="hidden" name="framing" value="emotional">' in filtered.content
    assert b'name="format" value="parquet"' in filtered.content
    wrong = client.get(reverse("annotation:study-exports", args=[study.pk]), {"framing": "loud"})
    assert b"unknown framing" in wrong.content
    stream = client.get(reverse("annotation:study-export-stream", args=[study.pk]),
                        {"format": "jsonl", "submitted": "1", "truth": "SUPPORTS"})
    assert stream.status_code == 200 and stream.streaming
    assert stream["Content-Type"] == "application/jsonl"
    assert export_file_name(study, "jsonl") in stream["Content-Disposition"]
    body = b"".join(stream.streaming_content)
    # The form was sent with its box for excluded participants unticked.
    pd.testing.assert_frame_equal(read_judgment_table(io.BytesIO(body), "jsonl"),
                                  judgment_table(study=study, truth="SUPPORTS", include_excluded=False))
    bad = client.get(reverse("annotation:study-export-stream", args=[study.pk]), {"format": "xlsx"})
    assert bad.status_code == 400 and b"accepted: csv, jsonl, parquet" in bad.content

    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(reverse("annotation:study-exports", args=[study.pk]),
                              {"format": "csv", "submitted": "1", "include_excluded": "on"})
    job = DataExport.objects.get()
    assert started["Location"] == reverse("annotation:export-detail", args=[job.pk])
    assert job.created_by == owner and job.status == "succeeded"
    progress = client.get(started["Location"])
    assert b"32 rows written" in progress.content
    download = client.get(reverse("annotation:export-download", args=[job.pk]))
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    pd.testing.assert_frame_equal(read_judgment_table(io.BytesIO(body), "csv"), judgment_table(study=study))


def test_others_see_no_exports(client, study, owner, media_root, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = data_export_create(study=study, fmt="csv", options={}, user=owner)
    urls = [reverse("annotation:study-exports", args=[study.pk]),
            reverse("annotation:study-export-stream", args=[study.pk]),
            reverse("annotation:export-detail", args=[job.pk]),
            reverse("annotation:export-download", args=[job.pk])]
    for url in urls:  # anonymous: sent to log in
        response = client.get(url)
        assert response.status_code == 302 and "login" in response["Location"]
    other = get_user_model().objects.create_user("other", password="pw")
    client.force_login(other)
    for url in urls:
        assert client.get(url).status_code == 404
    assert client.post(urls[0], {"format": "csv"}).status_code == 404
    participant = Participant.objects.filter(study=study).first()
    client.logout()
    # A participant's session link gives no way in either.
    client.get(reverse("annotation:participant-home", args=[study.pk, participant.token]))
    assert client.get(urls[1]).status_code == 302
    # A collaborator may.
    study.collaborators.add(other)
    client.force_login(other)
    assert client.get(urls[3]).status_code == 200
    assert Batch.objects.filter(study=study).exists()


def bulk_judgments(study, participants):
    """`participants` completed sessions written straight to the tables: quick, for sizes the
    services would take minutes to fill."""
    batches = list(study.batches.order_by("index"))
    items = {b.pk: list(b.items.order_by("position")) for b in batches}
    now = timezone.now()
    people = Participant.objects.bulk_create([
        Participant(study=study, external_id=f"B{i:06d}", source="prolific", token=uuid.uuid4().hex,
                    batch=batches[i % len(batches)], status="completed")
        for i in range(participants)], batch_size=2_000)
    rng = random.Random(1)
    Judgment.objects.bulk_create((
        Judgment(participant=p, item=item, accept=rng.random() < 0.5, confidence=rng.randint(1, 5),
                 familiarity=rng.randint(1, 5), position=item.position, shown_at=now, answered_at=now,
                 response_time_ms=rng.randint(500, 9000), submission_key=uuid.uuid4())
        for p in people for item in items[p.batch_id]), batch_size=2_000)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_memory_does_not_grow_with_the_study(fmt):
    """Peak Python memory while exporting 5,000 and 30,000 rows is about the same."""
    import gc
    import tracemalloc

    call_command("load_demo", no_user=True)
    study = study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name="Big",
                         base_claims=64, batch_size=24, raters_per_batch=10_000, seed=1)
    peaks = {}
    for participants in (5_000 // 24, 30_000 // 24):
        Judgment.objects.filter(participant__study=study).delete()
        Participant.objects.filter(study=study).delete()
        bulk_judgments(study, participants)
        gc.collect()
        tracemalloc.start()
        rows = 0
        for data in export_chunks(study=study, fmt=fmt, chunk_size=2_000):
            rows += 1 if data else 0
        peaks[participants * 24] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    (small_rows, small), (large_rows, large) = sorted(peaks.items())
    assert large < 1.5 * small, (f"peak {small / 1e6:.1f} MB for {small_rows:,} rows, "
                                 f"{large / 1e6:.1f} MB for {large_rows:,}")
    print(f"{fmt}: peak {small / 1e6:.1f} MB for {small_rows:,} rows, {large / 1e6:.1f} MB for {large_rows:,}")
