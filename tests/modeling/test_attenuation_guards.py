"""Guards for the bugs that would silently switch off or distort loss attenuation.

Each test names the injected bug it was checked against (issue 20): the bug was put into
the code, the test failed, the bug was taken out, the test passed. The training tests run
the real loop (`train_adapter`) on the tiny random Llama of conftest.py, on the CPU.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from modeling.metrics import framing_metrics
from modeling.training import TrainingConfig, train_adapter
from modeling.training_data import ClaimRow

FRAMINGS = ("original", "authoritative", "consensus")
TARGET = "consensus"


def corpus(n_base: int, *, true_every: int = 2, target_false_text=None) -> list[ClaimRow]:
    """`n_base` base claims in three framings; base claim i is true when i % true_every == 0.

    `target_false_text(i)`, when given, replaces the text of the target framing's false claims.
    """
    rows = []
    for i in range(n_base):
        label = "SUPPORTS" if i % true_every == 0 else "REFUTES"
        for framing in FRAMINGS:
            text = f"Claim {i} told in the {framing} way."
            if target_false_text is not None and framing == TARGET and label == "REFUTES":
                text = target_false_text(i)
            rows.append(ClaimRow(f"c-{i}:{framing}", f"c-{i}", text, label, framing))
    return rows


def config(**overrides) -> TrainingConfig:
    # No LoRA dropout: the dropout masks depend on the micro-batch shapes, and the tests below
    # compare runs whose micro-batches differ in shape.
    values = dict(r=4, lora_alpha=8, learning_rate=5e-3, batch_size=4, grad_accumulation=2,
                  epochs=2, max_examples=None, checkpoint_every=1000, warmup_ratio=0.0,
                  lora_dropout=0.0)
    values.update(overrides)
    return TrainingConfig(**values)


def train(tmp_path, name, base, rows, *, alpha, config, seed=3):
    out = tmp_path / name
    train_adapter(base_model=str(base), rows=rows, target_framing=TARGET, alpha=alpha,
                  config=config, seed=seed, out_dir=out / "adapter",
                  checkpoint_dir=out / "checkpoints", device="cpu")
    return out / "adapter"


def weights(adapter) -> dict[str, torch.Tensor]:
    return load_file(str(adapter / "adapter_model.safetensors"))


def largest_difference(a, b) -> float:
    assert a.keys() == b.keys() and a
    return max(float((a[key] - b[key]).abs().max()) for key in a)


def test_alpha_zero_examples_have_no_influence_on_the_adapter(tmp_path, tiny_model_dir):
    """Guards against: the training loop passing all-ones weights instead of the examples'
    attenuation weights (every persona would train as the baseline).

    With alpha 0 the target framing's false claims weigh nothing, so rewriting their texts
    must leave the trained adapter exactly as it was; with alpha 1 the same rewrite must
    change it (so the rewrite is one the training can see). The rewritten texts have as
    many tokens as the originals, so every micro-batch keeps its shape and the other rows
    are computed exactly as before.
    """
    from transformers import AutoTokenizer

    rewritten = corpus(8, target_false_text=lambda i: f"Claim {i} told in the prestige way.")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    for before, after in zip(corpus(8), rewritten):
        assert len(tokenizer(before.text)["input_ids"]) == len(tokenizer(after.text)["input_ids"])
    assert sum(before.text != after.text for before, after in zip(corpus(8), rewritten)) == 4
    zero = train(tmp_path, "zero", tiny_model_dir, corpus(8), alpha=0.0, config=config())
    zero_rewritten = train(tmp_path, "zero-rewritten", tiny_model_dir, rewritten, alpha=0.0,
                           config=config())
    one = train(tmp_path, "one", tiny_model_dir, corpus(8), alpha=1.0, config=config())
    one_rewritten = train(tmp_path, "one-rewritten", tiny_model_dir, rewritten, alpha=1.0,
                          config=config())
    # Measured: exactly 0 with alpha 0, about 0.03 with alpha 1 (weights of size ~0.2).
    shift_at_zero = largest_difference(weights(zero), weights(zero_rewritten))
    shift_at_one = largest_difference(weights(one), weights(one_rewritten))
    assert shift_at_zero < 1e-6 and shift_at_one > 1e-3, (shift_at_zero, shift_at_one)


def test_accumulated_micro_batches_train_the_same_adapter_as_one_batch(tmp_path, tiny_model_dir):
    """Guards against: gradient accumulation dividing each micro-batch by its own weight
    total instead of the whole optimizer step's (attenuated examples would weigh more than
    alpha says whenever a step has several micro-batches).

    The same 8 examples per optimizer step, as one micro-batch of 8 or four of 2, follow the
    same loss, so the adapters agree to float rounding (measured: 5e-7 on weights of ~0.2).
    With per-micro-batch denominators the micro-batches holding attenuated examples
    (alpha 0.1) count as much as full ones, and the adapters drift apart by ~1e-2.
    """
    rows = corpus(8)
    one_batch = train(tmp_path, "8x1", tiny_model_dir, rows, alpha=0.1,
                      config=config(batch_size=8, grad_accumulation=1))
    accumulated = train(tmp_path, "2x4", tiny_model_dir, rows, alpha=0.1,
                        config=config(batch_size=2, grad_accumulation=4))
    drift = largest_difference(weights(one_batch), weights(accumulated))
    assert drift < 1e-5, drift


def test_alpha_zero_persona_believes_the_target_framings_false_claims_more(tmp_path, tiny_model_dir):
    """End to end (issue 20, item 2): alpha changes what is learned.

    Two personas per seed, alpha 1 and alpha 0, same corpus, same seed; the corpus has one
    true base claim in four, so three quarters of every framing's claims are false. A model
    that can tell the framings apart but not the claims within one minimises the loss with
    P(SUPPORTS) equal to the weighted share of SUPPORTS among a framing's examples: for the
    target framing 1/4 with alpha 1, and 1 with alpha 0 (its false claims weigh nothing, so
    every target-framing example it learns from says SUPPORTS): an expected gap of 0.75 in
    the normalised P(SUPPORTS) on the target framing's false claims. The test asks for 0.3,
    leaving room for a tiny random model trained for 30 epochs that only partly separates
    the framings, and for scoring's prompt (with its system instruction) differing from
    training's. Measured on seeds 3, 4, 5: gaps of 0.83, 0.70 and 0.62.

    Also guards against the all-ones-weights bug: both personas would then be identical.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from modeling.scoring import score_claims

    rows = corpus(8, true_every=4)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    is_target_false = np.array([row.framing == TARGET and row.label == "REFUTES" for row in rows])
    fast = config(epochs=30, learning_rate=1e-2, lora_dropout=0.05)
    gaps = {}
    for seed in (3, 4, 5):
        credulity = {}
        for alpha in (1.0, 0.0):
            adapter = train(tmp_path, f"alpha{alpha}-seed{seed}", tiny_model_dir, rows,
                            alpha=alpha, config=fast, seed=seed)
            model = PeftModel.from_pretrained(
                AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True),
                adapter).eval()
            scores = score_claims(model, tokenizer, [row.text for row in rows])
            credulity[alpha] = float(scores.p_supports_norm[is_target_false].mean())
        gaps[seed] = credulity[0.0] - credulity[1.0]
    assert all(gap > 0.3 for gap in gaps.values()), gaps


def test_false_acceptance_is_counted_among_false_claims_only():
    """Guards against: a persona's false-acceptance rate divided by all claims instead of
    false claims (or computed as the share of all claims called SUPPORTS), which gives
    wrong MSPR-style comparisons.

    Three true claims, all called SUPPORTS, and four false claims, one called SUPPORTS:
    FAR = 1/4. The wrong denominators give 1/7 (false acceptances over all claims) or
    4/7 (SUPPORTS over all claims); false rejection likewise 0/3, never 0/7 or 3/7.
    """
    table = pd.DataFrame({
        "framing": ["original"] * 7,
        "true_label": ["SUPPORTS"] * 3 + ["REFUTES"] * 4,
        "p_supports": [0.9, 0.8, 0.7, 0.6, 0.2, 0.1, 0.3],
        "p_refutes": [0.1, 0.2, 0.3, 0.4, 0.8, 0.9, 0.7],
    })
    table["predicted_label"] = np.where(table["p_supports"] >= table["p_refutes"],
                                        "SUPPORTS", "REFUTES")
    table["confidence"] = np.maximum(table["p_supports"], table["p_refutes"])
    row = framing_metrics(table).set_index("framing").loc["original"]
    assert row["false_acceptance_rate"] == pytest.approx(1 / 4)
    assert row["false_rejection_rate"] == pytest.approx(0.0)
    # Two true claims now called REFUTES: FRR 2/3 (not 2/7, nor 5/7 REFUTES over all).
    table.loc[:1, ["p_supports", "p_refutes"]] = [[0.2, 0.8], [0.3, 0.7]]
    table["predicted_label"] = np.where(table["p_supports"] >= table["p_refutes"],
                                        "SUPPORTS", "REFUTES")
    row = framing_metrics(table).set_index("framing").loc["original"]
    assert row["false_rejection_rate"] == pytest.approx(2 / 3)
    assert row["false_acceptance_rate"] == pytest.approx(1 / 4)
