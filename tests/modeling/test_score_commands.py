"""score_claims, compare_personas and calibrate_persona end to end on the demo, with tiny models."""
import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation.models import Dataset, FramedClaim, Study
from annotation.studies.services import study_create
from core.jobs import JobStatus
from modeling.models import Calibration, Persona, ScoreTable
from modeling.score_services import base_persona_name
from tests.annotation.test_human_profile import fill_study

pytestmark = pytest.mark.django_db
DEMO = "FrameLab demo"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def demo(media_root):
    call_command("load_demo", no_user=True, stdout=io.StringIO())
    return Dataset.objects.get(name=DEMO)


@pytest.fixture
def adapter_persona(tiny_model_dir, media_root):
    """A 'trained' persona: a random (non-zero) LoRA adapter on the tiny model."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True)
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, init_lora_weights=False,
                                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    model.save_pretrained(media_root / "adapters" / "tiny")
    return Persona.objects.create(name="tiny authoritative", base_model=str(tiny_model_dir),
                                  target_framing="authoritative", alpha=0.3,
                                  status=JobStatus.SUCCEEDED, adapter_dir="adapters/tiny")


def run(*args, **options):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def test_score_compare_and_calibrate_from_the_command_line(demo, adapter_persona, tiny_model_dir,
                                                           media_root):
    output = run("score_claims", base_model=str(tiny_model_dir), dataset=DEMO, split="test",
                 batch_size=16, no_progress=True)
    assert "scored 36 framed claims" in output
    base = Persona.objects.get(name=base_persona_name(str(tiny_model_dir)))
    assert base.is_base
    table = ScoreTable.objects.get(persona=base, dataset=demo, split="test")
    assert table.status == JobStatus.SUCCEEDED and table.rows == 36
    frame = pd.read_parquet(media_root / table.path)
    assert list(frame.columns) == [
        "claim_id", "framed_claim_id", "base_id", "framing", "true_label", "p_supports",
        "p_refutes", "p_supports_norm", "predicted_label", "confidence"]
    expected = FramedClaim.objects.filter(base_claim__dataset=demo, base_claim__split="test")
    assert sorted(frame["framed_claim_id"]) == sorted(expected.values_list("pk", flat=True))
    assert set(frame["predicted_label"]) <= {"SUPPORTS", "REFUTES"}
    assert frame["p_supports_norm"].between(0, 1).all()
    one = expected.select_related("base_claim").first()
    assert frame.set_index("framed_claim_id").loc[one.pk, "claim_id"] == one.claim_id

    run("score_claims", "--persona", adapter_persona.name, dataset=DEMO, split="test",
        no_progress=True)
    alone = pd.read_parquet(media_root / ScoreTable.objects.get(persona=adapter_persona).path)
    # Both personas of the tiny base model in one pass, adapters mixed within batches.
    output = run("score_claims", "--persona", adapter_persona.name, "--persona", str(base.pk),
                 dataset=DEMO, split="test", batch_size=7, no_progress=True)
    assert "with 2 personas together" in output
    together = pd.read_parquet(media_root / ScoreTable.objects.get(persona=adapter_persona).path)
    np.testing.assert_allclose(together["p_supports"], alone["p_supports"], rtol=1e-5, atol=1e-9)
    base_again = pd.read_parquet(media_root / ScoreTable.objects.get(persona=base).path)
    np.testing.assert_allclose(base_again["p_refutes"], frame["p_refutes"], rtol=1e-5, atol=1e-9)
    assert not np.allclose(together["p_supports"], base_again["p_supports"])
    report = json.loads(run("compare_personas", str(base.pk), adapter_persona.name,
                            dataset=DEMO, split="test", format="json"))
    personas = {row["persona"] for row in report["rows"]}
    assert personas == {base.name, adapter_persona.name}
    assert {row["framing"] for row in report["rows"]} >= {"original", "authoritative", "all"}
    text = run("compare_personas", base.name, adapter_persona.name, dataset=DEMO, split="test")
    assert "bal_acc" in text and "mspr_norm" in text and adapter_persona.name in text
    assert f"{adapter_persona.name} minus {base.name}, claim for claim" in text and "vs_others" in text
    assert report["differences_from"] == base.name
    differences = {row["framing"]: row for row in report["differences"][adapter_persona.name]}
    by_persona = {(row["persona"], row["framing"]): row for row in report["rows"]}
    assert differences["authoritative"]["mspr"] == pytest.approx(
        by_persona[(adapter_persona.name, "authoritative")]["mspr"] - by_persona[(base.name, "authoritative")]["mspr"])
    with_intervals = json.loads(run("compare_personas", base.name, dataset=DEMO, split="test",
                                    format="json", bootstrap=50))
    for row in with_intervals["rows"]:
        if row["mspr_low"] is not None:
            assert row["mspr_low"] <= row["mspr"] <= row["mspr_high"]

    study = study_create(dataset=demo, name="calibration study", base_claims=6, batch_size=6,
                         raters_per_batch=2, seed=5, status=Study.Status.OPEN)
    fill_study(study, 12, lambda claim: (
        claim.base_claim.true_label == "SUPPORTS" or claim.framing == "authoritative", 4, 3))
    result = json.loads(run("calibrate_persona", "--persona", adapter_persona.name,
                            "--persona", base.name, "--study", study.name, "--method", "platt",
                            "--format", "json", "--no-progress"))
    assert len(result["calibrations"]) == 2
    assert result["nearest_to_humans"] in {adapter_persona.name, base.name}
    calibration = Calibration.objects.get(persona=adapter_persona, study=study)
    assert calibration.method == "platt"
    stored = calibration.result
    assert stored["n_items"] == 36 and stored["n_judgments"] == 72
    assert set(stored["parameters"]["per_framing"]) == {
        "original", "authoritative", "consensus", "emotional", "prestige", "sensationalist"}
    rates = {row["framing"]: row for row in stored["before"]["rates"]}
    assert rates["authoritative"]["false_acceptance_human"] == 1.0
    assert rates["original"]["false_acceptance_human"] == 0.0
    # Items of the test split were reused from the score table; the rest were scored now.
    origin = stored["scores_origin"]
    assert origin["items"] == 36 and origin["reused"] + origin["scored"] == 36
    assert (media_root / stored["scores_file"]).is_file()

    text = run("calibrate_persona", "--persona", str(base.pk), "--study", str(study.pk),
               "--no-progress")
    assert "false acceptance" in text and "Wasserstein-1" in text
    # It says which raters counted, by the report's exclusion rules (all 12 answered with care).
    assert "raters counted: 12 of 12 (72 of 72 judgments); exclusions applied (removed) - persona:" in text
    assert stored["raters"]["exclusions"]["policy"]["rules"][-1] == "design-violations"
    # --exclusions chooses the rules, as for analyze_study; a bad rule is named.
    text = run("calibrate_persona", "--persona", str(base.pk), "--study", str(study.pk),
               "--no-progress", "--exclusions", "status")
    assert "not applied: attention, fast, design-violations" in text
    with pytest.raises(CommandError, match="parameter 'exclusions': value 'nope'"):
        run("calibrate_persona", "--persona", str(base.pk), "--study", str(study.pk), "--exclusions", "nope")


def test_commands_refuse_bad_references(demo):
    with pytest.raises(CommandError, match="no persona with id or name 'nobody'"):
        run("score_claims", "--persona", "nobody", dataset=DEMO)
    with pytest.raises(CommandError, match="--batch-size must be at least 1"):
        run("score_claims", "--persona", "x", dataset=DEMO, batch_size=0)
    with pytest.raises(CommandError, match="no scores of"):
        Persona.objects.create(name="unscored", is_base=True, status=JobStatus.SUCCEEDED)
        run("compare_personas", "unscored", dataset=DEMO)


def test_pages_score_from_the_web_and_show_metrics_comparison_and_calibration(
        demo, adapter_persona, client, django_user_model, django_capture_on_commit_callbacks):
    user = django_user_model.objects.create_user("researcher", password="pw")
    client.force_login(user)
    page = reverse("modeling:persona-metrics", args=[adapter_persona.pk])
    assert client.get(page).status_code == 200

    # Scoring started from the page runs as a Celery task (eager in the tests).
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("modeling:persona-score", args=[adapter_persona.pk]),
                               {"dataset": demo.pk, "split": "dev"})
    assert response.status_code == 302
    table = ScoreTable.objects.get(persona=adapter_persona, split="dev")
    assert table.status == JobStatus.SUCCEEDED and table.rows == 36

    body = client.get(page).content.decode()
    assert "Balanced accuracy" in body and "authoritative" in body
    plot = client.get(reverse("modeling:persona-metrics-plot", args=[table.pk, "png"]))
    assert plot["Content-Type"] == "image/png" and plot.content[:4] == b"\x89PNG"
    csv = client.get(reverse("modeling:score-table-download", args=[table.pk, "csv"]))
    assert csv.content.decode().startswith("claim_id,framed_claim_id,base_id")

    compare = client.get(reverse("modeling:persona-compare"), {"dataset": demo.pk, "split": "dev"})
    assert compare.status_code == 200 and adapter_persona.name in compare.content.decode()
    svg = client.get(reverse("modeling:persona-compare-plot", args=["svg"]),
                     {"dataset": demo.pk, "split": "dev", "metric": "mspr"})
    assert svg["Content-Type"] == "image/svg+xml"

    study = study_create(dataset=demo, name="web study", base_claims=6, batch_size=6,
                         raters_per_batch=1, seed=2, status=Study.Status.OPEN, owner=user)
    fill_study(study, 6, lambda claim: (claim.base_claim.true_label == "SUPPORTS", 5, 2))
    response = client.post(reverse("modeling:calibration-new", args=[adapter_persona.pk]),
                           {"study": study.pk, "method": "temperature"})
    assert response.status_code == 302
    calibration = Calibration.objects.get(persona=adapter_persona, study=study)
    detail = client.get(reverse("modeling:calibration-detail", args=[calibration.pk]))
    assert detail.status_code == 200 and "False acceptance" in detail.content.decode()
    exported = client.get(reverse("modeling:calibration-export", args=[calibration.pk, "json"]))
    assert json.loads(exported.content)["result"]["method"] == "temperature"
    plot = client.get(reverse("modeling:calibration-plot", args=[calibration.pk, "png"]))
    assert plot.content[:4] == b"\x89PNG"

    # Another researcher does not see a calibration against a study they cannot see.
    other = django_user_model.objects.create_user("other", password="pw")
    client.force_login(other)
    assert client.get(reverse("modeling:calibration-detail", args=[calibration.pk])).status_code == 404


def test_a_cancelled_or_failed_scoring_leaves_no_file_and_says_why(demo, adapter_persona, media_root):
    from modeling.score_services import (
        score_table_create,
        score_table_request_cancel,
        score_table_run,
    )

    table = score_table_create(persona=adapter_persona, dataset=demo, split="train")
    score_table_request_cancel(score_table=table)
    table = score_table_run(score_table=table, batch_size=8)
    assert table.status == JobStatus.CANCELLED and table.path == "" and table.rows == 0
    assert not (media_root / "scores").exists() or not any((media_root / "scores").rglob("*.parquet"))

    broken = Persona.objects.create(name="no files", base_model=adapter_persona.base_model,
                                    status=JobStatus.SUCCEEDED, adapter_dir="adapters/missing")
    with pytest.raises(CommandError, match="adapter folder .* is missing"):
        run("score_claims", "--persona", broken.name, dataset=DEMO, split="test", no_progress=True)
    failed = ScoreTable.objects.get(persona=broken)
    assert failed.status == JobStatus.FAILED and "adapter folder" in failed.error and failed.path == ""
