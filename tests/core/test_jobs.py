"""The one job model and its claim: every job table is a `Job`, and `job_claim` lets exactly
one caller move a queued row to running."""
from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from annotation.models import ClaimImport, DataExport
from core.jobs import FINISHED_STATUSES, Job, JobStatus, job_claim
from modeling.models import Persona, ScoreTable
from simulation.models import SimulationRun

JOB_MODELS = (ClaimImport, DataExport, Persona, ScoreTable, SimulationRun)


@pytest.mark.parametrize("model", JOB_MODELS, ids=lambda m: m.__name__)
def test_every_job_table_is_a_job_with_the_one_vocabulary(model):
    assert issubclass(model, Job) and model.Status is JobStatus
    field = model._meta.get_field("status")
    assert field.choices == JobStatus.choices and field.default == JobStatus.QUEUED
    for name in ("error", "created", "started", "finished"):
        assert model._meta.get_field(name).column == name


def test_the_columns_a_table_lacks_stay_absent():
    names = {model: {f.name for f in model._meta.get_fields()} for model in JOB_MODELS}
    assert "progress" not in names[ClaimImport] and "progress" not in names[DataExport]
    assert "task_id" not in names[SimulationRun] and "task_ids" in names[SimulationRun]
    assert all("task_id" in names[m] for m in (ClaimImport, DataExport, Persona, ScoreTable))


def job(**fields) -> ClaimImport:
    return ClaimImport.objects.create(dataset_name="d", files=[], **fields)


@pytest.mark.django_db
def test_a_queued_job_is_claimed_once():
    row = job()
    assert job_claim(ClaimImport.objects, row.pk) is True
    assert job_claim(ClaimImport.objects, row.pk) is False
    row.refresh_from_db()
    assert row.status == JobStatus.RUNNING and row.started is not None


@pytest.mark.django_db
def test_only_queued_rows_unless_also_admits_them():
    row = job(status=JobStatus.FAILED)
    assert not job_claim(ClaimImport.objects, row.pk)
    assert job_claim(ClaimImport.objects, row.pk, also=Q(status=JobStatus.FAILED))
    assert not job_claim(ClaimImport.objects, row.pk + 1000)


@pytest.mark.django_db
def test_the_queryset_narrows_and_updates_ride_along():
    row = job(skip_existing=True)
    assert not job_claim(ClaimImport.objects.filter(skip_existing=False), row.pk)
    earlier = timezone.now() - timedelta(days=1)
    assert job_claim(ClaimImport.objects.filter(skip_existing=True), row.pk, started=earlier,
                     error="")
    row.refresh_from_db()
    assert row.status == JobStatus.RUNNING and row.started == earlier


def test_finished_statuses():
    assert set(FINISHED_STATUSES) == {"succeeded", "failed", "cancelled"}
    assert ClaimImport(status=JobStatus.FAILED).is_finished
    assert not SimulationRun(status=JobStatus.RUNNING).is_finished
