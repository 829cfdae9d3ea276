"""Researcher pages: datasets, claims, and an import started from the web (eager Celery here;
tests/integration runs the same flow through a real worker)."""
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from annotation.models import ClaimImport, Dataset, FramedClaim
from tests.conftest import claim_records, frameref_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def researcher(client):
    user = get_user_model().objects.create_user("ada", password="pw-for-tests")
    client.force_login(user)
    return user


def jsonl_upload(name, records):
    import orjson

    return SimpleUploadedFile(name, b"".join(orjson.dumps(r) + b"\n" for r in records))


def test_pages_need_a_login(client):
    response = client.get(reverse("annotation:dataset-list"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.get("/healthz").json()["status"] == "ok"


def test_login_page_and_demo_login_work(client):
    call_command("load_demo", demo_user=True)
    assert client.get(reverse("login")).status_code == 200
    response = client.post(reverse("login"), {"username": "demo", "password": "demo"}, follow=True)
    assert response.status_code == 200
    assert b"FrameLab demo" in response.content


def test_dataset_pages_show_composition_and_filter_claims(client, researcher, tmp_path):
    call_command("load_demo", no_user=True)
    dataset = Dataset.objects.get(name="FrameLab demo")
    page = client.get(reverse("annotation:dataset-list"))
    assert b"FrameLab demo" in page.content and b"64" in page.content

    detail = client.get(reverse("annotation:dataset-detail", args=[dataset.pk]),
                        {"framing": "sensationalist", "true_label": "REFUTES", "split": "test"})
    assert detail.status_code == 200
    claims = list(detail.context["page"])
    assert len(claims) == 3
    assert {c.framing for c in claims} == {"sensationalist"}
    assert {c.base_claim.true_label for c in claims} == {"REFUTES"}
    assert detail.context["composition"]["framed_claims"] == 384


def test_upload_runs_the_import_and_shows_the_result(client, researcher, media_root, django_capture_on_commit_callbacks):
    upload = jsonl_upload("train-0000.jsonl", claim_records(3))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("annotation:claim-import-new"), {
            "dataset_name": "uploaded", "files": [upload], "default_split": "none",
            "verification": "passed",
        })
    job = ClaimImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("annotation:claim-import-detail", args=[job.pk])
    assert job.status == "succeeded" and job.rows_imported == 18
    assert set(FramedClaim.objects.values_list("base_claim__split", flat=True)) == {"train"}
    assert set(FramedClaim.objects.exclude(framing="original").values_list("verification", flat=True)) == {"passed"}
    page = client.get(response["Location"])
    assert b"Imported 18 framed claims" in page.content


def test_a_failed_upload_names_the_line_and_imports_nothing(client, researcher, media_root, django_capture_on_commit_callbacks):
    records = claim_records(2) + [frameref_record("bad-1", "original", "x", "MAYBE")]
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("annotation:claim-import-new"), {
            "dataset_name": "uploaded", "files": [jsonl_upload("claims.jsonl", records)],
            "default_split": "none", "verification": "unverified",
        })
    job = ClaimImport.objects.get()
    assert job.status == "failed"
    assert job.error.endswith("claims.jsonl:13: field 'true_label': value 'MAYBE': unknown label; "
                              "accepted: SUPPORTS or REFUTES")
    assert not Dataset.objects.filter(name="uploaded").exists()
    page = client.get(reverse("annotation:claim-import-detail", args=[job.pk]))
    assert b"Nothing was imported" in page.content and b"MAYBE" in page.content


def test_an_upload_of_an_unknown_file_type_is_refused_on_the_form(client, researcher, media_root):
    response = client.post(reverse("annotation:claim-import-new"), {
        "dataset_name": "x", "files": [SimpleUploadedFile("claims.xlsx", b"PK")],
        "default_split": "none", "verification": "unverified",
    })
    assert response.status_code == 200
    assert b"unknown file type" in response.content
    assert not ClaimImport.objects.exists()


def test_a_researcher_never_sees_another_researchers_imports(client, researcher, media_root, django_capture_on_commit_callbacks):
    """Issue 12, finding 7: the import pages showed every researcher's imports and their
    errors (which quote row values); the API already answered 404."""
    records = claim_records(1) + [frameref_record("secret-1", "original", "a private claim", "MAYBE")]
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("annotation:claim-import-new"), {
            "dataset_name": "ada's data", "files": [jsonl_upload("private.jsonl", records)],
            "default_split": "none", "verification": "unverified",
        })
    job = ClaimImport.objects.get()
    assert client.get(reverse("annotation:claim-import-detail", args=[job.pk])).status_code == 200
    detail_url = reverse("annotation:claim-import-detail", args=[job.pk]).encode()
    assert detail_url in client.get(reverse("annotation:dataset-list")).content

    other = get_user_model().objects.create_user("grace", password="pw-for-tests")
    client.force_login(other)
    assert client.get(reverse("annotation:claim-import-detail", args=[job.pk])).status_code == 404
    listing = client.get(reverse("annotation:dataset-list"))
    assert detail_url not in listing.content and b"ada&#x27;s data" not in listing.content


# --- Upload limits and the life of uploaded files (issue 12, finding 2) ---------------------

def post_import(client, *uploads, dataset="uploaded"):
    return client.post(reverse("annotation:claim-import-new"), {
        "dataset_name": dataset, "files": list(uploads), "default_split": "none",
        "verification": "unverified",
    })


def stored_uploads(media_root):
    folder = media_root / "imports"
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_a_file_over_the_upload_limit_is_refused_before_it_is_stored(client, researcher, media_root,
                                                                     settings):
    settings.FRAMELAB_MAX_UPLOAD_FILE_BYTES = 1_000
    small = jsonl_upload("small.jsonl", claim_records(1, framings=("original",)))
    big = jsonl_upload("big.jsonl", claim_records(3))
    response = post_import(client, small, big)
    assert response.status_code == 413
    assert (f"big.jsonl: the file is {big.size:,} bytes, more than the 1,000 bytes an uploaded file "
            f"may hold (FRAMELAB_MAX_UPLOAD_FILE_BYTES)").encode() in response.content
    assert not ClaimImport.objects.exists() and stored_uploads(media_root) == []


def test_a_request_over_the_upload_limit_is_refused_before_it_is_read(client, researcher, media_root,
                                                                      settings):
    settings.FRAMELAB_MAX_UPLOAD_REQUEST_BYTES = 3_000
    response = post_import(client, jsonl_upload("a.jsonl", claim_records(3)),
                           jsonl_upload("b.jsonl", claim_records(3, prefix="b")))
    assert response.status_code == 413
    assert b"more than the 3,000 bytes one upload may hold (FRAMELAB_MAX_UPLOAD_REQUEST_BYTES)" \
        in response.content
    assert not ClaimImport.objects.exists() and stored_uploads(media_root) == []


def test_uploads_are_deleted_when_their_job_ends(client, researcher, media_root,
                                                 django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post_import(client, jsonl_upload("good.jsonl", claim_records(2)))
    with django_capture_on_commit_callbacks(execute=True):
        post_import(client, jsonl_upload("bad.jsonl", [frameref_record("x", "original", "x", "NO")]),
                    dataset="other")
    assert sorted(ClaimImport.objects.values_list("status", flat=True)) == ["failed", "succeeded"]
    assert stored_uploads(media_root) == []


def test_uploads_can_be_kept_for_a_while_then_the_sweep_removes_them(
        client, researcher, media_root, settings, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from annotation.claims.services import claim_uploads_delete_expired

    settings.FRAMELAB_KEEP_UPLOADS_SECONDS = 3600
    with django_capture_on_commit_callbacks(execute=True):
        post_import(client, jsonl_upload("kept.jsonl", claim_records(2)))
    job = ClaimImport.objects.get()
    assert job.status == "succeeded" and len(stored_uploads(media_root)) == 3  # folders and file
    assert claim_uploads_delete_expired() == 0
    ClaimImport.objects.filter(pk=job.pk).update(finished=timezone.now() - timedelta(hours=2))
    assert claim_uploads_delete_expired() == 1
    assert stored_uploads(media_root) == []


def test_uploads_of_an_upload_that_never_became_a_job_are_removed(client, researcher, media_root,
                                                                  monkeypatch):
    def refuse(**fields):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(ClaimImport.objects, "create", refuse)
    with pytest.raises(RuntimeError):
        post_import(client, jsonl_upload("lost.jsonl", claim_records(1)))
    assert stored_uploads(media_root) == []


def test_errors_and_pages_name_files_as_uploaded(client, researcher, media_root,
                                                django_capture_on_commit_callbacks):
    records = claim_records(2) + [frameref_record("bad-1", "original", "x", "MAYBE")]
    with django_capture_on_commit_callbacks(execute=True):
        post_import(client, jsonl_upload("claims.jsonl", records))
    job = ClaimImport.objects.get()
    assert job.error == ("claims.jsonl:13: field 'true_label': value 'MAYBE': unknown label; "
                         "accepted: SUPPORTS or REFUTES")
    page = client.get(reverse("annotation:claim-import-detail", args=[job.pk])).content.decode()
    assert "Files: claims.jsonl</p>" in page and "imports/" not in page


def test_files_with_the_same_name_are_stored_apart_and_both_imported(
        client, researcher, media_root, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post_import(client, jsonl_upload("train-0000.jsonl", claim_records(2, prefix="a")),
                    jsonl_upload("train-0000.jsonl", claim_records(3, prefix="b")))
    job = ClaimImport.objects.get()
    assert (job.status, job.rows_imported) == ("succeeded", 30), job.error
    assert set(FramedClaim.objects.values_list("base_claim__split", flat=True)) == {"train"}

    bad = claim_records(1, prefix="c") + [frameref_record("c-9", "original", "x", "MAYBE")]
    with django_capture_on_commit_callbacks(execute=True):
        post_import(client, jsonl_upload("claims.jsonl", claim_records(1, prefix="d")),
                    jsonl_upload("claims.jsonl", bad), dataset="second")
    failed = ClaimImport.objects.get(dataset_name="second")
    assert failed.error.startswith("claims.jsonl (file 2 of the upload):7: field 'true_label'")


def test_the_sweep_removes_orphaned_uploads_once_they_are_old(media_root):
    import os
    import time

    from annotation.claims.services import claim_uploads_delete_expired

    old, fresh = media_root / "imports" / "old", media_root / "imports" / "fresh"
    for folder in (old, fresh):
        (folder / "1").mkdir(parents=True)
        (folder / "1" / "claims.jsonl").write_bytes(b"{}\n")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert claim_uploads_delete_expired() == 1
    assert stored_uploads(media_root) == ["fresh", "fresh/1", "fresh/1/claims.jsonl"]


def test_a_name_too_long_for_the_file_system_is_stored_shortened_keeping_its_type(
        client, researcher, media_root, django_capture_on_commit_callbacks):
    name = "train-" + "é" * 240 + ".jsonl"  # 487 bytes: Django keeps it, a file system would not
    with django_capture_on_commit_callbacks(execute=True):
        post_import(client, jsonl_upload(name, claim_records(1)))
    job = ClaimImport.objects.get()
    assert job.status == "succeeded", job.error
    stored = job.files[0].rsplit("/", 1)[1]
    assert stored.startswith("train-éé") and stored.endswith(".jsonl") and len(stored.encode()) <= 200
