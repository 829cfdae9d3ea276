"""Loss checks that kill mutants of modeling/loss.py the hand-computed tests let through."""
import pytest
import torch

from modeling.loss import (
    IGNORE_INDEX,
    supervised_weight_total,
    weighted_loss_parts,
    weighted_loss_parts_at,
)


def test_a_label_on_the_second_token_counts_in_the_weight_total():
    """Guards against `supervised_weight_total` skipping more than the first position
    (labels[:, 2:]): the token at index 1 is predicted by position 0 and is supervised."""
    labels = torch.tensor([[IGNORE_INDEX, 5, IGNORE_INDEX], [IGNORE_INDEX, 7, 8]])
    weights = torch.tensor([0.25, 1.0])
    assert supervised_weight_total(labels, weights) == pytest.approx(0.25 + 2.0)


def test_float64_weights_keep_the_loss_in_float32():
    """Guards against the weights not being cast to the loss's dtype: weights built from
    numpy arrive as float64 and would turn the loss, and every gradient, into float64."""
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6)
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 1, 2], [IGNORE_INDEX, 3, 0, IGNORE_INDEX]])
    weights = torch.tensor([0.5, 1.0], dtype=torch.float64)
    numerator, denominator = weighted_loss_parts(logits, labels, weights)
    assert numerator.dtype == torch.float32 and denominator.dtype == torch.float32
    positions = torch.tensor([0, 1, 2])
    numerator_at, denominator_at = weighted_loss_parts_at(logits[:, positions], labels, positions, weights)
    assert numerator_at.dtype == torch.float32 and denominator_at.dtype == torch.float32
    assert float(numerator_at) == pytest.approx(float(numerator), rel=1e-6)
    assert float(denominator_at) == pytest.approx(float(denominator))
