"""A worker process killed in the middle of a job (kill -9): the job ends, never 'running' forever.

Issue 12, finding 3: killing the pool child during a web import left the import 'running' for
good, because the redelivered task only ran queued jobs and skipped it. Here a real Celery
worker (prefork, one child, beat inside with recover-jobs every second, a 3 s lease) runs one
job of each kind; `tests/integration/pause_jobs.py`, loaded into the worker, holds the job at
its first progress report, in the middle of its work; the test kills that child with SIGKILL
(the pid the job's lease names) and waits: the job must end succeeded on its second attempt,
with the results an undisturbed run gives, or, with one attempt allowed, failed with the
message that says its worker stopped.
"""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse

from annotation.models import ClaimImport, DataExport, Dataset, FramedClaim, Study
from core.jobs import JobStatus
from modeling.models import Persona, ScoreTable
from simulation.models import SimulationRun
from tests.conftest import claim_records
from tests.integration.conftest import ROOT, database_url_of_live_connection

LEASE_SECONDS = 3


@pytest.fixture
def dying_worker(transactional_db, settings, tmp_path):
    """Starts a worker as described above; `start(max_attempts=...)` returns its pause folder."""
    from config import celery_app

    settings.MEDIA_ROOT = tmp_path / "media"
    started = []

    def start(*, max_attempts: int = 3) -> Path:
        pause_dir = tmp_path / "pause"
        pause_dir.mkdir()
        env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url_of_live_connection(),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "FRAMELAB_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
            "FRAMELAB_JOB_MAX_ATTEMPTS": str(max_attempts),
            "RECOVER_JOBS_EVERY_SECONDS": "1",
            "FRAMELAB_TEST_PAUSE_DIR": str(pause_dir),
            "FRAMELAB_TORCH_THREADS": "1",
            # Beat's tasks and the retries go through the broker, as in a deployment.
            "CELERY_TASK_ALWAYS_EAGER": "false",
        }
        celery_app.control.purge()
        log = open(tmp_path / "worker.log", "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "--app", "config", "worker", "--loglevel", "INFO",
             "--pool", "prefork", "--concurrency", "1", "--queues", "default,models",
             "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--include", "tests.integration.pause_jobs",
             "--beat", "--schedule", str(tmp_path / "beat-schedule")],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        started.append((process, log))
        return pause_dir

    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield start
    finally:
        celery_app.conf.task_always_eager = eager
        for process, log in started:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()
        if started:
            print((tmp_path / "worker.log").read_text()[-4000:])


def kill_mid_job(model, pk, pause_dir: Path, timeout: float = 120) -> None:
    """Waits until job `pk` is paused in its work, checks that the paused process holds its
    lease, and kills that process with SIGKILL."""
    marker = pause_dir / "paused"
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert time.monotonic() < deadline, f"{model.__name__} #{pk} never reached its work"
        time.sleep(0.1)
    pid = int(marker.read_text())
    job = model.objects.get(pk=pk)
    assert job.status == JobStatus.RUNNING and job.attempts == 1
    assert job.lease_owner.endswith(f" pid {pid}"), job.lease_owner
    os.kill(pid, signal.SIGKILL)


def wait_until_finished(model, pk, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = model.objects.get(pk=pk)
        if job.is_finished:
            return job
        time.sleep(0.25)
    raise AssertionError(f"{model.__name__} #{pk} still {job.status} after {timeout} s")


def upload_claims(client, name: str):
    import orjson

    records = claim_records(4)
    data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    client.force_login(get_user_model().objects.get_or_create(username="ada")[0])
    response = client.post(reverse("annotation:claim-import-new"), {
        "dataset_name": name, "files": [SimpleUploadedFile("dev-0000.jsonl", data)],
        "default_split": "none", "verification": "unverified"})
    assert response.status_code == 302
    return ClaimImport.objects.get(dataset_name=name)


def test_a_killed_import_is_run_again_and_imports_everything_once(dying_worker, client):
    pause_dir = dying_worker()
    job = upload_claims(client, "after a crash")

    kill_mid_job(ClaimImport, job.pk, pause_dir)
    job = wait_until_finished(ClaimImport, job.pk)

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 2 and job.rows_imported == 24
    assert FramedClaim.objects.filter(base_claim__dataset__name="after a crash").count() == 24
    page = client.get(reverse("annotation:claim-import-detail", args=[job.pk]))
    assert b"Imported 24 framed claims" in page.content
    assert b"Started 2 times: the worker running it earlier stopped." in page.content


def test_a_killed_import_with_no_attempts_left_fails_saying_its_worker_stopped(
        dying_worker, client, settings):
    pause_dir = dying_worker(max_attempts=1)
    job = upload_claims(client, "lost")

    kill_mid_job(ClaimImport, job.pk, pause_dir)
    job = wait_until_finished(ClaimImport, job.pk)

    assert job.status == JobStatus.FAILED and job.attempts == 1
    assert job.error.startswith("The worker running this claim import stopped (worker ")
    assert f"no sign of life for over {LEASE_SECONDS} s" in job.error
    assert "nothing was imported" in job.error
    assert not Dataset.objects.filter(name="lost").exists()
    imports = Path(settings.MEDIA_ROOT) / "imports"
    assert not imports.exists() or not any(imports.iterdir())
    page = client.get(reverse("annotation:claim-import-detail", args=[job.pk]))
    assert b"The worker running this claim import stopped" in page.content
    assert b"Fix the file" not in page.content  # the file was fine


def test_a_killed_export_is_written_again_whole(dying_worker, client):
    from annotation.dataio.judgment_table import judgment_table, read_judgment_table
    from annotation.dataio.services import data_export_path
    from annotation.studies.services import study_create
    from tests.annotation.test_export_judgments import take_session

    owner = get_user_model().objects.create_user("ada", password="x")
    call_command("load_demo", no_user=True)
    study = study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name="Crash export",
                         base_claims=8, batch_size=6, raters_per_batch=2, seed=5,
                         status=Study.Status.OPEN, owner=owner)
    rng = random.Random(3)
    for pid in ("W1", "W2", "W3"):
        take_session(study, pid, rng)
    pause_dir = dying_worker()
    client.force_login(owner)
    client.post(reverse("annotation:study-exports", args=[study.pk]),
                {"format": "parquet", "submitted": "1", "include_excluded": "on"})
    job = DataExport.objects.get()

    kill_mid_job(DataExport, job.pk, pause_dir)
    job = wait_until_finished(DataExport, job.pk)

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 2 and job.rows_written == 18
    pd.testing.assert_frame_equal(read_judgment_table(data_export_path(job)),
                                  judgment_table(study=study))


@pytest.fixture
def tiny_model(tmp_path):
    from tests.modeling.conftest import save_tiny_model

    return save_tiny_model(tmp_path / "tiny-llama")


def test_a_killed_training_is_taken_up_again_and_finishes(dying_worker, tiny_model, settings):
    from modeling.services import persona_create, persona_start

    call_command("load_demo", no_user=True)
    persona = persona_create(
        name="crash", dataset=Dataset.objects.get(name="FrameLab demo"),
        target_framing="authoritative", alpha=0.3, base_model=str(tiny_model), seed=1,
        hyperparameters={"r": 4, "lora_alpha": 8, "batch_size": 4, "grad_accumulation": 1,
                         "epochs": 1, "max_examples": 24, "checkpoint_every": 2,
                         "learning_rate": 1e-2})
    pause_dir = dying_worker()
    persona_start(persona=persona)  # autocommit: sent at once

    kill_mid_job(Persona, persona.pk, pause_dir)
    persona = wait_until_finished(Persona, persona.pk)

    assert persona.status == JobStatus.SUCCEEDED, persona.error
    assert persona.attempts == 2 and persona.steps_done == persona.steps_total > 0
    assert (Path(settings.MEDIA_ROOT) / persona.adapter_dir / "adapter_config.json").is_file()


def test_a_killed_scoring_is_scored_again(dying_worker, tiny_model, settings):
    from modeling.score_services import (
        base_persona_get_or_create,
        score_table_create,
        score_table_enqueue,
        score_table_load,
    )

    call_command("load_demo", no_user=True)
    demo = Dataset.objects.get(name="FrameLab demo")
    base = base_persona_get_or_create(base_model=str(tiny_model))
    with transaction.atomic():
        table = score_table_create(persona=base, dataset=demo, split="test")
    pause_dir = dying_worker()
    score_table_enqueue(score_table=table)

    kill_mid_job(ScoreTable, table.pk, pause_dir)
    table = wait_until_finished(ScoreTable, table.pk)

    assert table.status == JobStatus.SUCCEEDED, table.error
    expected = FramedClaim.objects.filter(base_claim__dataset=demo, base_claim__split="test").count()
    assert table.attempts == 2 and table.rows == expected > 0
    scores = score_table_load(table)
    assert len(scores) == expected and scores["framed_claim_id"].is_unique


@pytest.mark.slow  # about two minutes on the filesystem broker: the chord's polls are slow
def test_a_killed_simulation_ends_with_the_results_of_an_undisturbed_run(dying_worker):
    from simulation.embeddings import pool_embeddings
    from simulation.selectors import pool_claims
    from simulation.services import (
        results_file,
        simulation_run_create,
        simulation_run_enqueue,
        simulation_run_execute,
    )

    call_command("load_demo", no_user=True)
    dataset = Dataset.objects.get(name="FrameLab demo")
    pool = pool_claims(dataset=dataset, split="test")
    pool_embeddings(dataset_id=dataset.pk, dataset_name=dataset.name, split="test",
                    claim_ids=pool["claim_id"].tolist(), texts=pool["text"].tolist())
    agents = [{"kind": "parametric", "name": "credulous",
               "accept": {"SUPPORTS": 0.9, "REFUTES": 0.7}, "confidence": 0.8},
              {"kind": "oracle"}]

    def create(name):
        return simulation_run_create(name=name, dataset=dataset, split="test", agents=agents,
                                     trajectories=6, steps=5, runs=1, seed=4)

    pause_dir = dying_worker()
    run = create("killed")
    simulation_run_enqueue(run=run, shards=2)

    kill_mid_job(SimulationRun, run.pk, pause_dir)
    run = wait_until_finished(SimulationRun, run.pk)
    undisturbed = simulation_run_execute(run=create("undisturbed"))

    assert run.status == JobStatus.SUCCEEDED, run.error
    pd.testing.assert_frame_equal(pd.read_parquet(results_file(run)),
                                  pd.read_parquet(results_file(undisturbed)))
    assert run.summary == undisturbed.summary
