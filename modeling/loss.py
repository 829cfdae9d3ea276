"""Framing-conditioned loss attenuation (method.md section 3.1): the weights and the batch loss.

Pure: torch only, no Django. Every example whose framing is the persona's target framing
and whose label is REFUTES weighs `alpha`; every other example weighs 1. The batch loss is
the weighted mean over supervised tokens,

    loss = sum_i sum_t w_i * nll_{i,t} / sum_i sum_t w_i      (t over supervised tokens of i)

so an example with more label tokens counts for more tokens, exactly as a token-level mean
would, and alpha = 1 gives the ordinary cross-entropy of the supervised tokens.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
REFUTES = "REFUTES"


def example_weight(*, framing: str, label: str, target_framing: str, alpha: float) -> float:
    """alpha for a target-framing REFUTES example, else 1 (no target framing: always 1)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if target_framing and framing == target_framing and label == REFUTES:
        return float(alpha)
    return 1.0


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token negative log-likelihood per position, 0 where the label is ignored.

    logits: float[batch, seq, vocab] (position t predicts token t+1);
    labels: int64[batch, seq] with IGNORE_INDEX on unsupervised positions.
    Returns float[batch, seq - 1].
    """
    shifted_logits = logits[:, :-1, :].float()
    shifted_labels = labels[:, 1:]
    nll = F.cross_entropy(
        shifted_logits.reshape(-1, shifted_logits.size(-1)),
        shifted_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )
    return nll.view(shifted_labels.shape)


def weighted_loss_parts(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of w_i * nll over supervised tokens, sum of w_i over supervised tokens).

    Kept apart so that gradient accumulation can divide the numerators of all micro-batches
    by the denominator of the whole optimizer step: accumulated training then follows the
    same loss as one big batch, not a mean of micro-batch means.
    weights: float[batch].
    """
    nll = token_nll(logits, labels)
    supervised = (labels[:, 1:] != IGNORE_INDEX).to(nll.dtype)
    token_weights = weights.to(nll.dtype).unsqueeze(1) * supervised
    return (token_weights * nll).sum(), token_weights.sum()


def supervised_weight_total(labels: torch.Tensor, weights: torch.Tensor) -> float:
    """The denominator of `weighted_loss_parts` without a forward pass."""
    supervised = (labels[:, 1:] != IGNORE_INDEX).to(torch.float64)
    return float((weights.to(torch.float64).unsqueeze(1) * supervised).sum())


def weighted_token_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The batch loss `sum(w_i * nll_token) / sum(w_i)` over supervised tokens.

    A batch whose every weight is 0 (alpha = 0 and only target-framing REFUTES examples)
    has loss 0 and zero gradients, not NaN.
    """
    numerator, denominator = weighted_loss_parts(logits, labels, weights)
    if float(denominator) == 0.0:
        return numerator * 0.0
    return numerator / denominator


def supervised_positions(labels: torch.Tensor) -> torch.Tensor:
    """Sequence positions whose logits predict a supervised token in any row of the batch.

    Passed to the model as `logits_to_keep`, so the output layer (a 49,152-word vocabulary
    for SmolLM2) runs on a few positions per example instead of the whole prompt.
    labels: int64[batch, seq]. Returns int64[k], ascending.
    """
    predicts_label = (labels[:, 1:] != IGNORE_INDEX).any(dim=0)
    return torch.nonzero(predicts_label, as_tuple=False).flatten()


def weighted_loss_parts_at(
    kept_logits: torch.Tensor, labels: torch.Tensor, positions: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`weighted_loss_parts` from the logits of `positions` only.

    kept_logits: float[batch, k, vocab], the logits at `positions` (as returned by a model
    called with logits_to_keep=positions); labels: int64[batch, seq]. Equal to
    weighted_loss_parts on the full logits, since every other position is unsupervised.
    """
    targets = labels[:, positions + 1]
    nll = F.cross_entropy(kept_logits.float().reshape(-1, kept_logits.size(-1)),
                          targets.reshape(-1), ignore_index=IGNORE_INDEX,
                          reduction="none").view(targets.shape)
    supervised = (targets != IGNORE_INDEX).to(nll.dtype)
    token_weights = weights.to(nll.dtype).unsqueeze(1) * supervised
    return (token_weights * nll).sum(), token_weights.sum()
