"""The training step's weighting (modeling/training.py accumulate_step_gradients,
modeling/training_data.py encode_examples and collate) on a small real network: the
gradient of a step of several micro-batches against the gradient of the one-batch loss."""
import pytest
import torch
from torch import nn

from modeling.loss import IGNORE_INDEX, weighted_token_loss
from modeling.training import accumulate_step_gradients
from modeling.training_data import (
    EncodedExample,
    collate,
    encode_chat_pair,
    encode_examples,
)
from tests.modeling.conftest import build_tiny_tokenizer
from tests.modeling.test_training import claim_rows

VOCAB = 11


class TinyLM(nn.Module):
    """An embedding and an output layer: a causal LM whose gradient is cheap to compare."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, 6)
        self.head = nn.Linear(6, VOCAB)

    def forward(self, input_ids, attention_mask, logits_to_keep=None):
        logits = self.head(self.embed(input_ids) * attention_mask.unsqueeze(-1))
        if logits_to_keep is not None:
            logits = logits[:, logits_to_keep]
        return type("Output", (), {"logits": logits})


def example(claim_id, ids, n_label, weight):
    labels = [IGNORE_INDEX] * (len(ids) - n_label) + list(ids[-n_label:])
    return EncodedExample(claim_id, tuple(ids), tuple(labels), weight)


# Micro-batches with different supervised-token counts and weights, so each micro-batch's own
# weight total differs from the step's.
EXAMPLES = [
    example("a", [1, 2, 3, 4, 5], 2, 1.0),
    example("b", [2, 3, 7], 1, 0.25),
    example("c", [4, 4, 9, 10, 1, 2], 3, 1.0),
    example("d", [5, 6, 8, 3], 2, 0.5),
    example("e", [3, 3, 3], 1, 0.0),
]


def gradients(model):
    return [p.grad.clone() for p in model.parameters()]


def one_batch_reference(examples):
    model = TinyLM()
    batch = collate(examples, pad_token_id=0)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = weighted_token_loss(logits, batch["labels"], batch["weights"])
    loss.backward()
    return float(loss.detach()), gradients(model)


def test_a_step_of_micro_batches_has_the_one_batch_gradient_with_the_attenuation_weights():
    """Guards against the step ignoring the examples' weights (all-ones weights: every persona
    trains as the baseline) and against each micro-batch being divided by its own weight total
    instead of the step's (attenuated examples would weigh more than alpha says)."""
    expected_loss, expected = one_batch_reference(EXAMPLES)
    model = TinyLM()
    batches = [collate(EXAMPLES[:2], pad_token_id=0), collate(EXAMPLES[2:4], pad_token_id=0),
               collate(EXAMPLES[4:], pad_token_id=0)]
    step_loss = accumulate_step_gradients(model, batches, "cpu")
    assert step_loss == pytest.approx(expected_loss, rel=1e-5)
    for got, want in zip(gradients(model), expected):
        assert torch.allclose(got, want, atol=1e-6, rtol=1e-5)
    # And the weights matter: with all weights 1 the gradient is another one.
    _, unweighted = one_batch_reference([EncodedExample(e.claim_id, e.input_ids, e.labels, 1.0)
                                         for e in EXAMPLES])
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(unweighted, expected))


def test_a_step_of_only_zero_weights_adds_no_gradient_and_no_nan():
    model = TinyLM()
    zero = [EncodedExample(e.claim_id, e.input_ids, e.labels, 0.0) for e in EXAMPLES]
    step_loss = accumulate_step_gradients(model, [collate(zero[:3], pad_token_id=0),
                                                  collate(zero[3:], pad_token_id=0)], "cpu")
    assert step_loss == 0.0
    assert all(p.grad is not None and torch.count_nonzero(p.grad) == 0 for p in model.parameters())


def test_collate_pads_on_the_right_and_carries_the_weights():
    batch = collate(EXAMPLES[:2], pad_token_id=7)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5], [2, 3, 7, 7, 7]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX] * 3 + [4, 5], [IGNORE_INDEX] * 2 + [7] + [IGNORE_INDEX] * 2]
    assert batch["weights"].dtype == torch.float32 and batch["weights"].tolist() == [1.0, 0.25]
    for key in ("input_ids", "attention_mask", "labels"):
        assert batch[key].dtype == torch.long
    assert set(batch) == {"input_ids", "attention_mask", "labels", "weights"}


def test_encoded_examples_keep_order_ids_weights_and_the_length_limit():
    """Guards against the attenuation weight not reaching the example (or reaching the wrong
    one), and against an example exactly max_length tokens long being dropped."""
    tokenizer = build_tiny_tokenizer()
    rows = claim_rows(3)
    lengths = {row.claim_id: len(encode_chat_pair(tokenizer, row.text, row.label)[0]) for row in rows}
    limit = sorted(lengths.values())[len(rows) // 2]
    examples, too_long = encode_examples(tokenizer, rows, target_framing="emotional", alpha=0.4,
                                         max_length=limit)
    assert [e.claim_id for e in examples] == [r.claim_id for r in rows if lengths[r.claim_id] <= limit]
    assert too_long == [r.claim_id for r in rows if lengths[r.claim_id] > limit]
    assert any(lengths[e.claim_id] == limit for e in examples)
    by_id = {row.claim_id: row for row in rows}
    for e in examples:
        row = by_id[e.claim_id]
        expected_ids, expected_labels = encode_chat_pair(tokenizer, row.text, row.label)
        assert (list(e.input_ids), list(e.labels)) == (expected_ids, expected_labels)
        attenuated = row.framing == "emotional" and row.label == "REFUTES"
        assert e.weight == (0.4 if attenuated else 1.0), e.claim_id


def test_a_step_whose_weights_total_less_than_one_still_learns():
    """Guards against a step being skipped unless its weight total exceeds 1: one
    attenuated example (alpha 0.5, one label token) must still move the weights."""
    single = [example("f", [1, 2, 3], 1, 0.5)]
    expected_loss, expected = one_batch_reference(single)
    model = TinyLM()
    step_loss = accumulate_step_gradients(model, [collate(single, pad_token_id=0)], "cpu")
    assert step_loss == pytest.approx(expected_loss, rel=1e-5) and step_loss > 0
    for got, want in zip(gradients(model), expected):
        assert torch.allclose(got, want, atol=1e-6, rtol=1e-5)
    assert any(torch.count_nonzero(g) for g in gradients(model))
