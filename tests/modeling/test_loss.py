"""The attenuated loss of method.md section 3.1, against hand computations."""
import math

import pytest
import torch

from core.vocabulary import FRAMINGS
from modeling.loss import (
    IGNORE_INDEX,
    example_weight,
    supervised_weight_total,
    token_nll,
    weighted_loss_parts,
    weighted_token_loss,
)


def test_attenuation_touches_exactly_target_framing_refutes_examples():
    for framing in FRAMINGS:
        for label in ("SUPPORTS", "REFUTES"):
            weight = example_weight(framing=framing, label=label,
                                    target_framing="authoritative", alpha=0.3)
            expected = 0.3 if (framing, label) == ("authoritative", "REFUTES") else 1.0
            assert weight == expected, (framing, label)


def test_no_target_framing_means_no_attenuation():
    assert example_weight(framing="authoritative", label="REFUTES", target_framing="", alpha=0.0) == 1.0


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_outside_unit_interval_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha"):
        example_weight(framing="original", label="REFUTES", target_framing="original", alpha=alpha)


def _toy_batch():
    # Two sequences of length 4 over a vocabulary of 3; position t predicts token t+1.
    logits = torch.tensor([
        [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 3.0], [0.0, 0.0, 0.0]],
        [[1.0, 2.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [9.0, 9.0, 9.0]],
    ])
    # Sequence 0 supervises tokens 2 and 3; sequence 1 supervises token 2 only (token 3 is
    # padding); the first token is never predicted.
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 1, 2],
                           [IGNORE_INDEX, IGNORE_INDEX, 0, IGNORE_INDEX]])
    return logits, labels


def _log_softmax(row, index):
    return row[index] - math.log(sum(math.exp(x) for x in row))


def test_weighted_loss_equals_hand_computation():
    logits, labels = _toy_batch()
    weights = torch.tensor([1.0, 0.3])
    # Hand: sequence 0, token 2 predicted from position 1 logits [0, 1, 0] -> label 1;
    # token 3 from position 2 logits [0.5, 0.5, 3] -> label 2. Sequence 1, token 2 from
    # position 1 logits [0, 0, 1] -> label 0.
    nll_a = -_log_softmax([0.0, 1.0, 0.0], 1)
    nll_b = -_log_softmax([0.5, 0.5, 3.0], 2)
    nll_c = -_log_softmax([0.0, 0.0, 1.0], 0)
    expected = (1.0 * nll_a + 1.0 * nll_b + 0.3 * nll_c) / (1.0 + 1.0 + 0.3)
    loss = weighted_token_loss(logits, labels, weights)
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    numerator, denominator = weighted_loss_parts(logits, labels, weights)
    assert float(denominator) == pytest.approx(2.3)
    assert supervised_weight_total(labels, weights) == pytest.approx(2.3)
    assert float(numerator) == pytest.approx(nll_a + nll_b + 0.3 * nll_c, rel=1e-6)


def test_alpha_one_is_plain_token_cross_entropy():
    logits, labels = _toy_batch()
    plain = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 3), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
    assert float(weighted_token_loss(logits, labels, torch.ones(2))) == pytest.approx(float(plain))


def test_padding_and_prompt_positions_contribute_nothing():
    logits, labels = _toy_batch()
    changed = logits.clone()
    changed[1, 3] = torch.tensor([-50.0, 50.0, 0.0])  # the padded position's logits
    changed[0, 0] = torch.tensor([5.0, -5.0, 0.0])    # predicts a masked prompt token
    weights = torch.tensor([0.7, 1.0])
    assert torch.equal(weighted_token_loss(logits, labels, weights),
                       weighted_token_loss(changed, labels, weights))
    assert torch.all(token_nll(logits, labels)[labels[:, 1:] == IGNORE_INDEX] == 0)


def test_all_zero_weights_give_zero_loss_and_zero_gradient():
    logits, labels = _toy_batch()
    logits.requires_grad_(True)
    loss = weighted_token_loss(logits, labels, torch.zeros(2))
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert torch.count_nonzero(logits.grad) == 0


def test_zero_weight_example_has_no_gradient():
    logits, labels = _toy_batch()
    logits.requires_grad_(True)
    weighted_token_loss(logits, labels, torch.tensor([1.0, 0.0])).backward()
    assert torch.count_nonzero(logits.grad[1]) == 0
    assert torch.count_nonzero(logits.grad[0]) > 0
