"""The LLM framer: restatements written by a local causal LM, kept only if they pass verification.

This is FrameRef's procedure (method.md section 1.3) on any local chat model: an instruction
per framing asks the model to restate the claim under the section's rules, then a
verification pass asks a model (the same or another) whether the restated claim still
asserts the same thing, and only PASS restatements are kept. The verifier's answer is
read from one forward pass as the more probable of the label words PASS and FAIL after the
prompt, so it is deterministic and always a valid answer. Before it, a cheap lexical check
refuses a restatement that drops or adds a number, or drops a name of the original: small
models often do exactly that, and no later reader should have to trust them not to.

Generation is greedy, so one model gives one text per claim. Pure PyTorch and
transformers, no Django: the model and tokenizer come in as objects, and the tests use a
tiny random model.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from annotation.claims.framer import assertion_core

RULES = (
    "Keep the propositional content exactly the same: asking 'is this true?' of the original "
    "and of your restatement must be the same yes/no question. Only nudge the wording toward "
    "the framing. Add or remove no facts, evidence, numbers or data. Keep the tense. Answer "
    "with the restated claim only, as one sentence."
)
INSTRUCTIONS = {
    "authoritative": "Restate the claim attributing it, at its start or end, to a generic "
                     "credible expert or respected institution, never a named one.",
    "consensus": "Restate the claim presenting it as broadly agreed or accepted by most people "
                 "(no polls or numbers, no unanimity).",
    "emotional": "Restate the same claim in emotionally charged language (no new consequences, "
                 "no exaggeration beyond the claim).",
    "prestige": "Restate the claim associating it with high status, influence or elite "
                "institutions (no invented titles or honours).",
    "sensationalist": "Restate the claim in a dramatic, attention-grabbing way, keeping the "
                      "same claim.",
}
VERIFY_INSTRUCTION = (
    "You check restatements of claims. Answer PASS if the restated claim still asserts the "
    "same thing as the original claim (same facts, same numbers, same tense; only the framing "
    "differs), and FAIL otherwise. Answer with one word: PASS or FAIL."
)
VERDICTS = ("PASS", "FAIL")

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NAME = re.compile(r"\b[A-Z][\w'’-]*")


@dataclass(frozen=True)
class LLMRestatement:
    base_id: str
    framing: str
    text: str
    verdict: str  # PASS or FAIL
    reason: str  # why it failed ("" when it passed)
    pass_probability: float  # the verifier's P(PASS) / (P(PASS) + P(FAIL)); nan if not asked


def lexical_check(original: str, restated: str) -> str:
    """Why `restated` cannot assert what `original` does, or "" if nothing is wrong.

    Every number of the original must appear, no new number may, and every capitalised
    word of the original after its first word (names, mostly) must appear. A restatement
    must be one finished sentence of reasonable length, and must not talk about "the claim"
    (small models often comment on the claim instead of restating it).
    """
    if not restated.strip():
        return "empty restatement"
    if not re.search(r"[.!?][\"'”’)]*$", restated.strip()):
        return "incomplete sentence (the generation was cut off)"
    if len(restated) > 2.5 * len(original) + 100:
        return f"too long ({len(restated)} characters for an original of {len(original)})"
    if "claim" in restated.lower() and "claim" not in original.lower():
        return "talks about the claim instead of restating it"
    numbers = lambda text: sorted(_NUMBER.findall(text))
    if numbers(original) != numbers(restated):
        return f"numbers differ: {numbers(original)} vs {numbers(restated)}"
    core = assertion_core(original)
    names = {m.group(0).lower() for m in _NAME.finditer(core) if m.start() > 0}
    missing = sorted(n for n in names if n not in restated.lower())
    if missing:
        return "names missing: " + ", ".join(missing)
    if restated.strip() == original.strip():
        return "not restated (identical to the original)"
    return ""


def _clean_generation(text: str) -> str:
    """The first non-empty line of a generation, without quotes or a 'Restated claim:' label."""
    for line in text.strip().splitlines():
        line = line.strip()
        if line:
            line = re.sub(r"^(restated( claim)?|restatement|claim)\s*:\s*", "", line, flags=re.I)
            return line.strip().strip('"“”').strip()
    return ""


def _chat(tokenizer, system: str, user: str) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "system", "content": system}, {"role": "user", "content": user}],
        tokenize=False, add_generation_prompt=True,
    )


def generate_restatements(
    model, tokenizer, claims: Sequence[tuple[str, str]], framing: str, *,
    batch_size: int = 8, max_new_tokens: int = 64,
    progress: Callable[[int], object] | None = None,
) -> list[str]:
    """Greedy restatements of `claims` [(base_id, text)] in `framing`, one per claim."""
    import torch

    system = f"{INSTRUCTIONS[framing]} {RULES}"
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    texts = []
    try:
        for start in range(0, len(claims), batch_size):
            batch = claims[start:start + batch_size]
            prompts = [_chat(tokenizer, system, f"Claim: {text}") for _, text in batch]
            encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            encoded = {k: v.to(model.device) for k, v in encoded.items()}
            with torch.no_grad():
                output = model.generate(
                    **encoded, max_new_tokens=max_new_tokens, do_sample=False,
                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                )
            new_tokens = output[:, encoded["input_ids"].shape[1]:]
            for row in tokenizer.batch_decode(new_tokens, skip_special_tokens=True):
                texts.append(_clean_generation(row))
            if progress is not None:
                progress(len(batch))
    finally:
        tokenizer.padding_side = previous_side
    return texts


def verdict_token_ids(tokenizer) -> tuple[int, int]:
    """The first token of each verdict word as the model would begin its answer."""
    ids = []
    for word in VERDICTS:
        tokens = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not tokens:
            raise ValueError(f"the tokenizer gives no token for {word!r}")
        ids.append(tokens[0])
    if ids[0] == ids[1]:
        raise ValueError("PASS and FAIL begin with the same token; this tokenizer cannot verify")
    return ids[0], ids[1]


def verify_prompt(tokenizer, original: str, restated: str) -> str:
    return _chat(tokenizer, VERIFY_INSTRUCTION,
                 f"Original claim: {original}\nRestated claim: {restated}\n"
                 f"Does the restated claim still assert the same thing? Answer PASS or FAIL.")


def pass_probabilities(
    model, tokenizer, pairs: Sequence[tuple[str, str]], *, batch_size: int = 8,
) -> list[float]:
    """P(PASS) / (P(PASS) + P(FAIL)) of the verifier's first answer token, per (original,
    restated) pair: one forward pass per batch, read at each prompt's last position."""
    import torch

    pass_id, fail_id = verdict_token_ids(tokenizer)
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # the last position is then every row's prompt end
    result = []
    try:
        for start in range(0, len(pairs), batch_size):
            prompts = [verify_prompt(tokenizer, o, r) for o, r in pairs[start:start + batch_size]]
            encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            encoded = {k: v.to(model.device) for k, v in encoded.items()}
            with torch.no_grad():
                logits = model(**encoded).logits[:, -1, :].float()
            pair = torch.stack([logits[:, pass_id], logits[:, fail_id]], dim=1)
            result.extend(torch.softmax(pair, dim=1)[:, 0].tolist())
    finally:
        tokenizer.padding_side = previous_side
    return result


def llm_frame(
    claims: Sequence[tuple[str, str]],
    framings: Sequence[str],
    *,
    model,
    tokenizer,
    verifier_model=None,
    verifier_tokenizer=None,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    progress: Callable[[int], object] | None = None,
) -> list[LLMRestatement]:
    """Every claim [(base_id, text)] restated in every framing and verified.

    The verifier defaults to the generating model, as a same-model check; FrameRef used a
    second LLM, which `verifier_model` provides. Restatements that fail the lexical check
    are FAIL without asking the verifier.
    """
    verifier_model = verifier_model or model
    verifier_tokenizer = verifier_tokenizer or tokenizer
    results = []
    for framing in framings:
        if framing == "original":
            continue
        if framing not in INSTRUCTIONS:
            raise ValueError(f"unknown framing {framing!r}")
        texts = generate_restatements(model, tokenizer, claims, framing, batch_size=batch_size,
                                      max_new_tokens=max_new_tokens, progress=progress)
        reasons = [lexical_check(text, restated) for (_, text), restated in zip(claims, texts)]
        to_ask = [i for i, reason in enumerate(reasons) if not reason]
        probabilities = dict(zip(to_ask, pass_probabilities(
            verifier_model, verifier_tokenizer, [(claims[i][1], texts[i]) for i in to_ask],
            batch_size=batch_size)))
        for i, ((base_id, _), restated) in enumerate(zip(claims, texts)):
            p = probabilities.get(i, float("nan"))
            if reasons[i]:
                verdict, reason = "FAIL", reasons[i]
            elif p > 0.5:
                verdict, reason = "PASS", ""
            else:
                verdict, reason = "FAIL", f"verifier answered FAIL (P(PASS) = {p:.2f})"
            results.append(LLMRestatement(base_id, framing, restated, verdict, reason, p))
    return results


FALLBACKS = ("drop", "template")


def rows_framer(
    results: Sequence[LLMRestatement], *, generator: str, fallback: str = "drop",
):
    """A `framer` for `write_framed_claims` that writes the verified LLM restatements.

    A restatement that failed verification is left out, as FrameRef did (`drop`), or
    replaced by the template framer's (`template`), which keeps every framing present.
    """
    from annotation.claims.framer import FramedRow, template_rows

    if fallback not in FALLBACKS:
        raise ValueError(f"unknown fallback {fallback!r}; accepted: {', '.join(FALLBACKS)}")
    by_key = {(r.base_id, r.framing): r for r in results}

    def framer(claim, *, seed: int, framings) -> list:
        templates = {row.framing: row for row in template_rows(claim, seed=seed, framings=framings)}
        rows = [templates["original"]]
        for framing in framings:
            if framing == "original":
                continue
            result = by_key[(claim.base_id, framing)]
            if result.verdict == "PASS":
                rows.append(FramedRow(framing, result.text, "passed",
                                      f"{generator} P(PASS)={result.pass_probability:.2f}"))
            elif fallback == "template":
                fallback_row = templates[framing]
                rows.append(FramedRow(framing, fallback_row.text, fallback_row.verification,
                                      f"{fallback_row.generator} (LLM restatement failed)",
                                      fallback_row.template))
        return rows

    return framer


def write_verification_report(results: Sequence[LLMRestatement], path) -> None:
    """Every restatement with its verdict, P(PASS) and reason, as tab-separated text."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["base_id", "framing", "verdict", "pass_probability", "reason", "text"])
        for r in results:
            asked = not math.isnan(r.pass_probability)  # NaN: the verifier was not asked
            writer.writerow([r.base_id, r.framing, r.verdict,
                             f"{r.pass_probability:.4f}" if asked else "", r.reason, r.text])
