"""The IVF index's measured recall and the probe count that meets a target recall."""
from __future__ import annotations

import numpy as np
import pytest

from simulation.engine import Pool
from simulation.index import (
    DEFAULT_TARGET_RECALL,
    IVFIndex,
    measure_recall,
    recall_queries,
    tune_probes,
)
from simulation.synthetic_pool import synthetic_pool


def diffuse_pool(n_base=1200, dim=24, seed=0):
    """Claims scattered without topic clusters (as templated real text is, to an index): a
    handful of probed lists misses much of the exact top-k."""
    rng = np.random.default_rng(seed)
    base = np.repeat(np.arange(n_base), 3)
    centre = rng.normal(size=(n_base, dim))[base]
    return Pool.build(claim_ids=[f"b{b}:{i % 3}" for i, b in enumerate(base)], base_ids=base,
                      true_labels=rng.random(n_base)[base] < 0.5,
                      embeddings=centre + 0.3 * rng.normal(size=(len(base), dim)),
                      framings=[("original", "authoritative", "consensus")[i % 3] for i in range(len(base))])


def test_probes_grow_until_the_target_recall_is_met_with_and_without_the_false_only_filter():
    """Guards against an index that keeps its default probes whatever recall they give: on a
    diffuse pool 3 probed lists miss the target, and the tuned index meets it over the whole
    pool and among false claims only, as measured again independently."""
    index = IVFIndex.build(diffuse_pool(), n_lists=60, n_probe=3, seed=0)
    queries = recall_queries(index.pool, 150, seed=2)
    before = measure_recall(index, queries, k=5)
    assert before < 0.9
    tuned, report = tune_probes(index, queries, k=5, target=0.99)
    assert tuned.n_probe > 3 and report["probes"] == tuned.n_probe and report["lists"] == 60
    assert report["target_met"] and report["target_recall"] == 0.99
    assert report["recall_at_top_k"] == measure_recall(tuned, queries, k=5) >= 0.99
    assert report["recall_false_only"] == measure_recall(tuned, queries, k=5, false_only=True) >= 0.99
    assert report["tried"][0] == [3, before, measure_recall(index, queries, k=5, false_only=True)]
    probes = [row[0] for row in report["tried"]]
    assert probes == sorted(probes) and probes[-1] == tuned.n_probe
    # The probe count before the last missed the target (it is the fewest tried that meets it).
    assert min(report["tried"][-2][1:]) < 0.99
    assert report["recall_queries"] == 150 and report["k"] == 5


def test_a_met_target_keeps_the_probes_and_probing_every_list_is_exact():
    pool = synthetic_pool(3_000, dim=32, seed=3)
    index = IVFIndex.build(pool, n_lists=30, n_probe=3, seed=0)
    queries = recall_queries(index.pool, 100, seed=1)
    easy, report = tune_probes(index, queries, target=min(measure_recall(index, queries), 0.5))
    assert easy.n_probe == 3 and len(report["tried"]) == 1
    full, report = tune_probes(IVFIndex.build(diffuse_pool(400), n_lists=12, n_probe=1, seed=0),
                               recall_queries(IVFIndex.build(diffuse_pool(400), n_lists=12, seed=0).pool, 50),
                               target=1.0)
    assert report["target_met"] and report["recall_at_top_k"] == 1.0 and report["recall_false_only"] == 1.0
    assert DEFAULT_TARGET_RECALL == 0.99
    with pytest.raises(ValueError, match="target recall must lie in"):
        tune_probes(index, queries, target=1.5)
