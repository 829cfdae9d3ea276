"""A background export started from the export page runs on a real Celery worker process."""
import random
import time

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from annotation.dataio.judgment_table import judgment_table, read_judgment_table
from annotation.dataio.services import data_export_path
from annotation.models import DataExport, Dataset, Study
from annotation.studies.services import study_create
from tests.annotation.test_export_judgments import take_session

pytestmark = pytest.mark.slow


def wait_for_export(export_id, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = DataExport.objects.get(pk=export_id)
        if job.status in ("succeeded", "failed"):
            return job
        time.sleep(0.25)
    raise AssertionError(f"export {export_id} still {job.status} after {timeout} s")


def test_a_parquet_export_is_written_by_the_worker(celery_worker_process, client):
    owner = get_user_model().objects.create_user("ada", password="x")
    call_command("load_demo", no_user=True)
    study = study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name="Worker export",
                         base_claims=8, batch_size=6, raters_per_batch=2, seed=5,
                         status=Study.Status.OPEN, owner=owner)
    rng = random.Random(3)
    for pid in ("W1", "W2", "W3"):
        take_session(study, pid, rng)
    client.force_login(owner)
    response = client.post(reverse("annotation:study-exports", args=[study.pk]),
                           {"format": "parquet", "submitted": "1", "include_excluded": "on",
                            "truth": "REFUTES"})
    job = DataExport.objects.get()
    assert response.status_code == 302 and job.task_id and job.rows_total == 9

    job = wait_for_export(job.pk)

    assert job.status == "succeeded", job.error
    assert job.rows_written == 9
    pd.testing.assert_frame_equal(read_judgment_table(data_export_path(job)),
                                  judgment_table(study=study, truth="REFUTES"))
    page = client.get(reverse("annotation:export-detail", args=[job.pk]))
    assert b"9 rows written" in page.content
    download = client.get(reverse("annotation:export-download", args=[job.pk]))
    assert download.status_code == 200 and download["Content-Type"] == "application/vnd.apache.parquet"
