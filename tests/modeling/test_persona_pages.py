"""Personas end to end on a tiny model: the service, the command, the Celery task, the pages."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from django.core.management import CommandError, call_command
from django.urls import reverse
from safetensors.torch import load_file

from annotation.models import BaseClaim, Dataset, FramedClaim
from core.jobs import JobStatus
from modeling.models import Persona
from modeling.services import (
    PersonaError,
    persona_create,
    persona_request_cancel,
    persona_train,
)

pytestmark = pytest.mark.django_db

FRAMINGS = ("original", "authoritative", "consensus")
FAST = {"r": 4, "lora_alpha": 8, "batch_size": 4, "grad_accumulation": 2, "epochs": 2,
        "max_examples": None, "checkpoint_every": 2, "learning_rate": 1e-2}


@pytest.fixture
def dataset(db):
    dataset = Dataset.objects.create(name="tiny facts")
    for i in range(10):
        split = "train" if i < 8 else "test"
        label = "SUPPORTS" if i % 2 == 0 else "REFUTES"
        base = BaseClaim.objects.create(dataset=dataset, external_id=f"t-{i}", true_label=label,
                                        split=split)
        for framing in FRAMINGS:
            FramedClaim.objects.create(base_claim=base, framing=framing,
                                       text=f"Claim {i} told in the {framing} way.")
    # A restatement that failed verification is not trained on.
    FramedClaim.objects.create(base_claim=BaseClaim.objects.get(external_id="t-1"),
                               framing="emotional", text="Claim 1, sadly.", verification="failed")
    return dataset


def make_persona(dataset, tiny_model_dir, **overrides):
    values = dict(name="auth 0.3", dataset=dataset, target_framing="authoritative", alpha=0.3,
                  base_model=str(tiny_model_dir), hyperparameters=FAST, seed=1)
    values.update(overrides)
    return persona_create(**values)


def test_training_a_persona_records_adapter_curve_and_provenance(dataset, tiny_model_dir, media_root):
    persona = persona_train(persona_id=make_persona(dataset, tiny_model_dir).pk, device="cpu")
    assert persona.status == JobStatus.SUCCEEDED
    assert persona.adapter_dir == f"personas/{persona.pk}/adapter"
    assert (media_root / persona.adapter_dir / "adapter_model.safetensors").is_file()
    assert not (media_root / f"personas/{persona.pk}/checkpoints").exists()
    assert persona.progress == 1.0 and persona.steps_done == persona.steps_total == 6
    assert [point["step"] for point in persona.loss_curve] == list(range(1, 7))
    provenance = persona.provenance
    assert provenance["examples"] == 24  # 8 train base claims x 3 framings, failed one left out
    counts = provenance["counts"]
    assert counts["by_framing_and_label"]["authoritative/REFUTES"] == 4
    assert counts["attenuated_examples_before_subsampling"] == 4
    assert provenance["versions"]["torch"] == torch.__version__
    assert provenance["device"] == "cpu" and len(provenance["git_commit"]) in (0, 40)
    assert persona.hyperparameters["r"] == 4 and persona.hyperparameters["lora_dropout"] == 0.05
    # Running it again does nothing: a finished persona is not retrained.
    assert persona_train(persona_id=persona.pk) is None


@pytest.mark.parametrize("field, value, message", [
    ("alpha", 1.5, "field 'alpha': value 1.5"),
    ("target_framing", "sarcastic", "field 'target_framing': value 'sarcastic'"),
    ("split", "dev", "no claims in split 'dev'"),
    ("base_model", "/no/such/model", "field 'base_model'"),
    ("hyperparameters", {"rank": 3}, "unknown hyperparameter"),
])
def test_bad_input_is_refused_naming_the_field(dataset, tiny_model_dir, field, value, message):
    with pytest.raises(PersonaError, match=message.replace("(", r"\(")):
        make_persona(dataset, tiny_model_dir, **{field: value})
    assert not Persona.objects.exists()


def test_duplicate_name_is_refused(dataset, tiny_model_dir):
    make_persona(dataset, tiny_model_dir)
    with pytest.raises(PersonaError, match="exists already"):
        make_persona(dataset, tiny_model_dir)


def test_a_crash_leaves_the_persona_failed_and_resumable_to_the_same_adapter(
        dataset, tiny_model_dir, media_root):
    reference = persona_train(persona_id=make_persona(dataset, tiny_model_dir, name="ref").pk,
                              device="cpu")
    crashing = make_persona(dataset, tiny_model_dir, name="crash")

    def crash_after_three(report):
        if report.step == 3:
            raise KeyError("worker lost")

    with pytest.raises(KeyError):
        persona_train(persona_id=crashing.pk, on_step=crash_after_three, device="cpu")
    crashing.refresh_from_db()
    assert crashing.status == JobStatus.FAILED and crashing.adapter_dir == ""
    assert "worker lost" in crashing.error
    assert (media_root / f"personas/{crashing.pk}/checkpoints/step-0000002").is_dir()
    out = io.StringIO()
    call_command("train_persona", "--resume", "crash", "--quiet", stdout=out)
    crashing.refresh_from_db()
    assert crashing.status == JobStatus.SUCCEEDED and crashing.provenance["resumed_from_step"] == 2
    assert crashing.loss_curve == reference.loss_curve
    a = load_file(str(media_root / reference.adapter_dir / "adapter_model.safetensors"))
    b = load_file(str(media_root / crashing.adapter_dir / "adapter_model.safetensors"))
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_cancel_stops_a_running_training_cleanly(dataset, tiny_model_dir, media_root):
    persona = make_persona(dataset, tiny_model_dir)

    def cancel_after_two(report):
        if report.step == 2:
            persona_request_cancel(persona=Persona.objects.get(pk=persona.pk))

    persona = persona_train(persona_id=persona.pk, on_step=cancel_after_two, device="cpu")
    assert persona.status == JobStatus.CANCELLED and persona.adapter_dir == ""
    assert persona.steps_done == 2  # stopped at the next step boundary
    assert "--resume" in persona.error


def test_a_running_persona_is_taken_over_only_when_silent_or_forced(
        client, researcher, dataset, tiny_model_dir, media_root):
    from datetime import timedelta

    from django.utils import timezone

    persona = make_persona(dataset, tiny_model_dir)
    now = timezone.now()
    Persona.objects.filter(pk=persona.pk).update(status=JobStatus.RUNNING, started=now,
                                                 heartbeat=now)
    assert persona_train(persona_id=persona.pk, resume=True) is None
    with pytest.raises(CommandError, match="a worker may still be training it"):
        call_command("train_persona", "--resume", str(persona.pk))
    page = client.get(reverse("modeling:persona-detail", args=[persona.pk])).content.decode()
    assert "its worker has most likely stopped" not in page
    # Silent for eleven minutes: presumed dead, shown as such, and resumable.
    Persona.objects.filter(pk=persona.pk).update(heartbeat=now - timedelta(minutes=11))
    page = client.get(reverse("modeling:persona-detail", args=[persona.pk])).content.decode()
    assert "its worker has most likely stopped" in page and f"--resume {persona.pk}" in page
    call_command("train_persona", "--resume", str(persona.pk), "--quiet", stdout=io.StringIO())
    persona.refresh_from_db()
    assert persona.status == JobStatus.SUCCEEDED and not persona.is_stale


def test_cancelling_a_queued_persona_cancels_it_at_once(dataset, tiny_model_dir):
    persona = make_persona(dataset, tiny_model_dir)
    assert persona_request_cancel(persona=persona)
    persona.refresh_from_db()
    assert persona.status == JobStatus.CANCELLED
    assert persona_train(persona_id=persona.pk) is None


def test_succeeded_without_an_adapter_is_impossible(dataset):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Persona.objects.create(name="x", dataset=dataset, status=JobStatus.SUCCEEDED)


def test_train_persona_command(dataset, tiny_model_dir, media_root):
    out = io.StringIO()
    call_command("train_persona", "--dataset", "tiny facts", "--target-framing", "consensus",
                 "--alpha", "0.5", "--base-model", str(tiny_model_dir), "--epochs", "1",
                 "--batch-size", "8", "--grad-accumulation", "1", "--lora-r", "4",
                 "--max-examples", "12", "--seed", "3", "--quiet", stdout=out)
    persona = Persona.objects.get()
    assert persona.name == "tiny facts consensus a0.5 s3"
    assert persona.status == JobStatus.SUCCEEDED and persona.provenance["examples"] == 12
    assert persona.steps_total == 2
    assert "succeeded: 2 steps, 12 examples" in out.getvalue()


def test_train_persona_command_errors_name_the_problem(dataset):
    with pytest.raises(CommandError, match="no dataset named 'nope'"):
        call_command("train_persona", "--dataset", "nope")
    with pytest.raises(CommandError, match="field 'alpha'"):
        call_command("train_persona", "--dataset", "tiny facts", "--alpha", "2")
    with pytest.raises(CommandError, match="no persona"):
        call_command("train_persona", "--resume", "404")


@pytest.fixture
def researcher(client, django_user_model):
    user = django_user_model.objects.create_user("res", password="pw")
    client.force_login(user)
    return user


def test_pages_create_train_and_show_a_persona(client, researcher, dataset, tiny_model_dir,
                                               media_root, django_capture_on_commit_callbacks):
    assert client.get(reverse("modeling:persona-list")).status_code == 200
    assert client.get(reverse("modeling:persona-new")).status_code == 200
    form = {"name": "web persona", "dataset": dataset.pk, "split": "train",
            "target_framing": "authoritative", "alpha": "0.3", "base_model": str(tiny_model_dir),
            "seed": "0", "max_examples": "12", "epochs": "1", "learning_rate": "0.01",
            "batch_size": "6", "grad_accumulation": "1"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("modeling:persona-new"), form)
    persona = Persona.objects.get(name="web persona")
    assert response.status_code == 302
    assert response["Location"] == reverse("modeling:persona-detail", args=[persona.pk])
    # Test settings run the Celery task eagerly: it has trained by now.
    assert persona.status == JobStatus.SUCCEEDED and persona.created_by == researcher
    page = client.get(response["Location"]).content.decode()
    assert "succeeded" in page and "http-equiv=\"refresh\"" not in page
    assert reverse("modeling:persona-metrics", args=[persona.pk]) in page
    assert reverse("modeling:persona-loss-plot", args=[persona.pk, "png"]) in page
    png = client.get(reverse("modeling:persona-loss-plot", args=[persona.pk, "png"]))
    assert png["Content-Type"] == "image/png" and png.content.startswith(b"\x89PNG")
    svg = client.get(reverse("modeling:persona-loss-plot", args=[persona.pk, "svg"]))
    assert b"<svg" in svg.content
    assert client.get(reverse("modeling:persona-loss-plot", args=[persona.pk, "gif"])).status_code == 404
    assert "web persona" in client.get(reverse("modeling:persona-list")).content.decode()


def test_running_persona_page_refreshes_and_offers_cancel(client, researcher, dataset, tiny_model_dir):
    persona = make_persona(dataset, tiny_model_dir)
    Persona.objects.filter(pk=persona.pk).update(status=JobStatus.RUNNING, progress=0.25,
                                                 steps_done=5, steps_total=20, eta_seconds=90)
    page = client.get(reverse("modeling:persona-detail", args=[persona.pk])).content.decode()
    assert 'http-equiv="refresh"' in page and "step 5 of 20" in page and "about 90 s left" in page
    assert 'value="25.0"' in page and "Cancel training" in page
    response = client.post(reverse("modeling:persona-cancel", args=[persona.pk]))
    assert response.status_code == 302
    persona.refresh_from_db()
    assert persona.cancel_requested and persona.status == JobStatus.RUNNING


def test_form_errors_are_shown(client, researcher, dataset, tiny_model_dir):
    form = {"name": "bad", "dataset": dataset.pk, "split": "dev", "target_framing": "",
            "alpha": "1", "base_model": str(tiny_model_dir), "seed": "0", "epochs": "1",
            "learning_rate": "0.01", "batch_size": "6", "grad_accumulation": "1"}
    response = client.post(reverse("modeling:persona-new"), form)
    assert response.status_code == 200
    assert "no claims in split" in response.content.decode()
    assert not Persona.objects.exists()


def test_pages_need_a_login(client):
    response = client.get(reverse("modeling:persona-list"))
    assert response.status_code == 302 and "login" in response["Location"]


def test_sweep_alpha_trains_scores_and_plots(dataset, tiny_model_dir, media_root, tmp_path):
    import csv

    out = io.StringIO()
    args = ["sweep_alpha", "--dataset", "tiny facts", "--target-framing", "authoritative",
            "--alphas", "1.0,0.0", "--base-model", str(tiny_model_dir), "--epochs", "1",
            "--batch-size", "8", "--grad-accumulation", "1", "--lora-r", "4",
            "--max-examples", "12", "--out", str(tmp_path / "sweep"), "--quiet"]
    call_command(*args, stdout=out)
    personas = list(Persona.objects.order_by("-alpha"))
    assert [p.alpha for p in personas] == [1.0, 0.0]
    assert all(p.status == JobStatus.SUCCEEDED for p in personas)
    # The personas differ in alpha only.
    assert personas[0].hyperparameters == personas[1].hyperparameters
    assert personas[0].seed == personas[1].seed and personas[0].target_framing == "authoritative"
    with open(tmp_path / "sweep" / "sweep.csv") as handle:
        rows = list(csv.DictReader(handle))
    # 2 alphas x (3 framings + all), scored on the 2 test base claims.
    assert len(rows) == 8 and {row["framing"] for row in rows} == {*FRAMINGS, "all"}
    assert all(0.0 <= float(row["mspr"]) <= 1.0 for row in rows)
    assert (tmp_path / "sweep" / "sweep.png").read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in (tmp_path / "sweep" / "sweep.svg").read_bytes()
    assert "MSPR target" in out.getvalue()
    # Run again: the trained personas are reused, not retrained.
    again = io.StringIO()
    call_command(*args, stdout=again)
    assert again.getvalue().count("reusing persona") == 2 and Persona.objects.count() == 2


def test_sweep_alpha_refuses_bad_alphas(dataset, tmp_path):
    with pytest.raises(CommandError, match="outside 0..1"):
        call_command("sweep_alpha", "--dataset", "tiny facts", "--target-framing", "consensus",
                     "--alphas", "1,2", "--out", str(tmp_path))
    with pytest.raises(CommandError, match="'x' is not a number"):
        call_command("sweep_alpha", "--dataset", "tiny facts", "--target-framing", "consensus",
                     "--alphas", "1,x", "--out", str(tmp_path))


from tests.integration.conftest import celery_worker_process  # noqa: E402,F401  (a fixture)


# Not marked slow: it guards data integrity and takes about 40 s (issue 20: the default run
# keeps such tests unless one takes more than a minute).
def test_a_killed_worker_leaves_the_persona_resumable_never_succeeded(
        celery_worker_process, tiny_model_dir, settings):  # noqa: F811
    """SIGKILL the Celery worker mid-training; the row must not claim success, and the
    command resumes it from the last checkpoint the worker wrote."""
    import time

    dataset = Dataset.objects.create(name="kill test")
    for i in range(8):
        base = BaseClaim.objects.create(dataset=dataset, external_id=f"k-{i}", split="train",
                                        true_label="SUPPORTS" if i % 2 else "REFUTES")
        for framing in FRAMINGS:
            FramedClaim.objects.create(base_claim=base, framing=framing, text=f"Claim {i} {framing}.")
    persona = make_persona(dataset, tiny_model_dir, hyperparameters={**FAST, "epochs": 60})
    from modeling.services import persona_start

    persona_start(persona=persona)  # autocommit: sent at once, to the models queue
    media = Path(settings.MEDIA_ROOT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        persona.refresh_from_db()
        checkpoints = list((media / f"personas/{persona.pk}/checkpoints").glob("step-*"))
        if persona.status == JobStatus.RUNNING and persona.steps_done >= 4 and checkpoints:
            break
        assert persona.status in (JobStatus.QUEUED, JobStatus.RUNNING), persona.error
        time.sleep(0.2)
    else:
        pytest.fail(f"the worker did not get going: {persona.status}, {persona.steps_done} steps")
    celery_worker_process.kill()
    celery_worker_process.wait(timeout=30)
    persona.refresh_from_db()
    assert persona.status == JobStatus.RUNNING and persona.adapter_dir == ""
    assert persona.steps_done < persona.steps_total
    assert not (media / f"personas/{persona.pk}/adapter").exists()
    # It reported progress moments ago, so a plain resume refuses; the researcher knows better.
    with pytest.raises(CommandError, match="a worker may still be training it"):
        call_command("train_persona", "--resume", str(persona.pk), "--quiet")
    call_command("train_persona", "--resume", str(persona.pk), "--force", "--quiet",
                 stdout=io.StringIO())
    persona.refresh_from_db()
    assert persona.status == JobStatus.SUCCEEDED
    assert persona.provenance["resumed_from_step"] >= 2
    assert (media / persona.adapter_dir / "adapter_model.safetensors").is_file()
