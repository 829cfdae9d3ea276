"""Synthetic claim pools and persona-like score tables, for tests, benchmarks and demos.

Real sentence embeddings are clustered: the framings of one claim sit very close together,
claims on one topic sit near each other, topics are spread over the sphere. The generator
reproduces that structure (which is what makes an inverted-file index work) at any size,
up to FrameRef's 1,073,740 framed claims, without a language model:
``framing = normalise(base + framing_spread * noise)``, ``base = normalise(topic +
topic_spread * noise)``, topics random unit vectors.
"""
from __future__ import annotations

import numpy as np

from simulation.engine import Pool, to_grid

FRAMINGS = ("original", "authoritative", "consensus", "emotional", "prestige", "sensationalist")
#: FrameRef's released dataset size (framed claims, originals included).
FRAMEREF_SIZE = 1_073_740


def synthetic_pool(n_claims: int, *, dim: int = 384, framings=FRAMINGS, n_topics: int | None = None,
                   false_share: float = 0.5, topic_spread: float = 0.6, framing_spread: float = 0.25,
                   seed: int = 0, chunk: int = 131072) -> Pool:
    """A pool of ``n_claims`` framed claims over ``ceil(n_claims / len(framings))`` base claims.

    When ``n_claims`` is not a multiple of the framing count, the surplus restatements of
    the last base claims are left out (as failed verifications are in FrameRef), never the
    originals. Embeddings are generated in chunks straight into one float32 array.
    """
    F = len(framings)
    n_base = -(-n_claims // F)
    n_topics = n_topics or max(2, int(round(np.sqrt(n_base))))
    rng = np.random.default_rng(seed)
    topics = _unit(rng.standard_normal((n_topics, dim), dtype=np.float32))
    topic_of_base = rng.integers(0, n_topics, n_base)
    is_true_base = rng.random(n_base) >= false_share
    surplus = n_base * F - n_claims
    keep = np.ones((n_base, F), dtype=bool)
    if surplus:
        keep[n_base - surplus:, F - 1] = False  # drop one restatement of the last bases
    base = np.repeat(np.arange(n_base), F)[keep.reshape(-1)]
    framing = np.tile(np.arange(F), n_base)[keep.reshape(-1)]
    embeddings = np.empty((len(base), dim), dtype=np.float32)
    base_vectors = np.empty((n_base, dim), dtype=np.float32)
    for start in range(0, n_base, chunk):
        stop = min(n_base, start + chunk)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32) / np.float32(np.sqrt(dim))
        base_vectors[start:stop] = _unit(topics[topic_of_base[start:stop]] + np.float32(topic_spread) * noise)
    for start in range(0, len(base), chunk):
        stop = min(len(base), start + chunk)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32) / np.float32(np.sqrt(dim))
        embeddings[start:stop] = to_grid(_unit(base_vectors[base[start:stop]] + np.float32(framing_spread) * noise))
    del base_vectors
    prefix = np.array([f"synthetic-{i}" for i in range(n_base)], dtype=object)
    names = np.asarray(framings, dtype=object)
    claim_ids = prefix[base] + ":" + names[framing]
    return Pool.build(claim_ids=claim_ids, base_ids=base, true_labels=is_true_base[base],
                      embeddings=embeddings, framings=names[framing], normalise=False)


def persona_scores(pool: Pool, *, competence: float = 1.0, target_framing: str | None = None,
                   credulity: float = 0.0, noise: float = 1.0, seed: int = 0) -> np.ndarray:
    """``float64[n]`` p(SUPPORTS) per claim (in canonical order) for a persona-like model.

    ``logit = competence * (+1 true, -1 false) + noise * N(0, 1)``, plus ``credulity`` on
    false claims in ``target_framing`` (the persona's framing bias).
    """
    rng = np.random.default_rng(seed)
    canonical = np.argsort(pool.rank)
    is_true = pool.is_true[canonical]
    logit = competence * np.where(is_true, 1.0, -1.0) + noise * rng.standard_normal(pool.size)
    if target_framing is not None and pool.framing is not None:
        framing = np.asarray(pool.framing_names, dtype=object)[pool.framing[canonical]]
        logit += np.where((framing == target_framing) & ~is_true, credulity, 0.0)
    return 1.0 / (1.0 + np.exp(-logit))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
