"""Exports through the API: the streamed table read back with pandas, and background jobs."""
import io

import pandas as pd
import pytest

from annotation.dataio.judgment_table import TIDY_COLUMNS, read_judgment_table
from annotation.models import DataExport, Judgment

from .conftest import take_part

pytestmark = pytest.mark.django_db


@pytest.fixture
def answered(study):
    from annotation.studies.assignment import participant_mark

    take_part(study, "P1", accept=lambda item: True)
    take_part(study, "P2", accept=lambda item: False, confidence=1)
    participant_mark(participant=take_part(study, "P3", answers=3), status="returned")
    return study


def body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_the_streamed_export_reads_back_as_the_tidy_table(api, answered, fmt):
    response = api.get(f"/api/studies/{answered.pk}/judgments/export/", {"file_format": fmt})
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="judgments-pilot-{answered.pk}.{fmt}"'
    table = read_judgment_table(io.BytesIO(body(response)), fmt)
    assert tuple(table.columns[:10]) == TIDY_COLUMNS
    claims = Judgment.objects.filter(item__framed_claim__isnull=False)
    assert len(table) == claims.count() == 14  # P3 stopped after 2 claims and the check
    by_annotator = table.groupby("Annotator_ID")["accurate_response"].agg(set).to_dict()
    assert by_annotator == {"P1": {"SUPPORTS"}, "P2": {"REFUTES"}, "P3": {"SUPPORTS"}}
    assert table.loc[table.Annotator_ID == "P3", "excluded"].all()
    assert not table.loc[table.Annotator_ID != "P3", "excluded"].any()


def test_export_filters_and_content_negotiation(api, answered):
    url = f"/api/studies/{answered.pk}/judgments/export/"
    kept = pd.read_csv(io.BytesIO(body(api.get(url, {"include_excluded": "false", "truth": "false"}))))
    assert set(kept.Annotator_ID) == {"P1", "P2"} and set(kept.true_label) == {"REFUTES"}
    assert len(kept) == 6  # three false claims each
    with_checks = pd.read_csv(io.BytesIO(body(api.get(url, {"include_attention_checks": "true"}))))
    assert len(with_checks) == Judgment.objects.count() == 17
    # Without file_format, the Accept header or DRF's ?format= chooses.
    parquet = api.get(url, HTTP_ACCEPT="application/vnd.apache.parquet")
    assert parquet["Content-Type"] == "application/vnd.apache.parquet"
    assert len(read_judgment_table(io.BytesIO(body(parquet)), "parquet")) == 14
    assert api.get(url, {"format": "jsonl"})["Content-Type"] == "application/jsonl"
    assert api.get(url)["Content-Type"].startswith("text/csv")
    bad = api.get(url, {"framing": "loud"}, HTTP_ACCEPT="text/csv")
    assert bad.status_code == 400 and "loud" in str(bad.json()["framing"])
    assert bad["Content-Type"] == "application/json"  # errors are JSON, whatever was asked for


def test_a_background_export_offers_a_download(api, other_api, answered, media_root,
                                                django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/studies/{answered.pk}/exports/",
                            {"file_format": "parquet", "framing": ["original", "consensus"]}, format="json")
    assert response.status_code == 202, response.content
    job = api.get(response.json()["url"]).json()
    assert job["status"] == "succeeded" and job["progress"] == 1.0
    assert job["options"]["framing"] == ["original", "consensus"]
    download = api.get(job["download_url"])
    assert download.status_code == 200
    table = read_judgment_table(io.BytesIO(b"".join(download.streaming_content)), "parquet")
    assert set(table.framing_type) <= {"original", "consensus"}
    assert len(table) == job["rows_written"] == Judgment.objects.filter(
        item__framed_claim__framing__in=["original", "consensus"]).count()
    assert [e["id"] for e in api.get(f"/api/studies/{answered.pk}/exports/").json()["results"]] == [job["id"]]
    # Another researcher sees neither the job nor its file.
    assert other_api.get(job["url"]).status_code == 404
    assert other_api.get(job["download_url"]).status_code == 404
    assert other_api.post(f"/api/studies/{answered.pk}/exports/", {}, format="json").status_code == 404
    # An empty ?format= is not "no format": the schema offers only the formats' names
    # (schemathesis found it answered 200 with a file), on the download as on the stream.
    for url in (job["download_url"], f"/api/studies/{answered.pk}/judgments/export/"):
        empty = api.get(url, {"format": ""})
        assert empty.status_code == 400 and "format" in empty.json(), url


def test_a_download_before_the_file_is_ready_is_a_conflict(api, answered, owner):
    job = DataExport.objects.create(study=answered, format="csv", created_by=owner)
    detail = api.get(f"/api/exports/{job.pk}/").json()
    assert detail["status"] == "queued" and detail["download_url"] is None
    assert api.get(f"/api/exports/{job.pk}/download/").status_code == 409
    refused = api.post(f"/api/studies/{answered.pk}/exports/", {"file_format": "xlsx"}, format="json")
    assert refused.status_code == 400 and "xlsx" in str(refused.json()["file_format"])
