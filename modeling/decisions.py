"""Decision rules: how a persona turns its two label probabilities into a label.

A persona (a language model) gives each claim a probability for each of the two label
sequences. With ``p = P(SUPPORTS)`` normalised over the two labels:

- ``argmax``: SUPPORTS when ``p >= 1 - p`` (the more probable label; deterministic);
- ``sample:T:P``: sampling at temperature ``T`` with top-p ``P``, applied to the two-label
  distribution, as ``transformers``' ``generate(do_sample=True, temperature=T, top_p=P)``
  does over the vocabulary. The tempered probability is
  ``q = p^(1/T) / (p^(1/T) + (1 - p)^(1/T))``; top-p keeps the most probable label alone
  when its tempered probability is at least ``P``, otherwise both; the label is drawn
  from what is kept (SUPPORTS when the draw ``u < q``);
- ``frameref``: ``sample:0.6:0.9``, the generation config Llama-3.1-8B-Instruct ships
  (``do_sample: true, temperature: 0.6, top_p: 0.9``), which FrameRef used because it
  called ``model.generate`` without ``do_sample`` (docs/method.md, "Decision rules").

Whatever the rule, the confidence of a judgment stays the untempered probability of the
chosen label. A sampling rule takes one uniform draw per judgment (always one, whether or
not top-p left a choice), which the simulation engine takes from the trajectory's own
stream, so a run stays bit-identical however it is split into shards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MODES = ("argmax", "sample")
#: The one-word presets; ``sample:T:P`` names any other sampling rule.
PRESETS = {"argmax": ("argmax", 1.0, 1.0), "frameref": ("sample", 0.6, 0.9)}
ACCEPTED = "argmax, frameref (sample at T 0.6, top-p 0.9) or sample:T:P (T > 0, 0 < P <= 1)"


class DecisionRuleError(ValueError):
    """A decision rule that cannot be read; the message shows what is accepted."""


@dataclass(frozen=True)
class DecisionRule:
    mode: str = "argmax"
    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise DecisionRuleError(f"decision mode {self.mode!r}: accepted: {ACCEPTED}")
        t, p = float(self.temperature), float(self.top_p)
        if not (math.isfinite(t) and t > 0):
            raise DecisionRuleError(f"decision temperature {self.temperature!r}: accepted: a number > 0")
        if not (math.isfinite(p) and 0 < p <= 1):
            raise DecisionRuleError(f"decision top-p {self.top_p!r}: accepted: a number in (0, 1]")
        object.__setattr__(self, "temperature", t)
        object.__setattr__(self, "top_p", p)

    @property
    def samples(self) -> bool:
        return self.mode == "sample"

    @property
    def uniforms_per_judgment(self) -> int:
        return 1 if self.samples else 0

    def text(self) -> str:
        """The canonical text form: a preset's word where it is one, else ``sample:T:P``."""
        for word, (mode, t, p) in PRESETS.items():
            if self.mode == mode and (mode == "argmax" or (self.temperature, self.top_p) == (t, p)):
                return word
        return f"sample:{self.temperature:g}:{self.top_p:g}"

    def tempered(self, p_supports: np.ndarray) -> np.ndarray:
        """The tempered P(SUPPORTS) of normalised probabilities ``p_supports``."""
        return tempered_probability(p_supports, self.temperature)

    def decide(self, p_supports: np.ndarray, u: np.ndarray | None = None) -> np.ndarray:
        """``bool[n]``: SUPPORTS per claim, from normalised P(SUPPORTS) and (sampling) draws ``u``."""
        p = np.asarray(p_supports, dtype=np.float64)
        if not self.samples:
            return p >= 1.0 - p
        if u is None:
            raise DecisionRuleError("a sampling decision rule needs one uniform draw per judgment")
        q = self.tempered(p)
        top_is_supports = q >= 0.5
        top = np.where(top_is_supports, q, 1.0 - q)
        alone = top >= self.top_p
        return np.where(alone, top_is_supports, np.asarray(u, dtype=np.float64) < q)

    def p_supports_decision(self, p_supports: np.ndarray) -> np.ndarray:
        """``float[n]``: the probability that :meth:`decide` says SUPPORTS (1 or 0 where it
        is deterministic): the expected acceptance under this rule."""
        p = np.asarray(p_supports, dtype=np.float64)
        if not self.samples:
            return (p >= 1.0 - p).astype(np.float64)
        q = self.tempered(p)
        top_is_supports = q >= 0.5
        alone = np.where(top_is_supports, q, 1.0 - q) >= self.top_p
        return np.where(alone, top_is_supports.astype(np.float64), q)


ARGMAX = DecisionRule()
FRAMEREF = DecisionRule("sample", 0.6, 0.9)


def tempered_probability(p_supports, temperature: float) -> np.ndarray:
    """``p^(1/T) / (p^(1/T) + (1 - p)^(1/T))``, computed as ``sigmoid(logit(p) / T)`` so
    that small temperatures neither underflow nor divide zero by zero (p = 0 and 1 stay)."""
    p = np.clip(np.asarray(p_supports, dtype=np.float64), 0.0, 1.0)
    if float(temperature) == 1.0:
        return p  # exactly, not up to rounding
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        logit = (np.log(p) - np.log1p(-p)) / float(temperature)
        return 1.0 / (1.0 + np.exp(-logit))


def parse_decision(value) -> DecisionRule:
    """A decision rule from its text (``argmax``, ``frameref``, ``sample:T:P``), a
    :class:`DecisionRule`, or None (argmax)."""
    if value is None:
        return ARGMAX
    if isinstance(value, DecisionRule):
        return value
    if not isinstance(value, str):
        raise DecisionRuleError(f"decision {value!r}: accepted: {ACCEPTED}")
    text = value.strip().lower()
    if text in PRESETS:
        return DecisionRule(*PRESETS[text])
    parts = text.split(":")
    if parts[0] == "sample" and len(parts) == 3:
        try:
            t, p = float(parts[1]), float(parts[2])
        except ValueError:
            raise DecisionRuleError(f"decision {value!r}: accepted: {ACCEPTED}") from None
        try:
            return DecisionRule("sample", t, p)
        except DecisionRuleError as exc:
            raise DecisionRuleError(f"decision {value!r}: {exc}") from None
    raise DecisionRuleError(f"decision {value!r}: accepted: {ACCEPTED}")
