"""Persona training on a tiny random Llama: masking, padding, determinism, resume, cancel."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from modeling.loss import IGNORE_INDEX, weighted_loss_parts, weighted_token_loss
from modeling.training import (
    TrainingCancelled,
    TrainingConfig,
    checkpoint_folders,
    latest_checkpoint,
    train_adapter,
)
from modeling.training_data import (
    ClaimRow,
    collate,
    encode_chat_pair,
    encode_examples,
    optimizer_steps,
    select_rows,
)

FRAMINGS = ("original", "authoritative", "consensus")


def claim_rows(n_base: int = 8) -> list[ClaimRow]:
    rows = []
    for i in range(n_base):
        label = "SUPPORTS" if i % 2 == 0 else "REFUTES"
        for framing in FRAMINGS:
            text = f"Claim {i} told in the {framing} way." + (" Experts agree." * (i % 3))
            rows.append(ClaimRow(f"c-{i}:{framing}", f"c-{i}", text, label, framing))
    return rows


def fast_config(**overrides) -> TrainingConfig:
    values = dict(r=4, lora_alpha=8, learning_rate=5e-3, batch_size=4, grad_accumulation=2,
                  epochs=2, max_examples=None, checkpoint_every=2, warmup_ratio=0.0)
    values.update(overrides)
    return TrainingConfig(**values)


def test_label_mask_covers_exactly_the_label_tokens_and_one_eos(tiny_tokenizer):
    for label in ("SUPPORTS", "REFUTES"):
        input_ids, labels = encode_chat_pair(tiny_tokenizer, "Paris is the capital of France.", label)
        prompt = tiny_tokenizer.apply_chat_template(
            [{"role": "user", "content": "Paris is the capital of France."}],
            add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        label_ids = tiny_tokenizer(label, add_special_tokens=False)["input_ids"]
        assert input_ids[: len(prompt)] == list(prompt)
        supervised = [token for token in labels if token != IGNORE_INDEX]
        assert supervised == label_ids + [tiny_tokenizer.eos_token_id]
        assert labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
        assert input_ids[len(prompt):] == supervised
        assert supervised.count(tiny_tokenizer.eos_token_id) == 1


def test_examples_carry_the_attenuation_weight(tiny_tokenizer):
    examples, too_long = encode_examples(tiny_tokenizer, claim_rows(4), target_framing="consensus",
                                         alpha=0.25, max_length=256)
    assert too_long == []
    weights = {example.claim_id: example.weight for example in examples}
    assert {cid for cid, w in weights.items() if w != 1.0} == {"c-1:consensus", "c-3:consensus"}
    assert weights["c-1:consensus"] == 0.25


def test_examples_longer_than_max_length_are_reported_not_truncated(tiny_tokenizer):
    rows = claim_rows(2)
    lengths = [len(encode_chat_pair(tiny_tokenizer, row.text, row.label)[0]) for row in rows]
    limit = sorted(lengths)[len(lengths) // 2]
    examples, too_long = encode_examples(tiny_tokenizer, rows, target_framing="", alpha=1.0,
                                         max_length=limit)
    assert len(examples) + len(too_long) == len(rows)
    assert too_long and all(len(example) <= limit for example in examples)


def test_dynamic_padding_pads_to_the_longest_in_the_batch(tiny_tokenizer):
    examples, _ = encode_examples(tiny_tokenizer, claim_rows(3), target_framing="", alpha=1.0,
                                  max_length=256)
    batch = collate(examples[:4], pad_token_id=tiny_tokenizer.pad_token_id)
    longest = max(len(example) for example in examples[:4])
    assert batch["input_ids"].shape == (4, longest)
    for row, example in enumerate(examples[:4]):
        n = len(example)
        assert batch["attention_mask"][row].sum() == n
        assert torch.all(batch["labels"][row, n:] == IGNORE_INDEX)
        assert batch["input_ids"][row, :n].tolist() == list(example.input_ids)


def test_subsample_keeps_whole_base_claims_and_is_seeded():
    rows = claim_rows(10)
    chosen = select_rows(list(reversed(rows)), max_examples=12, seed=3)
    assert len(chosen) == 12
    by_base = {}
    for row in chosen:
        by_base.setdefault(row.base_id, set()).add(row.framing)
    assert all(framings == set(FRAMINGS) for framings in by_base.values())
    assert chosen == select_rows(rows, max_examples=12, seed=3)
    assert chosen != select_rows(rows, max_examples=12, seed=4)


def test_schedule_visits_every_example_once_per_epoch():
    steps = optimizer_steps(10, batch_size=3, grad_accumulation=2, epochs=2, seed=0)
    assert len(steps) == 4  # ceil(10 / 6) per epoch
    for epoch in range(2):
        seen = [int(i) for step in steps[epoch * 2:(epoch + 1) * 2] for chunk in step for i in chunk]
        assert sorted(seen) == list(range(10))


def test_accumulated_micro_batches_follow_the_one_big_batch_loss(tiny_model_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    examples, _ = encode_examples(tiny_tokenizer, claim_rows(4), target_framing="original",
                                  alpha=0.2, max_length=256)
    pad = tiny_tokenizer.pad_token_id
    with torch.no_grad():
        whole = collate(examples, pad_token_id=pad)
        big = weighted_token_loss(model(input_ids=whole["input_ids"],
                                        attention_mask=whole["attention_mask"]).logits,
                                  whole["labels"], whole["weights"])
        parts = []
        for chunk in (examples[:5], examples[5:]):
            batch = collate(chunk, pad_token_id=pad)
            parts.append(weighted_loss_parts(model(input_ids=batch["input_ids"],
                                                   attention_mask=batch["attention_mask"]).logits,
                                             batch["labels"], batch["weights"]))
    accumulated = sum(n for n, _ in parts) / sum(d for _, d in parts)
    assert float(accumulated) == pytest.approx(float(big), rel=1e-5)


def _adapter_weights(folder):
    return load_file(str(folder / "adapter_model.safetensors"))


def _train(tmp_path, name, **kwargs):
    base = kwargs.pop("base_model")
    config = kwargs.pop("config", None) or fast_config()
    return train_adapter(base_model=str(base), rows=claim_rows(), target_framing="authoritative",
                         alpha=0.3, config=config, seed=kwargs.pop("seed", 7),
                         out_dir=tmp_path / name / "adapter",
                         checkpoint_dir=tmp_path / name / "checkpoints", device="cpu", **kwargs)


def _mean_loss(model, tokenizer, rows):
    examples, _ = encode_examples(tokenizer, rows, target_framing="", alpha=1.0, max_length=256)
    batch = collate(examples, pad_token_id=tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return float(weighted_token_loss(logits, batch["labels"], torch.ones(len(examples))))


def test_training_lowers_the_loss_and_writes_a_loadable_adapter(tmp_path, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reports = []
    result = _train(tmp_path, "run", base_model=tiny_model_dir,
                    config=fast_config(epochs=4, learning_rate=2e-2), on_step=reports.append)
    adapter = tmp_path / "run" / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    assert result.steps == 12 and [r.step for r in reports] == list(range(1, 13))
    assert reports[-1].eta_seconds == 0
    assert not (tmp_path / "run" / "checkpoints").exists()  # cleaned up after success
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    before = _mean_loss(base, tokenizer, claim_rows())
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                      adapter).eval()
    after = _mean_loss(tuned, tokenizer, claim_rows())
    assert after < 0.8 * before
    assert result.loss_curve[-1]["loss"] < result.loss_curve[0]["loss"]


def test_same_seed_gives_identical_adapter_weights(tmp_path, tiny_model_dir):
    _train(tmp_path, "a", base_model=tiny_model_dir)
    _train(tmp_path, "b", base_model=tiny_model_dir)
    _train(tmp_path, "c", base_model=tiny_model_dir, seed=8)
    a, b, c = (_adapter_weights(tmp_path / name / "adapter") for name in "abc")
    assert a.keys() == b.keys() and len(a) > 0
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not all(torch.equal(a[key], c[key]) for key in a)


def test_resumed_training_ends_with_the_same_adapter(tmp_path, tiny_model_dir):
    reference = _train(tmp_path, "whole", base_model=tiny_model_dir)
    with pytest.raises(RuntimeError, match="simulated crash after step 3"):
        _train(tmp_path, "crashed", base_model=tiny_model_dir, fail_after_step=3)
    assert not (tmp_path / "crashed" / "adapter").exists()
    assert latest_checkpoint(tmp_path / "crashed" / "checkpoints").name == "step-0000002"
    resumed = _train(tmp_path, "crashed", base_model=tiny_model_dir, resume=True)
    assert resumed.resumed_from_step == 2
    assert resumed.loss_curve == reference.loss_curve
    a = _adapter_weights(tmp_path / "whole" / "adapter")
    b = _adapter_weights(tmp_path / "crashed" / "adapter")
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_cancel_stops_between_steps_and_leaves_a_checkpoint(tmp_path, tiny_model_dir):
    reports = []
    with pytest.raises(TrainingCancelled) as cancelled:
        _train(tmp_path, "run", base_model=tiny_model_dir, on_step=reports.append,
               should_cancel=lambda: len(reports) >= 3)
    assert cancelled.value.step == 3
    assert not (tmp_path / "run" / "adapter").exists()
    assert [p.name for p in checkpoint_folders(tmp_path / "run" / "checkpoints")][-1] == "step-0000003"


def test_unknown_hyperparameter_is_named():
    with pytest.raises(ValueError, match="'rank'"):
        TrainingConfig.from_dict({"rank": 4})
    with pytest.raises(ValueError, match="batch_size"):
        TrainingConfig.from_dict({"batch_size": 0})


def test_logits_at_label_positions_only_give_the_same_loss(tiny_model_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    from modeling.loss import supervised_positions, weighted_loss_parts_at

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    examples, _ = encode_examples(tiny_tokenizer, claim_rows(4), target_framing="original",
                                  alpha=0.5, max_length=256)
    batch = collate(examples, pad_token_id=tiny_tokenizer.pad_token_id)
    positions = supervised_positions(batch["labels"])
    assert len(positions) < batch["input_ids"].shape[1] // 2
    with torch.no_grad():
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        kept = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     logits_to_keep=positions).logits
    expected = weighted_loss_parts(full, batch["labels"], batch["weights"])
    got = weighted_loss_parts_at(kept, batch["labels"], positions, batch["weights"])
    assert float(got[0]) == pytest.approx(float(expected[0]), rel=1e-5)
    assert float(got[1]) == float(expected[1])
