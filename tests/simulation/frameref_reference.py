"""REFERENCE ONLY: a faithful, deliberately simple re-implementation of FrameRef's trajectory
loop (method.md section 4), kept as the oracle the vectorised engine is tested and
benchmarked against. It walks one trajectory at a time, keeps the pool as a Python list and
scans it at every step, as the research scripts do; it is slow on purpose and is never used
by the platform.

Its random draws go through a small ``draws`` object so they can come either from the
trajectory's own generator in the natural way (``NaturalDraws``: ``rng.integers`` and
``rng.choice``, as research code would write it) or from the engine's per-trajectory
uniforms (``AlignedDraws``), in which case engine and reference must produce the same
trajectories claim for claim.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SUPPORTS, REFUTES = "SUPPORTS", "REFUTES"


class NaturalDraws:
    """Draws as FrameRef-style code makes them, from one generator."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def uniform(self, remaining: list[int], step: int) -> int:
        return remaining[int(self.rng.integers(len(remaining)))]

    def softmax(self, candidates: list[int], probabilities: list[float], step: int) -> int:
        return candidates[int(self.rng.choice(len(candidates), p=np.asarray(probabilities)))]


class AlignedDraws:
    """Draws driven by the engine's uniforms ``u[t, 0]`` (uniform) and ``u[t, 1]`` (softmax)."""

    def __init__(self, uniforms: np.ndarray):
        self.u = uniforms

    def uniform(self, remaining: list[int], step: int) -> int:
        return remaining[min(int(math.floor(self.u[step, 0] * len(remaining))), len(remaining) - 1)]

    def softmax(self, candidates: list[int], probabilities: list[float], step: int) -> int:
        target = self.u[step, 1] * sum(probabilities)
        cumulative = 0.0
        for claim, p in zip(candidates, probabilities):
            cumulative += p
            if cumulative > target:
                return claim
        return candidates[-1]


@dataclass
class ReferenceTrajectory:
    claims: list[int]
    predictions: list[str]
    confidences: list[float]
    rewards: list[float]
    H: list[float]


def reference_trajectory(*, base_ids, labels, embeddings, judge, draws, steps: int,
                         window: int = 3, top_k: int = 5, temperature: float = 0.1,
                         reinforce_false: bool = True, grid: float | None = None) -> ReferenceTrajectory:
    """One trajectory. ``labels[i]`` is SUPPORTS/REFUTES; ``judge(i, t) -> (label, conf)``.

    ``grid``: round the context to multiples of ``1 / grid``, as the engine stores every
    vector (``simulation.engine.GRID_SCALE``); None keeps FrameRef's float context.
    """
    remaining = list(range(len(base_ids)))
    history: list[int] = []
    out = ReferenceTrajectory([], [], [], [], [])
    H = 0.0
    claim = draws.uniform(remaining, 0)
    for t in range(steps):
        history.append(claim)
        predicted, confidence = judge(claim, t)
        reward = confidence if predicted == labels[claim] else -confidence
        H += reward
        out.claims.append(claim)
        out.predictions.append(predicted)
        out.confidences.append(confidence)
        out.rewards.append(reward)
        out.H.append(H)
        # FrameRef removes every variant of the shown base claim by scanning the pool.
        remaining = [i for i in remaining if base_ids[i] != base_ids[claim]]
        if t == steps - 1:
            break
        if predicted == SUPPORTS:
            recent = history[-window:]
            context = np.zeros(embeddings.shape[1])
            for i in recent:
                context = context + embeddings[i].astype(np.float64)
            context = context / np.linalg.norm(context)
            if grid is not None:
                context = np.rint(context * grid) / grid
            candidates = remaining
            if reinforce_false and labels[claim] == REFUTES:
                candidates = [i for i in remaining if labels[i] == REFUTES] or remaining
            scored = []
            for i in candidates:
                scored.append((float(np.dot(embeddings[i].astype(np.float64), context)), i))
            scored.sort(key=lambda pair: (-pair[0], pair[1]))
            top = scored[:top_k]
            best = top[0][0]
            weights = [math.exp((s - best) / temperature) for s, _ in top]
            total = sum(weights)
            claim = draws.softmax([i for _, i in top], [w / total for w in weights], t + 1)
        else:
            claim = draws.uniform(remaining, t + 1)
            history = []
    return out
