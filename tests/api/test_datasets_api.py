"""Datasets: list, composition, and uploads of claim files imported by a Celery job."""
import pytest

from annotation.models import ClaimImport, Dataset, FramedClaim
from tests.conftest import claim_records, write_jsonl

from .conftest import make_user, results, token_client

pytestmark = pytest.mark.django_db


def test_list_and_detail_with_composition(api, demo_dataset):
    listed = results(api.get("/api/datasets/"))
    assert [(d["name"], d["base_claim_count"]) for d in listed] == [("FrameLab demo", 64)]
    assert results(api.get("/api/datasets/", {"name": "nothing like it"})) == []
    detail = api.get(f"/api/datasets/{demo_dataset.pk}/").json()
    composition = detail["composition"]
    assert composition["base_claims"] == 64
    framed = FramedClaim.objects.filter(base_claim__dataset=demo_dataset)
    assert composition["framed_claims"] == framed.count()
    assert set(composition["framings"]) == {"original", "authoritative", "consensus", "emotional",
                                             "prestige", "sensationalist"}
    assert sum(composition["framings"].values()) == composition["framed_claims"]
    assert sum(s["true"] + s["false"] for s in composition["splits"]) == 64
    assert api.get("/api/datasets/999999/").status_code == 404


def upload(client, path, **fields):
    with open(path, "rb") as handle:
        return client.post("/api/imports/", {"dataset_name": "uploaded", "files": [handle], **fields},
                           format="multipart")


def test_an_uploaded_file_is_imported_by_the_job(api, owner, media_root, tmp_path, settings,
                                                 django_capture_on_commit_callbacks):
    # Spool the upload to a temporary file, as Django does with large ones.
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    path = write_jsonl(tmp_path / "train-0000.jsonl", claim_records(n_base=3))
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api, path, verification="passed")
    assert response.status_code == 202, response.content
    queued = response.json()
    assert response["Location"] == queued["url"]
    assert (queued["status"], queued["files"], queued["verification"]) == (
        "queued", ["train-0000.jsonl"], "passed")
    # The job ran (eagerly, in the tests) once the request's transaction committed.
    job = api.get(queued["url"]).json()
    assert (job["status"], job["rows_imported"], job["rows_skipped"]) == ("succeeded", 18, 0)
    dataset = Dataset.objects.get(name="uploaded")
    assert job["dataset"] == dataset.pk and job["finished"] is not None
    assert set(dataset.base_claims.values_list("split", flat=True)) == {"train"}
    assert set(FramedClaim.objects.filter(base_claim__dataset=dataset, framing="consensus")
               .values_list("verification", flat=True)) == {"passed"}
    assert [j["id"] for j in results(api.get("/api/imports/"))] == [job["id"]]


def test_a_bad_row_fails_the_job_naming_file_line_and_field(api, media_root, tmp_path,
                                                            django_capture_on_commit_callbacks):
    records = claim_records(n_base=2)
    records[4]["true_label"] = "MAYBE"
    path = write_jsonl(tmp_path / "claims.jsonl", records)
    with django_capture_on_commit_callbacks(execute=True):
        queued = upload(api, path).json()
    job = api.get(queued["url"]).json()
    assert job["status"] == "failed"
    assert "claims.jsonl:5" in job["error"] and "true_label" in job["error"] and "MAYBE" in job["error"]
    assert not Dataset.objects.filter(name="uploaded").exists()


def test_bad_uploads_are_refused_before_any_job(api, media_root, tmp_path):
    path = tmp_path / "claims.txt"
    path.write_text("not claims")
    refused = upload(api, path)
    assert refused.status_code == 400 and "unknown file type" in refused.json()["files"][0]
    missing = api.post("/api/imports/", {"dataset_name": "x"}, format="multipart")
    assert missing.status_code == 400 and "files" in missing.json()
    bad_split = upload(api, write_jsonl(tmp_path / "a.jsonl", claim_records(1)), default_split="holdout")
    assert bad_split.status_code == 400 and "default_split" in bad_split.json()
    assert not ClaimImport.objects.exists()


def test_imports_are_visible_to_who_started_them(api, other_api, media_root, tmp_path,
                                                 django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = upload(api, write_jsonl(tmp_path / "a.jsonl", claim_records(1))).json()
    assert other_api.get(f"/api/imports/{job['id']}/").status_code == 404
    assert results(other_api.get("/api/imports/")) == []
    admin = token_client(make_user("root", is_superuser=True))
    assert admin.get(f"/api/imports/{job['id']}/").status_code == 200


# --- Upload limits and the life of uploaded files (issue 12, finding 2) ---------------------

def test_uploads_over_the_limits_are_413_with_the_message(api, media_root, tmp_path, settings):
    path = write_jsonl(tmp_path / "big.jsonl", claim_records(3))
    size = path.stat().st_size
    settings.FRAMELAB_MAX_UPLOAD_FILE_BYTES = size - 1
    refused = upload(api, path)
    assert refused.status_code == 413
    assert refused.json() == {"detail": f"big.jsonl: the file is {size:,} bytes, more than the "
                                        f"{size - 1:,} bytes an uploaded file may hold "
                                        f"(FRAMELAB_MAX_UPLOAD_FILE_BYTES)"}

    settings.FRAMELAB_MAX_UPLOAD_FILE_BYTES = size
    settings.FRAMELAB_MAX_UPLOAD_REQUEST_BYTES = size
    refused = upload(api, path)  # the request is the file and the form around it
    assert refused.status_code == 413
    assert refused.json()["detail"].endswith(
        f"more than the {size:,} bytes one upload may hold (FRAMELAB_MAX_UPLOAD_REQUEST_BYTES)")
    assert not ClaimImport.objects.exists()
    assert not (media_root / "imports").exists() or not any((media_root / "imports").iterdir())


def test_uploads_are_deleted_after_the_job(api, media_root, tmp_path,
                                          django_capture_on_commit_callbacks):
    records = claim_records(n_base=2)
    with django_capture_on_commit_callbacks(execute=True):
        good = upload(api, write_jsonl(tmp_path / "good.jsonl", records)).json()
    records[3]["framing_type"] = "nope"
    with django_capture_on_commit_callbacks(execute=True):
        bad = upload(api, write_jsonl(tmp_path / "bad.jsonl", records), dataset_name="b").json()
    assert api.get(good["url"]).json()["status"] == "succeeded"
    failed = api.get(bad["url"]).json()
    assert failed["status"] == "failed" and failed["error"].startswith("bad.jsonl:4: ")
    assert failed["files"] == ["bad.jsonl"]
    assert not any((media_root / "imports").iterdir())
