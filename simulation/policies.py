"""Exposure policies: how the next claim of a trajectory is chosen (the "recommender").

A policy answers three vectorised questions for the engine (``simulation.engine.Policy``):
which trajectories take their next claim from the semantic neighbourhood of their recent
history (the others draw uniformly and restart their history), which of those searches keep
only false candidates, and with what logits the top-k candidates are sampled. The engine
owns everything else (removal of shown base claims, the random streams), so every policy is
compared on the same footing.

Policies are built by name from a parameter dict, as a run stores them:
``make_policy("frameref", {"window": 3, "top_k": 5, "temperature": 0.1})``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

import numpy as np


class PolicyError(ValueError):
    """An unknown policy, an unknown parameter or a value out of range."""


@dataclass(frozen=True)
class NeighbourhoodPolicy:
    """FrameRef's family of policies, parameterised.

    - ``window``: how many recent claims of the current history form the context;
    - ``top_k``: how many nearest remaining claims are candidates;
    - ``temperature``: softmax temperature over their cosine similarities;
    - ``reinforce_false``: after a false claim was accepted, keep only false candidates
      (FrameRef's reinforcement of misinformation; the whole pool if none is left);
    - ``false_weight``: multiplies the sampling weight of false candidates (1 = neutral;
      below 1 a health-aware recommender that demotes misinformation near what the reader
      just accepted; 0 never shows a false candidate unless all top-k are false, then the
      top-k are sampled as if it were 1);
    - ``follow_on_reject``: take the neighbourhood after a rejection too (no jump).
    """

    name: str = "frameref"
    window: int = 3
    top_k: int = 5
    temperature: float = 0.1
    reinforce_false: bool = True
    false_weight: float = 1.0
    follow_on_reject: bool = False

    def __post_init__(self):
        if int(self.window) != self.window or self.window < 1:
            raise PolicyError(f"window must be a positive integer, not {self.window!r}")
        if int(self.top_k) != self.top_k or self.top_k < 1:
            raise PolicyError(f"top_k must be a positive integer, not {self.top_k!r}")
        if not self.temperature > 0:
            raise PolicyError(f"temperature must be positive, not {self.temperature!r}")
        if not 0 <= self.false_weight <= 1:
            raise PolicyError(f"false_weight must lie in [0, 1], not {self.false_weight!r}")

    def follows_neighbourhood(self, accepted: np.ndarray) -> np.ndarray:
        accepted = np.asarray(accepted, dtype=bool)
        return np.ones_like(accepted) if self.follow_on_reject else accepted

    def restrict_to_false(self, accepted: np.ndarray, claim_is_true: np.ndarray) -> np.ndarray:
        accepted = np.asarray(accepted, dtype=bool)
        if not self.reinforce_false:
            return np.zeros_like(accepted)
        return accepted & ~np.asarray(claim_is_true, dtype=bool)

    def candidate_logits(self, similarity: np.ndarray, candidate_is_true: np.ndarray) -> np.ndarray:
        logits = np.asarray(similarity, dtype=np.float64) / self.temperature
        if self.false_weight < 1:
            with np.errstate(divide="ignore"):
                penalty = np.log(self.false_weight)
            logits = np.where(candidate_is_true, logits, logits + penalty)
        return logits

    def parameters(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}


@dataclass(frozen=True)
class UniformPolicy:
    """Every claim uniform from the remaining pool: the no-recommender control."""

    name: str = "uniform"
    window: int = 1
    top_k: int = 1

    def follows_neighbourhood(self, accepted: np.ndarray) -> np.ndarray:
        return np.zeros(np.shape(accepted), dtype=bool)

    def restrict_to_false(self, accepted: np.ndarray, claim_is_true: np.ndarray) -> np.ndarray:
        return np.zeros(np.shape(accepted), dtype=bool)

    def candidate_logits(self, similarity: np.ndarray, candidate_is_true: np.ndarray) -> np.ndarray:
        return np.zeros(np.shape(similarity))

    def parameters(self) -> dict[str, Any]:
        return {}


#: name -> (what it is, the defaults a parameter dict overrides)
POLICIES: dict[str, tuple[str, dict[str, Any]]] = {
    "frameref": (
        "FrameRef's reinforcement policy: neighbourhood after acceptance, false-only after "
        "an accepted false claim, uniform jump and history reset after rejection",
        dict(window=3, top_k=5, temperature=0.1, reinforce_false=True, false_weight=1.0),
    ),
    "similarity": (
        "neighbourhood after acceptance without truth reinforcement (no false-only restriction)",
        dict(window=3, top_k=5, temperature=0.1, reinforce_false=False, false_weight=1.0),
    ),
    "health-aware": (
        "similarity policy that down-weights false candidates by false_weight",
        dict(window=3, top_k=5, temperature=0.1, reinforce_false=False, false_weight=0.2),
    ),
    "uniform": ("every claim uniform from the remaining pool", {}),
}

_BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def make_policy(name: str, params: Mapping[str, Any] | None = None):
    """The policy ``name`` (a key of :data:`POLICIES`) with ``params`` over its defaults.

    Values may be strings (from a command line or a form); they are converted to the
    parameter's type. Unknown names and parameters raise :class:`PolicyError` listing the
    accepted ones.
    """
    if name not in POLICIES:
        raise PolicyError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}")
    defaults = POLICIES[name][1]
    params = dict(params or {})
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        accepted = ", ".join(defaults) or "none"
        raise PolicyError(f"policy {name!r} has no parameter {unknown[0]!r}; accepted: {accepted}")
    if name == "uniform":
        return UniformPolicy()
    values = dict(defaults)
    for key, raw in params.items():
        values[key] = _convert(name, key, raw, defaults[key])
    return NeighbourhoodPolicy(name=name, **values)


def _convert(policy: str, key: str, raw: Any, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            return _BOOL_WORDS[str(raw).strip().lower()]
        if isinstance(default, int):
            value = float(raw)
            if value != int(value):
                raise ValueError
            return int(value)
        return float(raw)
    except (KeyError, ValueError, TypeError):
        kind = "true/false" if isinstance(default, bool) else type(default).__name__
        raise PolicyError(f"policy {policy!r} parameter {key!r}: {raw!r} is not a {kind}") from None


def parse_policy_params(pairs: list[str] | None) -> dict[str, str]:
    """``["top_k=10", "temperature=0.2"]`` -> ``{"top_k": "10", "temperature": "0.2"}``."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise PolicyError(f"policy parameter {pair!r} is not of the form name=value")
        out[key.strip()] = value.strip()
    return out


__all__ = ["NeighbourhoodPolicy", "UniformPolicy", "POLICIES", "PolicyError", "make_policy",
           "parse_policy_params"]
