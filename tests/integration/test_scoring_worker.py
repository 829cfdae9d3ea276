"""Scoring runs on a real Celery worker process (the `models` queue), end to end.

The worker is a separate process with its own settings, database connection and model
loading: it finds the persona's base model and adapter from the row alone, writes the
Parquet file where the web process reads it, and records the outcome on the row. The
scores it writes must be the ones this process computes for the same persona.
"""
import io
import time

import numpy as np
import pandas as pd
import pytest
import torch
from django.core.management import call_command

from annotation.models import Dataset
from core.jobs import JobStatus
from modeling.models import Persona, ScoreTable
from modeling.persona_models import load_persona_model
from modeling.score_services import (
    framed_claim_rows,
    score_frame,
    score_table_create,
    score_table_enqueue,
    score_table_load,
)
from tests.modeling.conftest import save_tiny_model

# About 40 s: the worker imports torch and transformers and loads the model before it scores.
pytestmark = pytest.mark.slow
TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def wait_for_table(table_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        table = ScoreTable.objects.get(pk=table_id)
        if table.status in TERMINAL:
            return table
        time.sleep(0.25)
    raise AssertionError(f"score table {table_id} still {table.status} after {timeout} s")


@pytest.fixture
def adapter_persona(celery_worker_process, settings, tmp_path):
    """A persona with a random non-zero LoRA adapter on a tiny model, stored under the
    MEDIA_ROOT the worker was started with."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base_dir = save_tiny_model(tmp_path / "tiny-llama")
    base = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True)
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, init_lora_weights=False,
                                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    model.save_pretrained(settings.MEDIA_ROOT / "adapters" / "tiny")
    return Persona.objects.create(name="tiny authoritative", base_model=str(base_dir),
                                  target_framing="authoritative", alpha=0.3,
                                  status=JobStatus.SUCCEEDED, adapter_dir="adapters/tiny")


def test_a_score_table_is_scored_by_the_worker(adapter_persona):
    from modeling.tasks import run_score_table

    call_command("load_demo", no_user=True, stdout=io.StringIO())
    dataset = Dataset.objects.get(name="FrameLab demo")
    table = score_table_create(persona=adapter_persona, dataset=dataset, split="test")
    score_table_enqueue(score_table=table)  # autocommit here: sent at once

    table = wait_for_table(table.pk)

    assert table.status == JobStatus.SUCCEEDED, table.error
    assert table.task_id and table.rows == 36 and table.progress == 1.0
    assert table.provenance["adapter_dir"] == "adapters/tiny"
    from_worker = score_table_load(table)
    # The same persona scored here, in this process, gives the same table.
    torch.set_num_threads(1)
    claims = framed_claim_rows(dataset=dataset, split="test")
    model, tokenizer = load_persona_model(adapter_persona, device="cpu")
    here = score_frame(model=model, tokenizer=tokenizer, claims=claims)
    assert list(from_worker["framed_claim_id"]) == list(here["framed_claim_id"])
    assert list(from_worker["predicted_label"]) == list(here["predicted_label"])
    for column in ("p_supports", "p_refutes", "p_supports_norm", "confidence"):
        np.testing.assert_allclose(from_worker[column], here[column], rtol=1e-5, atol=1e-9)
    pd.testing.assert_series_equal(from_worker["claim_id"], here["claim_id"])
    # A duplicated message for the finished table finds it taken and changes nothing.
    duplicate = run_score_table.delay(table.pk).get(timeout=60)
    assert duplicate == {"score_table": table.pk, "status": JobStatus.SUCCEEDED, "skipped": True}
    assert ScoreTable.objects.get(pk=table.pk).finished == table.finished
