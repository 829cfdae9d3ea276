"""Job leases and their recovery (core/jobs.py, core/recovery.py; issue 12, finding 3).

A job whose worker died used to stay 'running' forever: the redelivered task only ran queued
jobs. These tests pin the pieces in one process: which leases count as expired, who may
claim a job, how the heartbeat renews a lease, and what recovery does with each kind. The
real worker deaths are in tests/integration/test_worker_deaths.py.
"""
import time
from datetime import timedelta

import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone

from annotation.claims.services import claim_import_create
from annotation.models import ClaimImport, Dataset, FramedClaim
from core.jobs import (
    JobStatus,
    job_claim,
    job_heartbeat,
    lease_expired,
    lease_owner_here,
)
from core.recovery import jobs_recover
from modeling.models import Persona
from simulation.models import SimulationRun
from tests.conftest import claim_records

pytestmark = pytest.mark.django_db
LONG_AGO = timedelta(minutes=10)


@pytest.fixture(autouse=True)
def _lease(settings):
    settings.FRAMELAB_JOB_LEASE_SECONDS = 60
    settings.FRAMELAB_JOB_MAX_ATTEMPTS = 3


def running_import(*, silent_for=LONG_AGO, attempts=1, task_id="task-1", **fields) -> ClaimImport:
    now = timezone.now()
    values = dict(dataset_name="d", files=[], status=JobStatus.RUNNING, started=now - silent_for,
                  heartbeat=now - silent_for, lease_owner="worker celery@elsewhere pid 4242",
                  attempts=attempts, task_id=task_id)
    return ClaimImport.objects.create(**{**values, **fields})


def test_a_lease_expires_after_the_timeout_of_silence_and_only_while_running():
    fresh = running_import(silent_for=timedelta(seconds=30))
    silent = running_import(silent_for=timedelta(seconds=90))
    never_beat = running_import(silent_for=timedelta(seconds=90), heartbeat=None)
    queued = ClaimImport.objects.create(dataset_name="q", files=[])
    failed = running_import(silent_for=LONG_AGO)
    ClaimImport.objects.filter(pk=failed.pk).update(status=JobStatus.FAILED)

    expired = set(ClaimImport.objects.filter(lease_expired()).values_list("pk", flat=True))

    assert expired == {silent.pk, never_beat.pk}
    assert fresh.pk not in expired and queued.pk not in expired


def test_the_claim_takes_the_lease_and_counts_the_attempt():
    job = ClaimImport.objects.create(dataset_name="d", files=[])
    assert job_claim(ClaimImport.objects, job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.attempts == 1
    assert job.lease_owner == lease_owner_here() and job.lease_owner.startswith("process on ")
    assert abs((timezone.now() - job.heartbeat).total_seconds()) < 5


def test_a_redelivered_task_takes_over_only_an_expired_lease_with_attempts_left():
    """The bug: a redelivered task skipped its own job, left running by the dead worker. The
    opposite bug: taking over a live job, so that two workers run it at once."""
    alive = running_import(silent_for=timedelta(seconds=5))
    dead = running_import()
    spent = running_import(attempts=3)

    assert not job_claim(ClaimImport.objects, alive.pk, take_expired=True)
    assert not job_claim(ClaimImport.objects, spent.pk, take_expired=True)
    assert not job_claim(ClaimImport.objects, dead.pk)  # without take_expired: queued only
    assert job_claim(ClaimImport.objects, dead.pk, take_expired=True)
    assert not job_claim(ClaimImport.objects, dead.pk, take_expired=True)  # exactly once
    dead.refresh_from_db()
    assert dead.attempts == 2 and dead.lease_owner == lease_owner_here()


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_renews_the_lease_while_the_body_runs_and_stops_after():
    job = running_import(silent_for=timedelta(seconds=59))
    owner = job.lease_owner
    with job_heartbeat(ClaimImport.objects, job.pk, owner=owner, interval=0.05):
        time.sleep(0.5)
        job.refresh_from_db()
        assert timezone.now() - job.heartbeat < timedelta(seconds=2)
        assert not ClaimImport.objects.filter(lease_expired(), pk=job.pk).exists()
    renewed = job.heartbeat
    time.sleep(0.3)
    job.refresh_from_db()
    assert job.heartbeat - renewed < timedelta(seconds=0.2)


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_never_renews_a_lease_another_process_took_over():
    job = running_import(silent_for=timedelta(seconds=30))
    before = job.heartbeat
    with job_heartbeat(ClaimImport.objects, job.pk, owner="worker celery@old pid 1", interval=0.05):
        time.sleep(0.3)
    job.refresh_from_db()
    assert job.heartbeat == before


def upload(records) -> SimpleUploadedFile:
    return SimpleUploadedFile("dev-0000.jsonl", b"".join(orjson.dumps(r) + b"\n" for r in records))


def test_recovery_runs_an_abandoned_import_again_and_it_imports_once(
        media_root, django_capture_on_commit_callbacks):
    job = claim_import_create(dataset_name="again", files=[upload(claim_records(2))],
                              default_split="none")
    ClaimImport.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, task_id="dead-task", attempts=1,
        started=timezone.now() - LONG_AGO, heartbeat=timezone.now() - LONG_AGO)

    with django_capture_on_commit_callbacks(execute=True):  # the new task (eager here)
        outcome = jobs_recover()

    assert outcome.retried == [f"claim import #{job.pk}"] and outcome.failed == []
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2 and job.rows_imported == 12
    assert FramedClaim.objects.filter(base_claim__dataset__name="again").count() == 12


def test_recovery_fails_a_job_out_of_attempts_saying_its_worker_stopped(media_root):
    job = claim_import_create(dataset_name="lost", files=[upload(claim_records(2))],
                              default_split="none")
    ClaimImport.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, task_id="t", attempts=3, lease_owner="worker celery@a pid 7",
        started=timezone.now() - LONG_AGO, heartbeat=timezone.now() - LONG_AGO)

    outcome = jobs_recover()

    job.refresh_from_db()
    assert outcome.failed == [f"claim import #{job.pk}"]
    assert job.status == JobStatus.FAILED and job.finished is not None
    assert job.error == (
        "The worker running this claim import stopped (worker celery@a pid 7; no sign of life "
        "for over 60 s) after 3 attempts; nothing was imported (an import is all or nothing); "
        "import the files again.")
    assert not Dataset.objects.filter(name="lost").exists()
    assert not any((media_root / "imports").iterdir())  # its uploads went with it


def test_a_job_a_foreground_command_ran_is_failed_not_sent_to_a_worker():
    job = running_import(task_id="", lease_owner="process on host pid 99")
    # A task id from an earlier run on a worker does not make a command's run a worker's.
    rerun = running_import(task_id="old-task", lease_owner="process on host pid 98")
    assert jobs_recover().failed == [f"claim import #{job.pk}", f"claim import #{rerun.pk}"]
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "(process on host pid 99;" in job.error


def test_recovery_leaves_live_and_finished_jobs_alone_and_runs_once():
    alive = running_import(silent_for=timedelta(seconds=10))
    done = running_import()
    ClaimImport.objects.filter(pk=done.pk).update(status=JobStatus.SUCCEEDED)
    dead = running_import(task_id="", lease_owner="process on host pid 5")

    first, second = jobs_recover(), jobs_recover()

    assert first.failed == [f"claim import #{dead.pk}"] and second.failed == second.retried == []
    assert ClaimImport.objects.get(pk=alive.pk).status == JobStatus.RUNNING
    assert ClaimImport.objects.get(pk=done.pk).status == JobStatus.SUCCEEDED


def test_a_persona_asked_to_stop_whose_worker_died_ends_cancelled():
    persona = Persona.objects.create(
        name="p", status=JobStatus.RUNNING, cancel_requested=True, task_id="t", attempts=1,
        started=timezone.now() - LONG_AGO, heartbeat=timezone.now() - LONG_AGO)
    jobs_recover()
    persona.refresh_from_db()
    assert persona.status == JobStatus.CANCELLED and persona.finished is not None


def test_a_persona_out_of_attempts_says_where_its_checkpoint_is():
    persona = Persona.objects.create(
        name="p", status=JobStatus.RUNNING, task_id="t", attempts=3, steps_done=40,
        steps_total=100, started=timezone.now() - LONG_AGO, heartbeat=timezone.now() - LONG_AGO)
    jobs_recover()
    persona.refresh_from_db()
    assert persona.status == JobStatus.FAILED
    assert persona.error.startswith("The worker running this persona training stopped")
    assert (f"training stopped after step 40 of 100; its last checkpoint is kept: resume it "
            f"(`manage.py train_persona --resume {persona.pk}`)") in persona.error


def simulation_run(**fields) -> SimulationRun:
    call_command("load_demo", no_user=True, verbosity=0)
    return SimulationRun.objects.create(
        name="r", dataset=Dataset.objects.get(name="FrameLab demo"), agents=[{"kind": "oracle"}],
        trajectories=2, steps=2, status=JobStatus.RUNNING, started=timezone.now() - LONG_AGO,
        heartbeat=timezone.now() - LONG_AGO, attempts=3, **fields)


def test_a_simulation_whose_shards_wait_in_the_queue_is_not_abandoned():
    """Between its tasks no task renews a run's lease: shards queued behind other work must
    not make a healthy run fail as abandoned (the first version of the recovery did)."""
    waiting = simulation_run(shards_total=2, task_ids=["start", "merge", "shard-a", "shard-b"])
    assert jobs_recover().failed == []  # the shards' ids are unknown: PENDING, waiting
    waiting.refresh_from_db()
    assert waiting.status == JobStatus.RUNNING


def test_an_abandoned_simulation_out_of_attempts_fails():
    run = simulation_run(shards_total=2, task_ids=["start"])
    assert jobs_recover().failed == [f"simulation run #{run.pk}"]
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED
    assert run.error.endswith("after 3 attempts; no results were saved; start the run again.")


def test_the_command_reports_what_it_did(capsys):
    dead = running_import(task_id="", lease_owner="process on host pid 5")
    call_command("recover_jobs")
    assert capsys.readouterr().out.strip() == (
        f"0 job(s) queued again, 1 failed (claim import #{dead.pk}).")


def test_the_merge_and_shards_of_an_earlier_attempt_do_nothing(media_root):
    """The first worker-death test of a simulation failed the restarted run: the killed
    attempt's merge ran, found none of the new attempt's parts, and failed the run."""
    from simulation.services import simulation_run_finalize, simulation_shard_execute

    run = simulation_run(shards_total=2, task_ids=["start"])
    SimulationRun.objects.filter(pk=run.pk).update(attempts=2, heartbeat=timezone.now())

    assert simulation_run_finalize(run=run, attempt=1).status == JobStatus.RUNNING
    stale = simulation_shard_execute(run=run, shard=0, shards_total=2, trajectory_ids=[0], attempt=1)
    assert stale == {"shard": 0, "skipped": True, "stale_attempt": 1}
    run.refresh_from_db()
    assert run.status == JobStatus.RUNNING and run.error == ""
    # The current attempt's merge still judges the run: its shards wrote nothing.
    assert simulation_run_finalize(run=run, attempt=2).status == JobStatus.FAILED


def test_the_job_pages_say_a_job_was_started_again(client, django_user_model):
    from django.urls import reverse

    ada = django_user_model.objects.create_user("ada", password="x")
    client.force_login(ada)
    job = running_import(created_by=ada)
    page = lambda: client.get(reverse("annotation:claim-import-detail", args=[job.pk])).content  # noqa: E731

    assert b"started again" not in page() and b"Started" not in page()
    ClaimImport.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED)
    assert b"The worker running it stopped; it is queued to start again (attempt 2)." in page()
    ClaimImport.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, attempts=2)
    assert b"Started 2 times: the worker running it earlier stopped." in page()


def test_every_kind_of_job_is_recovered():
    """A new job table that recovery does not know would stay "running" forever after its
    worker died: every concrete `Job` model must be registered."""
    from django.apps import apps

    from core.jobs import Job
    from core.recovery import job_kinds

    tables = {model._meta.label for model in apps.get_models() if issubclass(model, Job)}
    assert {"annotation.ModelFit", "annotation.DataExport", "simulation.SimulationRun"} <= tables
    assert tables == {kind.model for kind in job_kinds()}


def test_an_abandoned_model_fit_is_fitted_again(django_capture_on_commit_callbacks, monkeypatch):
    from annotation.analysis import mixed_model
    from annotation.models import ModelFit
    from annotation.studies.services import study_create

    for name, value in (("CHAINS", 2), ("WARMUP", 100), ("DRAWS", 100)):
        monkeypatch.setattr(mixed_model, name, value)
    call_command("load_demo", no_user=True)
    study = study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name="fit", base_claims=8,
                         batch_size=6, raters_per_batch=2, seed=7)
    fit = ModelFit.objects.create(study=study, options={"seed": "0"}, options_key="k", data_version="v",
                                  status=JobStatus.RUNNING, task_id="dead-task", attempts=1,
                                  started=timezone.now() - LONG_AGO, heartbeat=timezone.now() - LONG_AGO)
    with django_capture_on_commit_callbacks(execute=True):  # the new task (eager here)
        outcome = jobs_recover()
    assert outcome.retried == [f"model fit #{fit.pk}"]
    fit.refresh_from_db()
    assert fit.status == JobStatus.SUCCEEDED and fit.attempts == 2 and fit.stage == "done"
    # no judgments yet: the fit ran and says why there is no model
    assert fit.result["fitted"] is False and fit.result["reason"] == "needs judgments in at least two framings"
