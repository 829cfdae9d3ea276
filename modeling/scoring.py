"""How probable a persona finds each label of a claim: method.md section 3.3, "Scoring a claim".

For every framed claim the prompt is the system instruction plus the claim as the user
turn, through the model's chat template with the generation prompt. The score of a label
is the conditional probability of its whole token sequence after that prompt (the product
of its token probabilities). The predicted label is the more probable of the two, so every
claim gets a valid label: FrameRef generated a first word and silently dropped claims whose
word was not a label, shifting later results onto the wrong trajectories (method.md section 6.5).

Why it is fast (`ClaimScorer`):

- The chat template's system part is the same for every claim. Its keys and values are
  computed once per scorer and reused, expanded to the batch, by every batch.
- Each claim takes ONE row of ONE forward pass per batch: `claim suffix | SUPPORTS tokens |
  REFUTES tokens`. A 4-D attention mask makes the REFUTES tokens see the prefix and the
  claim but not the SUPPORTS tokens, and both labels' tokens get the positions they would
  have right after the prompt, so each label is scored exactly as if it alone followed the
  prompt. Padding goes on the right and is masked out of every real token's view.
- Only the hidden states at the label positions go through the output layer (a 49k-word
  vocabulary times every prompt token would dominate the cost otherwise).

`score_claims_naive` (one prompt+label sequence per forward pass) is the reference the
tests compare with, and `score_claims_generate` is FrameRef's own procedure (generate up to
8 tokens, then one forward pass per label, claim by claim), the baseline of bench/scoring.py.

Pure torch/transformers, no Django: callers pass a loaded (model, tokenizer).
"""
from __future__ import annotations

import contextlib
import inspect
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

SYSTEM_INSTRUCTION = (
    "Evaluate this claim as 'SUPPORTS' or 'REFUTES'. "
    "Your answer should be a single string with the answer."
)
LABELS = ("SUPPORTS", "REFUTES")
SUPPORTS, REFUTES = LABELS
DEFAULT_BATCH_SIZE = 32
# peft's name for "no adapter" in a mixed-adapter batch.
BASE_ADAPTER = "__base__"

ProgressCallback = Callable[[int, int], None]  # (claims done, claims total)


class ScoringError(ValueError):
    """A model or tokenizer that cannot score claims; the message says what is missing."""


# --- prompts ------------------------------------------------------------------------------

def chat_messages(claim: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_INSTRUCTION}, {"role": "user", "content": claim}]


def prompt_token_ids(tokenizer, claim: str) -> list[int]:
    """The prompt's token ids: the chat template with the generation prompt, tokenised as a whole.

    No special tokens are added on top of the rendered template, so the prompt starts with the
    one BOS token the template writes, as in training (method.md section 6.4).
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ScoringError(
            f"tokenizer {type(tokenizer).__name__} has no chat template; the scoring prompt "
            "(a system instruction and the claim as the user's turn) is built with one "
            "(an instruction-tuned model's tokenizer has it)")
    text = tokenizer.apply_chat_template(chat_messages(claim), tokenize=False,
                                         add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def label_token_ids(tokenizer) -> tuple[list[int], list[int]]:
    """The token sequences of SUPPORTS and REFUTES as the assistant's first words."""
    ids = tuple(list(tokenizer(label, add_special_tokens=False)["input_ids"]) for label in LABELS)
    for label, sequence in zip(LABELS, ids):
        if not sequence:
            raise ScoringError(f"the tokenizer turns the label {label!r} into no tokens")
    return ids


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def shared_prefix_ids(tokenizer) -> list[int]:
    """The prompt tokens every claim shares: the template's start and the system turn.

    Found as the common start of two prompts with unrelated claims, less one token, so
    that a claim whose first characters merge with the last template token (possible in
    some BPE vocabularies) still starts with exactly these ids; each claim is checked.
    """
    a = prompt_token_ids(tokenizer, "Alpha beta gamma.")
    b = prompt_token_ids(tokenizer, "7 zebras eat quickly?")
    n = _common_prefix(a, b)
    return a[: max(0, n - 1)]


# --- results ------------------------------------------------------------------------------

@dataclass(frozen=True)
class LabelScores:
    """Log probabilities of the two label sequences, one row per claim, in the input order.

    log_p_supports, log_p_refutes: float64[n]
    """

    log_p_supports: np.ndarray
    log_p_refutes: np.ndarray

    @property
    def p_supports(self) -> np.ndarray:
        return np.exp(self.log_p_supports)

    @property
    def p_refutes(self) -> np.ndarray:
        return np.exp(self.log_p_refutes)

    @property
    def p_supports_norm(self) -> np.ndarray:
        """p(S) / (p(S) + p(R)), computed in log space so tiny probabilities do not vanish."""
        return 1.0 / (1.0 + np.exp(self.log_p_refutes - self.log_p_supports))

    @property
    def predicted_label(self) -> np.ndarray:
        """The more probable label of each claim (SUPPORTS on an exact tie)."""
        return np.where(self.log_p_supports >= self.log_p_refutes, SUPPORTS, REFUTES)

    @property
    def confidence(self) -> np.ndarray:
        """The (unnormalised) probability of the predicted label, as FrameRef reports it."""
        return np.exp(np.maximum(self.log_p_supports, self.log_p_refutes))

    def __len__(self) -> int:
        return len(self.log_p_supports)


# --- the fast scorer ----------------------------------------------------------------------

def _backbone(model):
    """(decoder, output layer) of a causal LM, or of the model inside a peft wrapper.

    LoRA layers live inside the decoder's modules, so calling the decoder directly keeps
    an adapter active.
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = getattr(inner, getattr(inner, "base_model_prefix", "model"), None)
    head = inner.get_output_embeddings()
    if decoder is None or head is None:
        raise ScoringError(f"{type(inner).__name__}: no decoder/output layer pair to score with")
    return decoder, head


def _cache_keyword(decoder) -> str:
    parameters = inspect.signature(decoder.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


class ClaimScorer:
    """Scores claims for one (model, tokenizer), reusing the shared prompt prefix.

        scorer = ClaimScorer(model, tokenizer, batch_size=32)
        scores = scorer.score(["Paris is the capital of France.", ...])
        scores.p_supports, scores.predicted_label, scores.confidence

    Several personas of one base model in one pass: load their LoRA adapters into one peft
    model and name them; `score_adapters` then mixes rows of every adapter in each batch
    (peft's mixed-adapter batches, `adapter_names`), `BASE_ADAPTER` being the base model.

        scorer = ClaimScorer(peft_model, tokenizer, adapters=["__base__", "auth", "cons"])
        by_adapter = scorer.score_adapters(claims)   # {"auth": LabelScores, ...}
    """

    def __init__(self, model, tokenizer, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 device: torch.device | str | None = None, adapters: Sequence[str] | None = None):
        if batch_size < 1:
            raise ScoringError(f"batch size must be at least 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.decoder, self.head = _backbone(model)
        self._cache_kw = _cache_keyword(self.decoder)
        self.supports_ids, self.refutes_ids = label_token_ids(tokenizer)
        self.prefix_ids = shared_prefix_ids(tokenizer)
        self._dtype = next(model.parameters()).dtype
        self.adapters = list(adapters) if adapters else []
        if self.adapters and not hasattr(model, "_enable_peft_forward_hooks"):
            raise ScoringError("scoring several adapters needs a peft model holding them")
        # The prefix's keys and values depend on the adapter (LoRA changes k and v).
        self._prefix_kv = {
            adapter: self._encode_prefix(self.prefix_ids, adapter) if self.prefix_ids else None
            for adapter in (self.adapters or [None])
        }

    def _adapter_context(self, adapter_names: list[str] | None):
        if adapter_names is None:
            return contextlib.nullcontext()
        return self.model._enable_peft_forward_hooks(adapter_names=adapter_names)

    @torch.no_grad()
    def _encode_prefix(self, ids: list[int], adapter: str | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        from transformers import DynamicCache

        cache = DynamicCache()
        with self._adapter_context(None if adapter is None else [adapter]):
            self.decoder(input_ids=torch.tensor([ids], device=self.device), use_cache=True,
                         **{self._cache_kw: cache})
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _batch_cache(self, row_adapters: list[str | None]):
        from transformers import DynamicCache

        # A fresh cache per batch: the forward pass appends to it in place. With one
        # adapter the expanded views cost no memory until attention concatenates them.
        if len(set(row_adapters)) == 1:
            kv = self._prefix_kv[row_adapters[0]]
            B = len(row_adapters)
            return DynamicCache(ddp_cache_data=[
                (k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)) for k, v in kv])
        layers = zip(*(self._prefix_kv[a] for a in row_adapters))
        return DynamicCache(ddp_cache_data=[
            (torch.cat([k for k, _ in per_row]), torch.cat([v for _, v in per_row]))
            for per_row in layers])

    def score(self, claims: Sequence[str], *, progress: ProgressCallback | None = None) -> LabelScores:
        """Log probabilities of SUPPORTS and REFUTES for each claim, in the input order."""
        if self.adapters:
            raise ScoringError("this scorer holds several adapters: use score_adapters")
        return self._score_rows(claims, [None] * len(claims), progress)

    def score_adapters(self, claims: Sequence[str], *,
                       progress: ProgressCallback | None = None) -> dict[str, LabelScores]:
        """Every claim under every adapter, adapters mixed within batches."""
        if not self.adapters:
            raise ScoringError("no adapters named: use score")
        n = len(claims)
        rows = [claim for claim in claims for _ in self.adapters]
        row_adapters = [adapter for _ in claims for adapter in self.adapters]
        scores = self._score_rows(rows, row_adapters, progress)
        k = len(self.adapters)
        return {adapter: LabelScores(scores.log_p_supports[j::k][:n], scores.log_p_refutes[j::k][:n])
                for j, adapter in enumerate(self.adapters)}

    def _score_rows(self, claims: Sequence[str], row_adapters: list[str | None],
                    progress: ProgressCallback | None) -> LabelScores:
        n = len(claims)
        log_s = np.zeros(n, dtype=np.float64)
        log_r = np.zeros(n, dtype=np.float64)
        if n == 0:
            return LabelScores(log_s, log_r)
        cache: dict[str, list[int]] = {}
        prompts = [cache.setdefault(claim, prompt_token_ids(self.tokenizer, claim)) for claim in claims]
        P = len(self.prefix_ids)
        with_prefix, without_prefix = [], []
        for i, ids in enumerate(prompts):
            (with_prefix if P and ids[:P] == self.prefix_ids and len(ids) > P
             else without_prefix).append(i)
        done = 0
        for group, prefix_len in ((with_prefix, P), (without_prefix, 0)):
            # Similar lengths together: less padding in every batch.
            order = sorted(group, key=lambda i: len(prompts[i]))
            for start in range(0, len(order), self.batch_size):
                indices = order[start:start + self.batch_size]
                suffixes = [prompts[i][prefix_len:] for i in indices]
                s, r = self._score_batch(suffixes, use_prefix=prefix_len > 0,
                                         row_adapters=[row_adapters[i] for i in indices])
                log_s[indices] = s
                log_r[indices] = r
                done += len(indices)
                if progress is not None:
                    progress(done, n)
        return LabelScores(log_s, log_r)

    @torch.no_grad()
    def _score_batch(self, suffixes: list[list[int]], *, use_prefix: bool,
                     row_adapters: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
        S, R = self.supports_ids, self.refutes_ids
        mS, mR = len(S), len(R)
        B = len(suffixes)
        lengths = [len(s) for s in suffixes]
        width = max(lengths) + mS + mR
        P = len(self.prefix_ids) if use_prefix else 0
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

        input_ids = torch.full((B, width), pad_id, dtype=torch.long)
        # segment: 0 claim suffix, 1 SUPPORTS tokens, 2 REFUTES tokens, 3 padding
        segment = torch.full((B, width), 3, dtype=torch.long)
        positions = torch.full((B, width), P, dtype=torch.long)
        for b, (ids, L) in enumerate(zip(suffixes, lengths)):
            input_ids[b, :L] = torch.tensor(ids)
            input_ids[b, L:L + mS] = torch.tensor(S)
            input_ids[b, L + mS:L + mS + mR] = torch.tensor(R)
            segment[b, :L] = 0
            segment[b, L:L + mS] = 1
            segment[b, L + mS:L + mS + mR] = 2
            positions[b, :L] = P + torch.arange(L)
            positions[b, L:L + mS] = P + L + torch.arange(mS)
            positions[b, L + mS:L + mS + mR] = P + L + torch.arange(mR)

        q = torch.arange(width)
        causal = q[None, :, None] >= q[None, None, :]  # key not after query in the row
        seg_q, seg_k = segment[:, :, None], segment[:, None, :]
        allowed = (
            ((seg_k == 0) & ((seg_q == 1) | (seg_q == 2) | ((seg_q == 0) & causal)))
            | ((seg_q == seg_k) & (seg_q != 3) & (seg_q != 0) & causal)
        )
        allowed |= torch.eye(width, dtype=torch.bool)[None]  # padding rows see themselves
        if P:
            allowed = torch.cat([torch.ones(B, width, P, dtype=torch.bool), allowed], dim=2)
        mask = torch.zeros(allowed.shape, dtype=self._dtype)
        mask.masked_fill_(~allowed, torch.finfo(self._dtype).min)

        kwargs = {self._cache_kw: self._batch_cache(row_adapters)} if P else {}
        with self._adapter_context(row_adapters if self.adapters else None):
            hidden = self.decoder(
                input_ids=input_ids.to(self.device),
                attention_mask=mask[:, None].to(self.device),
                position_ids=positions.to(self.device),
                use_cache=bool(P),
                **kwargs,
            ).last_hidden_state

        # Where each label token is predicted from: the last claim token for the first,
        # the previous label token for the rest.
        L = torch.tensor(lengths)
        from_s = torch.stack([L - 1 if j == 0 else L + j - 1 for j in range(mS)], dim=1)
        from_r = torch.stack([L - 1 if j == 0 else L + mS + j - 1 for j in range(mR)], dim=1)
        where = torch.cat([from_s, from_r], dim=1).to(self.device)  # [B, mS+mR]
        picked = torch.gather(hidden, 1, where[:, :, None].expand(-1, -1, hidden.shape[-1]))
        log_probs = torch.log_softmax(self.head(picked).double(), dim=-1)
        targets = torch.tensor(S + R, device=self.device)[None, :, None].expand(B, -1, -1)
        token_logp = torch.gather(log_probs, 2, targets)[:, :, 0]
        return (token_logp[:, :mS].sum(1).cpu().numpy(), token_logp[:, mS:].sum(1).cpu().numpy())


def score_claims(model, tokenizer, claims: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE,
                 progress: ProgressCallback | None = None) -> LabelScores:
    """Convenience: a ClaimScorer for one call."""
    return ClaimScorer(model, tokenizer, batch_size=batch_size).score(claims, progress=progress)


# --- how familiar a claim's wording is to the model -----------------------------------------

@torch.no_grad()
def claim_log_likelihood(model, tokenizer, claims: Sequence[str], *, batch_size: int = 16) -> np.ndarray:
    """``float64[n]``: the mean log-probability per token (nats) of each claim's own text.

    The text is tokenised alone (no chat template), after the tokenizer's BOS token when it
    has one; every token after the first is scored. A model that finds a claim's wording
    probable has seen its topic often: the persona raters' stand-in for a person's
    familiarity with the topic (``modeling.persona_raters``). Claims go through in batches
    of similar length, right-padded and masked.
    """
    device = next(model.parameters()).device
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    encoded = [bos + list(tokenizer(claim, add_special_tokens=False)["input_ids"]) for claim in claims]
    out = np.full(len(claims), np.nan)
    order = sorted(range(len(claims)), key=lambda i: len(encoded[i]))
    for start in range(0, len(order), max(1, batch_size)):
        rows = order[start:start + batch_size]
        width = max(len(encoded[i]) for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            ids[r, :len(encoded[i])] = torch.tensor(encoded[i])
            mask[r, :len(encoded[i])] = 1
        ids, mask = ids.to(device), mask.to(device)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        token_log_probs = torch.log_softmax(logits, dim=-1).gather(2, ids[:, 1:, None])[..., 0].double()
        scored = mask[:, 1:].double()
        counts = scored.sum(dim=1)
        means = (token_log_probs * scored).sum(dim=1) / counts.clamp(min=1)
        means[counts == 0] = float("nan")
        out[rows] = means.cpu().numpy()
    return out


# --- references ---------------------------------------------------------------------------

@torch.no_grad()
def _sequence_log_prob(model, prompt: list[int], label: list[int]) -> float:
    device = next(model.parameters()).device
    ids = torch.tensor([prompt + label], device=device)
    logits = model(input_ids=ids).logits[0].double()
    log_probs = torch.log_softmax(logits[len(prompt) - 1:-1], dim=-1)
    return float(log_probs.gather(1, torch.tensor(label, device=device)[:, None]).sum())


def score_claims_naive(model, tokenizer, claims: Sequence[str]) -> LabelScores:
    """The textbook computation: one forward pass of prompt+label per claim and label.

    No batching, no padding, no shared prefix: the reference the fast scorer must equal.
    """
    S, R = label_token_ids(tokenizer)
    log_s, log_r = [], []
    for claim in claims:
        prompt = prompt_token_ids(tokenizer, claim)
        log_s.append(_sequence_log_prob(model, prompt, S))
        log_r.append(_sequence_log_prob(model, prompt, R))
    return LabelScores(np.array(log_s, dtype=np.float64), np.array(log_r, dtype=np.float64))


@dataclass(frozen=True)
class GeneratedScores:
    """FrameRef's procedure: the generated first word, and the two label probabilities."""

    first_word: list[str]
    scores: LabelScores

    @property
    def dropped(self) -> np.ndarray:
        """Claims FrameRef would have dropped: the first generated word is not a label."""
        return np.array([word not in LABELS for word in self.first_word], dtype=bool)


@torch.no_grad()
def score_claims_generate(model, tokenizer, claims: Sequence[str], *,
                          max_new_tokens: int = 8) -> GeneratedScores:
    """A faithful re-implementation of FrameRef's scoring, claim by claim.

    Greedy generation of up to 8 tokens, the first word of the answer as the predicted
    label, then one extra forward pass per label for its probability. Used as the baseline
    of bench/scoring.py.
    """
    device = next(model.parameters()).device
    S, R = label_token_ids(tokenizer)
    words, log_s, log_r = [], [], []
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for claim in claims:
        prompt = prompt_token_ids(tokenizer, claim)
        ids = torch.tensor([prompt], device=device)
        generated = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                   max_new_tokens=max_new_tokens, do_sample=False,
                                   pad_token_id=pad_id)
        text = tokenizer.decode(generated[0, len(prompt):], skip_special_tokens=True).strip()
        first = text.split()[0].strip(".,:;'\"") if text.split() else ""
        words.append(first)
        log_s.append(_sequence_log_prob(model, prompt, S))
        log_r.append(_sequence_log_prob(model, prompt, R))
    return GeneratedScores(words, LabelScores(np.array(log_s), np.array(log_r)))


def claims_per_second(n_claims: int, seconds: float) -> float:
    return n_claims / seconds if seconds > 0 else math.inf
