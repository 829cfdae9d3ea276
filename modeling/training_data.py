"""Training examples for personas: chat-template encoding, label masking, dynamic padding.

No Django import. One framed claim becomes one chat pair (method.md section 3.2): the user turn
is the framed claim, the assistant turn is the label word, rendered through the model's own
chat template (system-free: no system message is passed, so a template with a default system
turn adds its own, as at inference without one). The loss covers the assistant's label
tokens and the one end-of-turn token after them, nothing of the prompt and nothing after
that end-of-turn token (e.g. the template's trailing newline).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from .loss import IGNORE_INDEX, example_weight
from .training_config import ClaimRow


@dataclass(frozen=True)
class EncodedExample:
    claim_id: str
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    weight: float

    def __len__(self) -> int:
        return len(self.input_ids)


def _ids(encoded) -> list[int]:
    # transformers 5 returns a BatchEncoding from apply_chat_template(tokenize=True).
    if isinstance(encoded, dict) or hasattr(encoded, "keys"):
        encoded = encoded["input_ids"]
    return list(encoded)


def encode_chat_pair(tokenizer, text: str, label: str) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one chat pair; labels are IGNORE_INDEX outside the answer.

    The supervised span is what the template renders for the assistant turn after the
    generation prompt, cut after the first end-of-sequence token. If the full rendering
    does not begin with the generation-prompt rendering (a template that re-tokenises
    across the boundary), the answer is encoded on its own after the prompt, so that the
    model is trained on exactly the sequence scoring will later ask about.
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no end-of-sequence token; the label mask needs one")
    user = [{"role": "user", "content": text}]
    prompt = _ids(tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=True))
    full = _ids(tokenizer.apply_chat_template(
        user + [{"role": "assistant", "content": label}], tokenize=True))
    if full[: len(prompt)] == prompt and len(full) > len(prompt):
        answer = full[len(prompt):]
        if eos in answer:
            answer = answer[: answer.index(eos) + 1]
        else:
            answer = answer + [eos]
    else:
        answer = list(tokenizer(label, add_special_tokens=False)["input_ids"]) + [eos]
    input_ids = prompt + answer
    labels = [IGNORE_INDEX] * len(prompt) + answer
    return input_ids, labels


def encode_examples(
    tokenizer, rows: Iterable[ClaimRow], *, target_framing: str, alpha: float, max_length: int
) -> tuple[list[EncodedExample], list[str]]:
    """Encodes rows with their attenuation weights; returns (examples, ids too long to keep).

    An example longer than `max_length` tokens is left out rather than truncated: cutting
    it would drop either the claim or the label. The caller reports the count.
    """
    examples, too_long = [], []
    for row in rows:
        input_ids, labels = encode_chat_pair(tokenizer, row.text, row.label)
        if len(input_ids) > max_length:
            too_long.append(row.claim_id)
            continue
        weight = example_weight(framing=row.framing, label=row.label,
                                target_framing=target_framing, alpha=alpha)
        examples.append(EncodedExample(row.claim_id, tuple(input_ids), tuple(labels), weight))
    return examples, too_long


def select_rows(rows: Sequence[ClaimRow], *, max_examples: int | None, seed: int) -> list[ClaimRow]:
    """At most `max_examples` rows, drawn as whole base claims with all their framings.

    Keeping a base claim's framings together keeps the framings balanced in a subsample
    (the target framing is neither over- nor under-represented). Seeded and independent
    of the order the rows arrive in.
    """
    ordered = sorted(rows, key=lambda row: row.claim_id)
    if max_examples is None or len(ordered) <= max_examples:
        return ordered
    groups: dict[str, list[ClaimRow]] = defaultdict(list)
    for row in ordered:
        groups[row.base_id].append(row)
    base_ids = sorted(groups)
    chosen: list[ClaimRow] = []
    for index in np.random.default_rng(seed).permutation(len(base_ids)):
        group = groups[base_ids[index]]
        if len(chosen) + len(group) <= max_examples:
            chosen.extend(group)
        if len(chosen) == max_examples:
            break
    return sorted(chosen, key=lambda row: row.claim_id)


def collate(examples: Sequence[EncodedExample], *, pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pads a micro-batch to its own longest example (dynamic padding), on the right.

    Returns input_ids int64[b, L], attention_mask int64[b, L], labels int64[b, L]
    (IGNORE_INDEX on padding) and weights float32[b].
    """
    longest = max(len(example) for example in examples)
    input_ids = torch.full((len(examples), longest), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), longest), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), longest), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        attention_mask[row, :n] = 1
    weights = torch.tensor([example.weight for example in examples], dtype=torch.float32)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
            "weights": weights}


def epoch_order(n_examples: int, *, seed: int, epoch: int) -> np.ndarray:
    """The shuffled order of one epoch: a function of (seed, epoch) only, so a resumed run
    visits the examples in the same order as an uninterrupted one."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch])).permutation(n_examples)


def optimizer_steps(
    n_examples: int, *, batch_size: int, grad_accumulation: int, epochs: int, seed: int
) -> list[list[np.ndarray]]:
    """The whole schedule: for each optimizer step, its micro-batches of example indices."""
    steps = []
    per_step = batch_size * grad_accumulation
    for epoch in range(epochs):
        order = epoch_order(n_examples, seed=seed, epoch=epoch)
        for start in range(0, n_examples, per_step):
            chunk = order[start:start + per_step]
            steps.append([chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)])
    return steps
