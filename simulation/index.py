"""Nearest-neighbour candidates for pools of millions of claims: an inverted-file (IVF) index.

Exact mode compares every context with every remaining claim, which costs
``pool size x dim`` per accepted step and dominates a run on FrameRef's full 1,073,740
claims. The index partitions the unit-norm embeddings with spherical k-means into lists;
a context probes the ``n_probe`` lists whose centroids are nearest and the claims of those
lists are re-ranked exactly (full-dimensional cosine, the same masks and tie-breaking as
exact mode). It is approximate only in which lists are probed; :func:`measure_recall`
reports how much of the exact top-k it finds, and ``n_probe = n_lists`` makes it exact.
:func:`tune_probes` measures that recall on contexts sampled from the pool, with and without
the false-only filter of reinforcement, and probes more lists until a target recall
(``DEFAULT_TARGET_RECALL``, 0.99) is met: on real text (templated claims whose framings
share most of their words) a few probed lists find much less than on synthetic clusters.

The index stores each list contiguously by re-ordering the pool (``index.pool``, see
``Pool.reordered``); the re-ordered pool keeps the canonical order, so a seed gives the same
trajectories, as claim ids, over either pool. Run indexed trajectories over ``index.pool``.
Implemented in numpy (no faiss): the whole index is the centroids, the re-ordering and the
list offsets.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from simulation.engine import (
    Pool,
    _order_candidates,
    exact_top_k,
    largest_columns,
    similarities,
    to_grid,
)


@dataclass(frozen=True, eq=False)
class IVFIndex:
    """``centroids: float32[L, d]`` unit norm; list ``l`` holds ``pool`` rows
    ``offsets[l]:offsets[l+1]``; ``n_probe`` lists are searched per query."""

    pool: Pool
    centroids: np.ndarray
    offsets: np.ndarray
    n_probe: int

    @property
    def n_lists(self) -> int:
        return int(self.centroids.shape[0])

    @classmethod
    def build(cls, pool: Pool, *, n_lists: int | None = None, n_probe: int | None = None,
              iterations: int = 6, sample_size: int | None = None, seed: int = 0,
              progress=None) -> "IVFIndex":
        """Spherical k-means on a sample, then every claim to its nearest centroid.

        Defaults: ``n_lists = sqrt(n)`` rounded (about 1,000 lists for a million claims:
        fewer, longer lists keep the per-step loop over probed lists short), ``n_probe = 3``
        (recall of the exact top-5 0.998 on 300,000 synthetic claims; on real text, the
        fact corpus with MiniLM embeddings, only 0.966, 0.907 among false claims: use
        :func:`tune_probes` to reach a target),
        a sample of ``32 * n_lists`` claims. ``progress(n)`` gets the number of claims
        assigned.
        """
        n = pool.size
        if n_lists is None:
            n_lists = max(1, int(round(math.sqrt(n))))
        n_lists = int(min(n_lists, n))
        if n_probe is None:
            n_probe = min(3, n_lists)
        if not 1 <= n_probe <= n_lists:
            raise ValueError(f"n_probe must lie in 1..{n_lists}, not {n_probe}")
        rng = np.random.default_rng(seed)
        sample_size = min(n, sample_size or 32 * n_lists)
        sample = pool.embeddings[np.sort(rng.choice(n, size=sample_size, replace=False))]
        centroids = sample[rng.choice(sample_size, size=n_lists, replace=False)].copy()
        for _ in range(iterations):
            assign = _nearest(sample, centroids)
            sums = np.zeros_like(centroids, dtype=np.float64)
            np.add.at(sums, assign, sample)
            counts = np.bincount(assign, minlength=n_lists)
            empty = counts == 0
            # An empty list takes a random sample point, so no centroid is wasted.
            sums[empty] = sample[rng.choice(sample_size, size=int(empty.sum()))]
            norms = np.linalg.norm(sums, axis=1, keepdims=True)
            centroids = to_grid(sums / np.where(norms == 0, 1, norms))
        assign = _nearest(pool.embeddings, centroids, progress=progress)
        order = np.argsort(assign, kind="stable")
        offsets = np.concatenate(([0], np.cumsum(np.bincount(assign, minlength=n_lists)))).astype(np.int64)
        return cls(pool=pool.reordered(order, column_major=True), centroids=centroids, offsets=offsets, n_probe=int(n_probe))

    def check_pool(self, pool: Pool) -> None:
        if pool is not self.pool:
            raise ValueError("an indexed run must use the index's own pool (index.pool), which "
                             "stores each list contiguously")

    def with_probes(self, n_probe: int) -> "IVFIndex":
        if not 1 <= n_probe <= self.n_lists:
            raise ValueError(f"n_probe must lie in 1..{self.n_lists}, not {n_probe}")
        return IVFIndex(pool=self.pool, centroids=self.centroids, offsets=self.offsets, n_probe=int(n_probe))

    def top_k(self, pool: Pool, queries: np.ndarray, *, k: int, removed_bits: np.ndarray | None = None,
              restrict_false: np.ndarray | None = None, bit_rows: np.ndarray | None = None):
        """Top-k eligible claims of the probed lists, re-ranked exactly.

        Same contract as :func:`simulation.engine.exact_top_k`; rows whose probed lists hold
        fewer than k eligible claims come back with -1 padding (the engine then falls back
        to the exact search for them).
        """
        m = queries.shape[0]
        if removed_bits is None:
            removed_bits = np.zeros((m, (pool.size + 7) // 8), dtype=np.uint8)
        if restrict_false is None:
            restrict_false = np.zeros(m, dtype=bool)
        workers = max(1, min(_search_threads(), m))
        executor = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
        try:
            probes = self._probes(queries, executor, workers)
            return self._search_lists(pool, queries, probes, k, removed_bits, restrict_false, bit_rows,
                                      executor, workers)
        finally:
            if executor is not None:
                executor.shutdown()

    def _probes(self, queries, executor, workers) -> np.ndarray:
        """``int64[m, n_probe]``: the lists whose centroids are nearest each query. Rows are
        split between the threads (the products are exact, so the split changes nothing)."""
        m, P = queries.shape[0], self.n_probe
        if P >= self.n_lists:
            return np.broadcast_to(np.arange(self.n_lists), (m, P)).copy()
        probes = np.empty((m, P), dtype=np.int64)
        if m == 0:
            return probes

        def nearest(sl):
            probes[sl] = largest_columns(similarities(queries[sl], self.centroids), P)

        parts = [slice(start, start + -(-m // workers)) for start in range(0, m, -(-m // workers))]
        if executor is None:
            for sl in parts:
                nearest(sl)
        else:
            for future in [executor.submit(nearest, sl) for sl in parts]:
                future.result()
        return probes

    def _search_lists(self, pool, queries, probes, k, removed_bits, restrict_false, bit_rows, executor, workers):
        m, P = probes.shape
        best_idx = np.full((m, P * k), -1, dtype=np.int64)
        best_sim = np.full((m, P * k), -np.inf, dtype=np.float32)
        pair_list = probes.reshape(-1)
        pair_row = np.repeat(np.arange(m), P)
        pair_slot = np.tile(np.arange(P), m)
        order = np.argsort(pair_list, kind="stable")
        pair_list, pair_row, pair_slot = pair_list[order], pair_row[order], pair_slot[order]
        bounds = np.flatnonzero(np.diff(pair_list)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [len(pair_list)]))
        groups = list(zip(starts.tolist(), ends.tolist()))

        def search(part):
            # Each (row, probed slot) pair belongs to exactly one list, so threads write
            # disjoint cells of best_idx / best_sim.
            for s, e in part:
                lst = int(pair_list[s])
                lo, hi = int(self.offsets[lst]), int(self.offsets[lst + 1])
                if hi == lo:
                    continue
                rows = pair_row[s:e]
                sims = similarities(queries[rows], pool.embeddings[lo:hi])
                # Removed claims of each row's trajectory: the list's bytes of the packed mask,
                # unpacked (a contiguous slice per row rather than a gather per claim).
                mask_rows = rows if bit_rows is None else bit_rows[rows]
                packed = removed_bits[mask_rows, lo >> 3:(hi + 7) >> 3]
                removed = np.unpackbits(packed, axis=1, bitorder="little")[:, (lo & 7):(lo & 7) + hi - lo]
                removed = removed.view(bool)
                restrict = restrict_false[rows]
                if restrict.any():
                    removed[restrict] |= pool.is_true[lo:hi]
                np.putmask(sims, removed, -np.inf)
                kk = min(k, hi - lo)
                top = largest_columns(sims, kk)
                vals = np.take_along_axis(sims, top, axis=1)
                cols = pair_slot[s:e, None] * k + np.arange(kk)
                best_idx[rows[:, None], cols] = np.where(np.isfinite(vals), top + lo, -1)
                best_sim[rows[:, None], cols] = vals

        if executor is None or len(groups) <= 1:
            search(groups)
        else:
            # numpy releases the GIL in the matrix products, unpacking and partitions, so
            # interleaved shares of the lists run on several cores; the results do not depend
            # on which thread searched a list.
            for future in [executor.submit(search, groups[w::workers]) for w in range(workers)]:
                future.result()
        return _order_candidates(pool, best_idx, best_sim, k)


def _search_threads() -> int:
    """Threads for the list search: ``FRAMELAB_SIM_THREADS``, else the usable CPUs (at most 4)."""
    configured = os.environ.get("FRAMELAB_SIM_THREADS")
    if configured:
        return max(1, int(configured))
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def _nearest(points: np.ndarray, centroids: np.ndarray, progress=None) -> np.ndarray:
    out = np.empty(points.shape[0], dtype=np.int64)
    chunk = max(1024, (1 << 24) // max(1, centroids.shape[0]))  # 64 MiB of similarities at a time
    for start in range(0, points.shape[0], chunk):
        block = points[start:start + chunk]
        out[start:start + chunk] = np.argmax(block @ centroids.T, axis=1)
        if progress is not None:
            progress(block.shape[0])
    return out


def recall_queries(pool: Pool, n: int, *, window: int = 3, seed: int = 0) -> np.ndarray:
    """Contexts like a trajectory's: the normalised mean of a random claim and its
    ``window - 1`` nearest claims of other base claims (``float32[n, d]``)."""
    rng = np.random.default_rng(seed)
    starts = rng.choice(pool.size, size=n, replace=False)
    removed = np.zeros((n, (pool.size + 7) // 8), dtype=np.uint8)
    for row, claim in enumerate(starts):  # small n: mark the start's own framings
        for c in pool.base_claims[pool.base[claim]]:
            if c >= 0:
                removed[row, c >> 3] |= np.uint8(1 << (c & 7))
    near, _ = exact_top_k(pool, pool.embeddings[starts], k=max(1, window - 1), removed_bits=removed,
                          restrict_false=np.zeros(n, dtype=bool))
    context = pool.embeddings[starts].astype(np.float64) + pool.embeddings[near].astype(np.float64).sum(axis=1)
    context /= np.linalg.norm(context, axis=1, keepdims=True)
    return to_grid(context)


#: The recall of the exact top-k that :func:`tune_probes` probes enough lists to reach.
DEFAULT_TARGET_RECALL = 0.99


def _search_arguments(pool: Pool, m: int, false_only: bool):
    return dict(removed_bits=np.zeros((m, (pool.size + 7) // 8), dtype=np.uint8),
                restrict_false=np.full(m, bool(false_only)))


def _share_found(exact: np.ndarray, approx: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(a[a >= 0], b[b >= 0])) for a, b in zip(exact, approx))
    return hits / max(1, int((exact >= 0).sum()))


def measure_recall(index: IVFIndex, queries: np.ndarray, *, k: int = 5, false_only: bool = False) -> float:
    """Share of the exact top-k (over the whole pool) that the indexed search returns;
    ``false_only``: among false claims only, as a step after an accepted false claim searches."""
    pool = index.pool
    arguments = _search_arguments(pool, queries.shape[0], false_only)
    exact, _ = exact_top_k(pool, queries, k=k, **arguments)
    approx, _ = index.top_k(pool, queries, k=k, **arguments)
    return _share_found(exact, approx)


def tune_probes(index: IVFIndex, queries: np.ndarray, *, k: int = 5,
                target: float = DEFAULT_TARGET_RECALL) -> tuple[IVFIndex, dict]:
    """The index probing the fewest lists (from its own ``n_probe`` up, growing by half each
    time) whose recall of the exact top-k meets ``target`` on ``queries``, both over the whole
    pool and among false claims only (the lower of the two counts); probing every list is
    exact, so the target is always met in the end.

    Returns the index and what was measured: ``lists, probes, k, target_recall,
    recall_at_top_k, recall_false_only, recall_queries, target_met, tried`` (one
    ``[probes, recall, recall_false_only]`` per probe count measured).
    """
    if not 0 < target <= 1:
        raise ValueError(f"target recall must lie in (0, 1], not {target!r}")
    pool = index.pool
    m = queries.shape[0]
    exact = {flag: exact_top_k(pool, queries, k=k, **_search_arguments(pool, m, flag))[0]
             for flag in (False, True)}
    probes, tried = index.n_probe, []
    while True:
        candidate = index.with_probes(probes)
        found = [_share_found(exact[flag], candidate.top_k(pool, queries, k=k, **_search_arguments(pool, m, flag))[0])
                 for flag in (False, True)]
        tried.append([probes, found[0], found[1]])
        if min(found) >= target or probes >= index.n_lists:
            break
        probes = min(index.n_lists, max(probes + 1, math.ceil(probes * 1.5)))
    return candidate, {
        "lists": index.n_lists, "probes": candidate.n_probe, "k": int(k), "target_recall": float(target),
        "recall_at_top_k": found[0], "recall_false_only": found[1], "recall_queries": int(m),
        "target_met": bool(min(found) >= target), "tried": tried,
    }
