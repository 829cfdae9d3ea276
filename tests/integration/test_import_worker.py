"""An import started from the web runs on a real Celery worker process, end to end."""
import time

from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotation.models import ClaimImport, Dataset, FramedClaim
from tests.conftest import claim_records, frameref_record


def upload(name, records):
    import orjson

    return SimpleUploadedFile(name, b"".join(orjson.dumps(r) + b"\n" for r in records))


def wait_for_job(job_id, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ClaimImport.objects.get(pk=job_id)
        if job.status in ("succeeded", "failed"):
            return job
        time.sleep(0.25)
    raise AssertionError(f"import {job_id} still {job.status} after {timeout} s")


def test_uploaded_files_are_imported_by_the_worker(celery_worker_process, client):
    client.force_login(get_user_model().objects.create_user("ada", password="x"))
    good = client.post(reverse("annotation:claim-import-new"), {
        "dataset_name": "via-worker", "files": [upload("dev-0000.jsonl", claim_records(4))],
        "default_split": "none", "verification": "unverified",
    })
    bad_records = claim_records(2, prefix="b") + [frameref_record("b-9", "framed", "x", "SUPPORTS")]
    client.post(reverse("annotation:claim-import-new"), {
        "dataset_name": "bad-via-worker", "files": [upload("broken.jsonl", bad_records)],
        "default_split": "none", "verification": "unverified",
    })
    good_job, bad_job = ClaimImport.objects.order_by("pk")
    assert good.status_code == 302 and good_job.task_id

    good_job, bad_job = wait_for_job(good_job.pk), wait_for_job(bad_job.pk)

    assert good_job.status == "succeeded", good_job.error
    assert good_job.rows_imported == 24
    assert FramedClaim.objects.filter(base_claim__dataset__name="via-worker",
                                      base_claim__split="dev").count() == 24
    assert bad_job.status == "failed"
    assert "broken.jsonl:13: field 'framing_type': value 'framed': unknown framing" in bad_job.error
    assert not Dataset.objects.filter(name="bad-via-worker").exists()
    page = client.get(reverse("annotation:claim-import-detail", args=[good_job.pk]))
    assert b"Imported 24 framed claims" in page.content


def test_a_gzip_bomb_fails_its_job_quickly_and_leaves_no_upload(celery_worker_process, client,
                                                                settings):
    """Issue 12, finding 2: an 8 MB .jsonl.gz holding one 8 GB line took the worker past
    4 GiB. Here 128 MiB of one line in 128 KiB: refused at the line limit, upload deleted."""
    import zlib

    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    parts = [compressor.compress(b'{"claim_id": "')]
    parts += [compressor.compress(b"x" * (1 << 20)) for _ in range(128)]
    bomb = b"".join(parts) + compressor.flush()
    assert len(bomb) < 300_000
    client.force_login(get_user_model().objects.create_user("eve", password="x"))
    response = client.post(reverse("annotation:claim-import-new"), {
        "dataset_name": "bomb", "files": [SimpleUploadedFile("claims.jsonl.gz", bomb)],
        "default_split": "none", "verification": "unverified",
    })
    assert response.status_code == 302

    job = wait_for_job(ClaimImport.objects.get().pk, timeout=60)

    assert job.status == "failed"
    assert job.error == "claims.jsonl.gz:1: line longer than 1,000,000 bytes (FRAMELAB_MAX_LINE_BYTES)"
    assert (job.finished - job.started).total_seconds() < 10
    assert not Dataset.objects.filter(name="bomb").exists()
    imports = settings.MEDIA_ROOT / "imports"
    assert not imports.exists() or not any(imports.iterdir())
