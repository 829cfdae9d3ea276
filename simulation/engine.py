"""Vectorised Monte Carlo information-health trajectories (method.md section 4), no Django.

FrameRef's research loop walks one trajectory at a time and scans the whole claim pool in
Python at every step. Here every trajectory of a batch advances together: the state is a set
of arrays over (trajectory, pool) — a bit-packed "removed" mask, the claims shown so far —
similarities are one matrix product per step, candidates a masked top-k, and each draw
comes from the trajectory's own random stream, so a seed gives the same result whether the
trajectories run in one process or are split into shards over many machines.

The process, per trajectory (``steps`` = T):

* the first claim is uniform from the pool;
* at step t the agent judges claim c_t; reward ``r_t = +conf`` if its predicted label equals
  the true label, else ``-conf``; ``H_t = H_{t-1} + r_t`` with ``H_0 = 0``;
* all framings of c_t's base claim leave the trajectory's pool;
* the policy (``simulation.policies``) picks c_{t+1}: FrameRef's policy takes it from the
  semantic neighbourhood of the recent history when the agent accepted, and uniformly (with
  a history reset) when it rejected.

Random streams. Trajectory ``i`` of run ``r`` draws from
``numpy.random.default_rng(SeedSequence(seed, spawn_key=(r, i)))`` — the same stream as
``SeedSequence(seed).spawn(r + 1)[r].spawn(i + 1)[i]`` — first a block ``float64[T, 2]``
for the policy (column 0: the uniform draw of a claim chosen uniformly at step t, column 1:
the draw that samples the neighbourhood's softmax at step t), then a block
``float64[T, agent.uniforms_per_step]`` for the agent. Every agent therefore sees the same
policy draws for the same trajectory number (common random numbers), which makes paired
comparisons between agents sharper.

Similarities are exact. Embeddings, contexts and index centroids are stored on a grid of
multiples of ``2**-11`` (:func:`to_grid`: each unit-norm vector's components rounded by at
most 2.4e-4, cosines moved by about 2e-4, far less than what separates neighbours in
practice). A product of two grid values is a multiple of ``2**-22`` and every partial sum of
a dot product of two near-unit grid vectors stays under ``2**24`` such units, so float32
holds every intermediate result exactly: a similarity is the exact dot product of the grid
vectors whatever order BLAS adds in, however it blocks or threads a matrix product and
whatever other queries share the call. That is what makes a seed give the same
trajectories to the bit however a run is split, with plain (fast) matrix products.

Two exactly specified choices make trajectories reproducible, also by the test oracle
(``tests/simulation/frameref_reference.py``):

* a uniform choice with draw ``u`` takes the ``floor(u * n_remaining)``-th remaining claim
  in pool order;
* a softmax choice with draw ``u`` orders the candidates by similarity (ties by pool order)
  and takes the first whose cumulative probability exceeds ``u``.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol, Sequence

import numpy as np

SUPPORTS = "SUPPORTS"
REFUTES = "REFUTES"
LABELS = (SUPPORTS, REFUTES)

#: Embeddings, contexts and centroids are multiples of 1 / GRID_SCALE (see the module notes).
GRID_SCALE = 2048.0
#: How far from unit norm embeddings given with ``normalise=False`` may be (exactness holds
#: up to norm 2).
_NORM_TOLERANCE = 0.01
_CHUNK = 65536


def to_grid(x: np.ndarray) -> np.ndarray:
    """``float32`` copy of ``x`` with every value rounded to the nearest multiple of 2**-11."""
    x = np.asarray(x)
    work = x.astype(np.float64) if x.dtype != np.float32 else x
    return (np.rint(work * GRID_SCALE) / GRID_SCALE).astype(np.float32)


def on_grid(x: np.ndarray) -> bool:
    """True when every value of ``x`` (float32) is a multiple of 2**-11."""
    scaled = np.asarray(x, dtype=np.float32) * np.float32(GRID_SCALE)
    return bool(np.array_equal(scaled, np.rint(scaled)))


def _column_major(embeddings: np.ndarray, order: np.ndarray, chunk: int = _CHUNK) -> np.ndarray:
    """``embeddings[order]`` stored column-major, built in chunks (no full temporary)."""
    n, d = embeddings.shape
    out = np.empty((d, n), dtype=np.float32)
    for start in range(0, n, chunk):
        out[:, start:start + chunk] = embeddings[order[start:start + chunk]].T
    return out.T


def gather_rows(embeddings: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``embeddings[rows]`` as a C-contiguous array, fast for column-major embeddings too.

    A row of a column-major array is strided across the whole array; taking the needed
    columns of its row-major transpose in sorted order reads each of its ``d`` rows forwards.
    """
    if embeddings.flags.c_contiguous or not embeddings.flags.f_contiguous:
        return embeddings[rows]
    flat = np.asarray(rows).reshape(-1)
    unique, inverse = np.unique(flat, return_inverse=True)
    picked = np.ascontiguousarray(np.take(embeddings.T, unique, axis=1).T)
    return picked[inverse].reshape(np.shape(rows) + (embeddings.shape[1],))


class PoolError(ValueError):
    """A pool whose arrays do not describe a valid claim pool."""


@dataclass(frozen=True, eq=False)
class Pool:
    """The claims a trajectory can be shown, in a fixed order ("pool order").

    Build it with :meth:`Pool.build`; the fields are derived, read-only arrays:

    - ``claim_ids``: ``object[n]`` claim ids (``fever-1:authoritative``);
    - ``base``: ``int64[n]`` base-claim codes ``0..n_base-1`` (all framings of one base
      claim share a code);
    - ``is_true``: ``bool[n]``, True where the ground truth is SUPPORTS;
    - ``embeddings``: ``float32[n, d]``, unit norm, on the grid of :func:`to_grid`;
    - ``framing``: ``int64[n]`` codes into ``framing_names``, or None when unknown;
    - ``base_claims``: ``int64[n_base, max_framings]``, each base claim's rows, padded -1;
    - ``rank``: ``int64[n]``, each row's position in the canonical order. A pool re-ordered
      for an index (:meth:`reordered`) keeps the canonical order, so it yields the same
      trajectories (as claim ids) as the original.
    """

    claim_ids: np.ndarray
    base: np.ndarray
    is_true: np.ndarray
    embeddings: np.ndarray
    framing: np.ndarray | None
    framing_names: tuple[str, ...]
    base_claims: np.ndarray
    rank: np.ndarray
    base_ids: np.ndarray = field(repr=False)
    row_of_rank: np.ndarray = field(repr=False)

    @classmethod
    def build(
        cls,
        *,
        claim_ids: Sequence,
        base_ids: Sequence,
        true_labels: Sequence,
        embeddings: np.ndarray,
        framings: Sequence | None = None,
        normalise: bool = True,
    ) -> "Pool":
        """Validate and index a pool.

        ``true_labels`` holds ``SUPPORTS``/``REFUTES`` strings or booleans (True = SUPPORTS);
        ``embeddings`` is ``[n, d]``, made unit norm unless ``normalise=False`` (then they
        must be, within 1%), and stored as float32 on the grid of :func:`to_grid` (an array
        already there is used as it is, without a copy).
        """
        claim_ids = np.asarray(claim_ids, dtype=object)
        n = claim_ids.shape[0]
        base_ids = np.asarray(base_ids)
        if base_ids.shape != (n,):
            raise PoolError(f"base_ids has {base_ids.shape[0]} entries for {n} claims")
        labels = np.asarray(true_labels)
        if labels.shape != (n,):
            raise PoolError(f"true_labels has {labels.shape[0]} entries for {n} claims")
        if labels.dtype == bool:
            is_true = labels.copy()
        else:
            labels = labels.astype(str)
            bad = ~np.isin(labels, LABELS)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise PoolError(
                    f"true_label of claim {claim_ids[row]!r} (row {row}) is {str(labels[row])!r}; "
                    f"expected SUPPORTS or REFUTES"
                )
            is_true = labels == SUPPORTS
        emb = _grid_embeddings(np.asarray(embeddings), claim_ids, normalise)
        uniq, base = np.unique(base_ids, return_inverse=True)
        base = base.astype(np.int64)
        # Every framing of one base claim must agree on the ground truth.
        n_base = len(uniq)
        true_count = np.bincount(base, weights=is_true, minlength=n_base)
        size = np.bincount(base, minlength=n_base)
        mixed = (true_count > 0) & (true_count < size)
        if mixed.any():
            b = int(np.flatnonzero(mixed)[0])
            raise PoolError(f"the framings of base claim {uniq[b].item()!r} disagree on true_label")
        framing_codes, framing_names = None, ()
        if framings is not None:
            framings = np.asarray(framings).astype(str)
            if framings.shape != (n,):
                raise PoolError(f"framings has {framings.shape[0]} entries for {n} claims")
            names, framing_codes = np.unique(framings, return_inverse=True)
            framing_codes = framing_codes.astype(np.int64)
            framing_names = tuple(str(x) for x in names)
        return cls(
            claim_ids=claim_ids,
            base=base,
            is_true=is_true,
            embeddings=emb,
            framing=framing_codes,
            framing_names=framing_names,
            base_claims=_group_rows(base, n_base),
            rank=np.arange(n, dtype=np.int64),
            base_ids=uniq,
            row_of_rank=np.arange(n, dtype=np.int64),
        )

    @property
    def size(self) -> int:
        return int(self.base.shape[0])

    @property
    def n_base(self) -> int:
        return int(self.base_claims.shape[0])

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def true_labels(self) -> np.ndarray:
        """``object[n]`` of ``SUPPORTS`` / ``REFUTES``."""
        return np.where(self.is_true, SUPPORTS, REFUTES).astype(object)

    def framing_of(self, rows: np.ndarray) -> np.ndarray:
        """Framing names of ``rows`` (``""`` where the pool has no framings)."""
        if self.framing is None:
            return np.full(len(rows), "", dtype=object)
        return np.asarray(self.framing_names, dtype=object)[self.framing[rows]]

    def reordered(self, order: np.ndarray, *, column_major: bool = False) -> "Pool":
        """The same pool with row ``i`` taken from ``order[i]`` (canonical order kept).

        Used by :mod:`simulation.index` to store each index list contiguously; trajectories
        over the re-ordered pool are the same (as claim ids) as over the original.
        ``column_major`` stores the embeddings as the transpose of a C-contiguous
        ``[d, n]`` array (same values, same shape): a list's claims are then a row-major
        ``[d, len]`` block that BLAS packs about 1.5 times faster than rows ``[len, d]``
        (same kernel, bit-identical products), with no second copy of the embeddings.
        """
        order = np.asarray(order, dtype=np.int64)
        if order.shape != (self.size,) or not np.array_equal(np.sort(order), np.arange(self.size)):
            raise PoolError("order must be a permutation of the pool's rows")
        inverse = np.empty_like(order)
        inverse[order] = np.arange(self.size)
        base = self.base[order]
        return Pool(
            claim_ids=self.claim_ids[order],
            base=base,
            is_true=self.is_true[order],
            embeddings=_column_major(self.embeddings, order) if column_major
            else np.ascontiguousarray(self.embeddings[order]),
            framing=None if self.framing is None else self.framing[order],
            framing_names=self.framing_names,
            base_claims=np.where(self.base_claims >= 0, inverse[np.maximum(self.base_claims, 0)], -1),
            rank=self.rank[order],
            base_ids=self.base_ids,
            row_of_rank=inverse[self.row_of_rank],
        )


def _grid_embeddings(emb: np.ndarray, claim_ids: np.ndarray, normalise: bool) -> np.ndarray:
    """Checked, unit-norm, on-grid float32 embeddings, chunk by chunk (no pool-sized temporary
    besides the result; none at all when ``emb`` already qualifies)."""
    n = claim_ids.shape[0]
    if emb.ndim != 2 or emb.shape[0] != n:
        raise PoolError(f"embeddings have shape {emb.shape}; expected ({n}, dim)")
    reuse = (not normalise and emb.dtype == np.float32 and emb.flags.c_contiguous
             and all(on_grid(emb[start:start + _CHUNK]) for start in range(0, n, _CHUNK)))
    out = emb if reuse else np.empty(emb.shape, dtype=np.float32)
    for start in range(0, n, _CHUNK):
        block = emb[start:start + _CHUNK].astype(np.float64)
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            row = start + int(np.flatnonzero(~finite)[0])
            raise PoolError(f"embedding of claim {claim_ids[row]!r} (row {row}) is not finite")
        norms = np.linalg.norm(block, axis=1)
        if normalise:
            if (norms == 0).any():
                row = start + int(np.flatnonzero(norms == 0)[0])
                raise PoolError(f"embedding of claim {claim_ids[row]!r} (row {row}) is all zeros")
            block /= norms[:, None]
        off = np.abs(norms - 1) > _NORM_TOLERANCE
        if not normalise and off.any():
            row = start + int(np.flatnonzero(off)[0])
            raise PoolError(f"embedding of claim {claim_ids[row]!r} (row {row}) has norm {norms[off][0]:.4f}; "
                            "embeddings must be unit norm (pass normalise=True)")
        if not reuse:
            out[start:start + _CHUNK] = to_grid(block)
    return out


def _group_rows(base: np.ndarray, n_base: int) -> np.ndarray:
    """``int64[n_base, max_framings]``: the rows of each base claim, ascending, padded -1."""
    order = np.argsort(base, kind="stable")
    counts = np.bincount(base, minlength=n_base)
    width = int(counts.max()) if n_base else 0
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    slot = np.arange(len(base)) - np.repeat(starts, counts)
    table = np.full((n_base, width), -1, dtype=np.int64)
    table[base[order], slot] = order
    return table


class Agent(Protocol):
    """Judges claims for a batch of trajectories (see :mod:`simulation.agents`)."""

    name: str
    #: how many U(0, 1) draws one judgment takes from the trajectory's stream
    uniforms_per_step: int

    def judge(self, pool: Pool, claims: np.ndarray, uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``claims: int64[m]`` pool rows, ``uniforms: float64[m, uniforms_per_step]``.

        Returns ``(predicts_supports: bool[m], confidence: float64[m])``, the confidence
        being the agent's probability of the label it predicted, in [0, 1].
        """


class Policy(Protocol):
    """Chooses the next claim (see :mod:`simulation.policies`)."""

    name: str
    window: int
    top_k: int

    def follows_neighbourhood(self, accepted: np.ndarray) -> np.ndarray:
        """``bool[n]``: which trajectories take their next claim from the neighbourhood
        (the others draw uniformly and reset their history)."""

    def restrict_to_false(self, accepted: np.ndarray, claim_is_true: np.ndarray) -> np.ndarray:
        """``bool[n]``: which neighbourhood searches keep only false candidates."""

    def candidate_logits(self, similarity: np.ndarray, candidate_is_true: np.ndarray) -> np.ndarray:
        """``float64[m, k]`` sampling logits of the top-k candidates (-inf: never)."""


ProgressCallback = Callable[[int], None]


@dataclass(frozen=True, eq=False)
class TrajectoryBatch:
    """Per-step results of a batch of trajectories, arrays ``[n_trajectories, steps]``.

    ``claim`` holds pool rows; ``trajectory`` the global trajectory numbers; ``run`` the run.
    """

    agent: str
    run: int
    trajectory: np.ndarray  # int64[n]
    claim: np.ndarray  # int64[n, T]
    accepted: np.ndarray  # bool[n, T]  (predicted SUPPORTS)
    confidence: np.ndarray  # float64[n, T]
    reward: np.ndarray  # float64[n, T]
    H: np.ndarray  # float64[n, T]
    correct: np.ndarray  # bool[n, T]

    @property
    def steps(self) -> int:
        return int(self.claim.shape[1])

    def to_frame(self, pool: Pool):
        """Long format, one row per (trajectory, step); ``step`` counts from 1.

        Columns: ``agent, run, trajectory, step, claim_id, base_id, framing, true_label,
        accepted, predicted, confidence, reward, H, correct``.
        """
        import pandas as pd

        n, T = self.claim.shape
        flat = self.claim.reshape(-1)
        return pd.DataFrame({
            "agent": pd.Categorical([self.agent] * (n * T)),
            "run": np.full(n * T, self.run, dtype=np.int64),
            "trajectory": np.repeat(self.trajectory, T),
            "step": np.tile(np.arange(1, T + 1, dtype=np.int64), n),
            "claim_id": pool.claim_ids[flat],
            "base_id": pool.base_ids[pool.base[flat]].astype(object),
            "framing": pool.framing_of(flat),
            "true_label": pool.true_labels[flat],
            "accepted": self.accepted.reshape(-1),
            "predicted": np.where(self.accepted.reshape(-1), SUPPORTS, REFUTES).astype(object),
            "confidence": self.confidence.reshape(-1),
            "reward": self.reward.reshape(-1),
            "H": self.H.reshape(-1),
            "correct": self.correct.reshape(-1),
        })

    @classmethod
    def concatenate(cls, batches: Sequence["TrajectoryBatch"]) -> "TrajectoryBatch":
        """Join shards of one (agent, run), ordered by trajectory number."""
        if not batches:
            raise ValueError("no batches to concatenate")
        first = batches[0]
        if any(b.agent != first.agent or b.run != first.run or b.steps != first.steps for b in batches):
            raise ValueError("shards of different agents, runs or step counts")
        traj = np.concatenate([b.trajectory for b in batches])
        order = np.argsort(traj, kind="stable")
        if len(np.unique(traj)) != len(traj):
            raise ValueError("shards overlap: a trajectory number appears twice")
        cat = lambda name: np.concatenate([getattr(b, name) for b in batches])[order]  # noqa: E731
        return cls(agent=first.agent, run=first.run, trajectory=traj[order], claim=cat("claim"),
                   accepted=cat("accepted"), confidence=cat("confidence"), reward=cat("reward"),
                   H=cat("H"), correct=cat("correct"))


def trajectory_stream(seed: int, run: int, trajectory: int) -> np.random.Generator:
    """The random stream of one trajectory: ``SeedSequence(seed).spawn(...)[run].spawn(...)[trajectory]``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(run, trajectory)))


def trajectory_uniforms(seed: int, run, trajectories: Iterable[int], steps: int,
                        agent_uniforms) -> tuple[np.ndarray, np.ndarray]:
    """``(policy float64[n, T, 2], agent float64[n, T, max(agent_uniforms)])`` for the
    trajectories: each row's own stream, the policy block first, then the agent's block.

    ``run`` and ``agent_uniforms`` are one value for every row, or one per row (a study's
    rows mix runs and agents); a row's agent block past its own width is zero.
    """
    trajectories = np.asarray(list(trajectories), dtype=np.int64)
    n = len(trajectories)
    runs = np.broadcast_to(np.asarray(run, dtype=np.int64), (n,))
    widths = np.broadcast_to(np.asarray(agent_uniforms, dtype=np.int64), (n,))
    policy = np.empty((n, steps, 2))
    agent = np.zeros((n, steps, int(np.max(agent_uniforms, initial=0))))
    for row in range(n):
        rng = trajectory_stream(seed, int(runs[row]), int(trajectories[row]))
        policy[row] = rng.random((steps, 2))
        if widths[row]:
            agent[row, :, :widths[row]] = rng.random((steps, int(widths[row])))
    return policy, agent


def uniform_choice(pool: Pool, u: np.ndarray, removed: np.ndarray, n_removed: np.ndarray) -> np.ndarray:
    """The ``floor(u * n_remaining)``-th remaining claim in canonical order, per row.

    ``removed: int64[m, R]`` removed pool rows, padded with -1; ``n_removed: int64[m]``.
    For sorted distinct removed ranks ``q_0 < q_1 < ...``, the j-th (0-based) remaining rank
    is ``j + #{i : q_i - i <= j}`` — a rank selection with no scan of the pool.
    """
    remaining = pool.size - n_removed
    j = np.minimum(np.floor(u * remaining).astype(np.int64), remaining - 1)
    big = np.iinfo(np.int64).max // 4
    ranks = np.where(removed >= 0, pool.rank[np.maximum(removed, 0)], big)
    ranks.sort(axis=1)
    shifted = ranks - np.arange(ranks.shape[1])
    chosen_rank = j + (shifted <= j[:, None]).sum(axis=1)
    return pool.row_of_rank[chosen_rank]


@contextlib.contextmanager
def blas_single_thread():
    """A context in which numpy's BLAS, and torch (its top-k), use one thread.

    The engine's matrix products are many and small (a chunk of contexts against the pool);
    BLAS threads cost more than they give there, and on a machine whose cores are already
    busy (a Celery worker beside others) they made runs several times slower. The index's
    list search has its own threads (``FRAMELAB_SIM_THREADS``). torch's OpenMP threads
    otherwise spin between top-k calls and take cores from that work.
    """
    from threadpoolctl import threadpool_limits

    torch = _torch()
    torch_threads = torch.get_num_threads() if torch is not None else None
    try:
        if torch is not None:
            torch.set_num_threads(1)
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(torch_threads)


def similarities(queries: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """``float32[m, n]`` = queries @ embeddings.T, exact for grid vectors (:func:`to_grid`).

    One plain matrix product, in any blocking and on any number of BLAS threads: for grid
    vectors of about unit norm every intermediate sum is exact in float32 (module notes), so
    a query's similarities are the same to the last bit whatever other queries share the
    call. (With arbitrary float32 vectors they are not: OpenBLAS sums a row in a different
    order depending on its position in the micro-kernel's tiles.)
    ``tests/simulation/test_engine.py`` checks both exactness and batch independence.
    """
    return np.matmul(queries, embeddings.T)


def largest_columns(values: np.ndarray, k: int) -> np.ndarray:
    """``int64[m, k]``: the columns of each row's ``k`` largest values, in no particular order.

    torch's top-k when torch is installed (the platform's requirements have it): on the
    engine's small blocks (a few dozen rows of about a thousand claims) it is about five
    times faster than ``numpy.argpartition``, which took a third of a full-scale run.
    Either way each row's answer depends on that row alone. Among values tied at the k-th
    place, which one is returned is up to the algorithm; callers order candidates by
    (similarity, pool order) afterwards.
    """
    if k >= values.shape[1]:
        return np.broadcast_to(np.arange(values.shape[1]), values.shape).copy()
    torch = _torch()
    if torch is not None and values.dtype in (np.float32, np.float64) and values.flags.c_contiguous:
        return torch.topk(torch.from_numpy(values), k, dim=1, sorted=False).indices.numpy()
    return np.argpartition(values, -k, axis=1)[:, -k:]


_TORCH = []


def _torch():
    """torch, imported on first use (web processes that never simulate do not pay for it),
    or None where it is not installed: the engine then uses numpy alone."""
    if not _TORCH:
        try:
            import torch
        except ImportError:
            torch = None
        _TORCH.append(torch)
    return _TORCH[0]


def unpack_available(removed_bits: np.ndarray, columns: np.ndarray | None, size: int) -> np.ndarray:
    """``bool[m, len(columns) or size]``: True where the claim is still in the pool."""
    if columns is None:
        return ~np.unpackbits(removed_bits, axis=1, count=size, bitorder="little").astype(bool)
    byte = removed_bits[:, columns >> 3]
    return ((byte >> (columns & 7).astype(np.uint8)) & 1) == 0


def _order_candidates(pool: Pool, idx: np.ndarray, sim: np.ndarray, k: int):
    """Sort each row by (similarity desc, canonical rank asc); keep k. Invalid: idx -1."""
    rank = np.where(idx >= 0, pool.rank[np.maximum(idx, 0)], np.iinfo(np.int64).max)
    key_sim = np.where(idx >= 0, -sim.astype(np.float64), np.inf)
    order = np.lexsort((rank, key_sim), axis=-1)[:, :k]
    idx = np.take_along_axis(idx, order, axis=1)
    sim = np.take_along_axis(sim, order, axis=1)
    return idx, sim


def exact_top_k(pool: Pool, queries: np.ndarray, *, k: int, removed_bits: np.ndarray,
                restrict_false: np.ndarray, bit_rows: np.ndarray | None = None,
                max_block_cells: int = 1 << 24):
    """Exact top-k of the remaining pool by cosine similarity, per query.

    ``queries: float32[m, d]`` unit contexts; ``removed_bits: uint8[r, ceil(n/8)]`` with
    query ``i``'s trajectory in row ``bit_rows[i]`` (default ``i``: no copy of the mask);
    ``restrict_false: bool[m]`` keeps only false claims for those rows (the caller checks
    that some remain). Returns ``(rows int64[m, k], similarity float32[m, k])``, sorted by
    similarity then canonical order; -1 where fewer than k claims are eligible.
    """
    m = queries.shape[0]
    out_idx = np.full((m, k), -1, dtype=np.int64)
    out_sim = np.full((m, k), -np.inf, dtype=np.float32)
    step = max(1, max_block_cells // max(pool.size, 1))
    kk = min(k, pool.size)
    for start in range(0, m, step):
        sl = slice(start, min(m, start + step))
        sims = similarities(queries[sl], pool.embeddings)
        bits = removed_bits[sl] if bit_rows is None else removed_bits[bit_rows[sl]]
        eligible = unpack_available(bits, None, pool.size)
        restrict = restrict_false[sl]
        if restrict.any():
            eligible[restrict] &= ~pool.is_true
        sims[~eligible] = -np.inf
        part = largest_columns(sims, kk)
        vals = np.take_along_axis(sims, part, axis=1)
        part = np.where(np.isfinite(vals), part, -1)
        idx, sim = _order_candidates(pool, part, vals, kk)
        out_idx[sl, :kk] = idx
        out_sim[sl, :kk] = sim
    return out_idx, out_sim


def softmax_choice(candidates: np.ndarray, logits: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Sample one candidate per row: the first whose cumulative probability exceeds ``u``.

    ``candidates: int64[m, k]`` (-1 = none), ``logits: float64[m, k]`` (-inf = never).
    Rows whose logits are all -inf fall back to equal weights over their valid candidates.
    """
    valid = candidates >= 0
    logits = np.where(valid, logits, -np.inf)
    dead = ~np.isfinite(logits).any(axis=1)
    if dead.any():
        logits[dead] = np.where(valid[dead], 0.0, -np.inf)
    top = logits.max(axis=1, keepdims=True)
    weights = np.exp(logits - top)
    cumulative = np.cumsum(weights, axis=1)
    target = u * cumulative[:, -1]
    pick = (cumulative <= target[:, None]).sum(axis=1)
    # u * total < total always, but guard the last valid candidate against rounding.
    last_valid = valid.sum(axis=1) - 1
    pick = np.minimum(pick, last_valid)
    return np.take_along_axis(candidates, pick[:, None], axis=1)[:, 0]


def run_trajectories(
    pool: Pool,
    agent: Agent,
    policy: Policy,
    *,
    trajectory_ids: Iterable[int],
    steps: int,
    seed: int,
    run: int = 0,
    candidate_mode: str = "exact",
    index=None,
    chunk_size: int | None = None,
    progress: ProgressCallback | None = None,
) -> TrajectoryBatch:
    """Run the trajectories numbered ``trajectory_ids`` of run ``run`` for ``steps`` steps.

    ``candidate_mode`` is ``"exact"`` (cosine against the whole remaining pool) or
    ``"indexed"`` (``index``, a :class:`simulation.index.IVFIndex` built on this pool: probe
    the nearest lists, then exact re-ranking; rows whose probed lists hold fewer than
    ``top_k`` eligible claims fall back to the exact search). Trajectories run in chunks of
    ``chunk_size`` to bound memory (``chunk_size * pool.size / 8`` bytes of removal mask);
    by default as many as fit in 1.5 GiB of mask (10,000 trajectories on a million claims
    fit in one chunk, which keeps the per-step loop over index lists short).
    ``progress(n)`` is called with the number of trajectory-steps just completed.

    The result depends only on (pool, agent, policy, seed, run, trajectory number, steps),
    never on which other trajectories share the call.
    """
    return run_study(pool, [agent], policy, runs=[run], trajectory_ids=trajectory_ids, steps=steps, seed=seed,
                     candidate_mode=candidate_mode, index=index, chunk_size=chunk_size, progress=progress)[0]


def run_study(
    pool: Pool,
    agents: Sequence[Agent],
    policy: Policy,
    *,
    runs: Iterable[int],
    trajectory_ids: Iterable[int],
    steps: int,
    seed: int,
    candidate_mode: str = "exact",
    index=None,
    chunk_size: int | None = None,
    progress: ProgressCallback | None = None,
) -> list[TrajectoryBatch]:
    """Every (agent, run) over the same trajectory numbers, advanced together in one pass.

    Returns one :class:`TrajectoryBatch` per (agent, run), agents outer, identical to what
    :func:`run_trajectories` gives for each alone (rows never influence each other); batching
    them makes each step's matrix products and index-list loop serve all of them at once.
    """
    agents = list(agents)
    runs = np.asarray(list(runs), dtype=np.int64)
    ids = np.asarray(list(trajectory_ids), dtype=np.int64)
    if ids.ndim != 1 or (ids < 0).any():
        raise ValueError("trajectory_ids must be non-negative integers")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("trajectory_ids repeat a trajectory number")
    if runs.ndim != 1 or (runs < 0).any() or len(np.unique(runs)) != len(runs):
        raise ValueError("runs must be distinct non-negative integers")
    if len({a.name for a in agents}) != len(agents):
        raise ValueError("agents must have distinct names")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    if steps > pool.n_base:
        raise ValueError(
            f"a trajectory of {steps} steps shows {steps} distinct base claims, but the pool "
            f"has only {pool.n_base}"
        )
    if candidate_mode not in ("exact", "indexed"):
        raise ValueError(f"candidate_mode must be 'exact' or 'indexed', not {candidate_mode!r}")
    if candidate_mode == "indexed":
        if index is None:
            raise ValueError("candidate_mode='indexed' needs an index (simulation.index.IVFIndex)")
        index.check_pool(pool)
    if chunk_size is None:
        chunk_size = max(64, int(1.5 * 2**30) // max(1, (pool.size + 7) // 8))
    # One row per (agent, run, trajectory), agents outer, then runs, then trajectories.
    n_a, n_r, n_t = len(agents), len(runs), len(ids)
    row_agent = np.repeat(np.arange(n_a), n_r * n_t)
    row_run = np.tile(np.repeat(runs, n_t), n_a)
    row_traj = np.tile(ids, n_a * n_r)
    parts = []
    for start in range(0, len(row_traj), max(1, chunk_size)):
        sl = slice(start, start + chunk_size)
        parts.append(_run_chunk(pool, agents, row_agent[sl], row_run[sl], row_traj[sl], policy, steps, seed,
                                candidate_mode, index, progress))
    if parts:
        columns = [np.concatenate([p[i] for p in parts]) for i in range(6)]
    else:
        empty = np.zeros((0, steps))
        columns = [empty.astype(np.int64), empty.astype(bool), empty, empty, empty, empty.astype(bool)]
    out = []
    for a, agent in enumerate(agents):
        for r, run in enumerate(runs):
            sl = slice((a * n_r + r) * n_t, (a * n_r + r + 1) * n_t)
            claim, accepted, confidence, reward, H, correct = (c[sl] for c in columns)
            out.append(TrajectoryBatch(agent=agent.name, run=int(run), trajectory=ids, claim=claim,
                                       accepted=accepted, confidence=confidence, reward=reward, H=H,
                                       correct=correct))
    return out


def _run_chunk(pool, agents, row_agent, row_run, ids, policy, steps, seed, candidate_mode, index, progress):
    n, T = len(ids), steps
    widths = np.array([int(a.uniforms_per_step) for a in agents], dtype=np.int64)
    u_policy, u_agent = trajectory_uniforms(seed, row_run, ids, T, widths[row_agent])
    agent_rows = [(agent, np.flatnonzero(row_agent == a)) for a, agent in enumerate(agents)]
    agent_rows = [(agent, r) for agent, r in agent_rows if len(r)]
    width = pool.base_claims.shape[1]
    framings_per_base = (pool.base_claims >= 0).sum(axis=1)
    n_false_total = int((~pool.is_true).sum())

    claim = np.empty((n, T), dtype=np.int64)
    accepted = np.empty((n, T), dtype=bool)
    confidence = np.empty((n, T))
    correct = np.empty((n, T), dtype=bool)
    removed = np.full((n, T * width), -1, dtype=np.int64)
    removed_bits = np.zeros((n, (pool.size + 7) // 8), dtype=np.uint8)
    n_removed = np.zeros(n, dtype=np.int64)
    n_false_removed = np.zeros(n, dtype=np.int64)
    history_start = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)

    current = uniform_choice(pool, u_policy[:, 0, 0], removed[:, :0], n_removed)
    for t in range(T):
        claim[:, t] = current
        predicts_supports = np.empty(n, dtype=bool)
        conf = np.empty(n)
        for agent, r in agent_rows:
            k = int(agent.uniforms_per_step)
            judged, judged_conf = agent.judge(pool, current[r], u_agent[r, t, :k])
            predicts_supports[r] = judged
            conf[r] = judged_conf
        accepted[:, t] = predicts_supports
        confidence[:, t] = conf
        correct[:, t] = predicts_supports == pool.is_true[current]

        # All framings of the shown base claim leave this trajectory's pool.
        b = pool.base[current]
        framings = pool.base_claims[b]
        removed[:, t * width:(t + 1) * width] = framings
        n_removed += framings_per_base[b]
        n_false_removed += np.where(pool.is_true[current], 0, framings_per_base[b])
        r_idx, f_idx = np.nonzero(framings >= 0)
        cols = framings[r_idx, f_idx]
        np.bitwise_or.at(removed_bits, (r_idx, cols >> 3), (1 << (cols & 7)).astype(np.uint8))

        if progress is not None:
            progress(n)
        if t == T - 1:
            break

        follow = np.asarray(policy.follows_neighbourhood(predicts_supports), dtype=bool)
        nxt = np.empty(n, dtype=np.int64)
        jump = ~follow
        if jump.any():
            nxt[jump] = uniform_choice(pool, u_policy[jump, t + 1, 0], removed[jump, :(t + 1) * width],
                                       n_removed[jump])
            history_start[jump] = t + 1  # the history restarts at the next claim
        if follow.any():
            fr = rows[follow]
            lags = t - np.arange(policy.window)
            in_history = (lags[None, :] >= history_start[fr, None]) & (lags[None, :] >= 0)
            recent = claim[fr][:, np.maximum(lags, 0)]
            context = (gather_rows(pool.embeddings, recent).astype(np.float64) * in_history[:, :, None]).sum(axis=1)
            context /= np.linalg.norm(context, axis=1, keepdims=True)
            context = to_grid(context)
            restrict = np.asarray(policy.restrict_to_false(predicts_supports[fr], pool.is_true[current[fr]]),
                                  dtype=bool)
            restrict &= (n_false_total - n_false_removed[fr]) > 0  # fallback: whole pool
            cand, sim = _top_candidates(pool, context, policy.top_k, removed_bits, fr, restrict,
                                        n_removed[fr], n_false_total - n_false_removed[fr],
                                        candidate_mode, index)
            cand_true = pool.is_true[np.maximum(cand, 0)]
            logits = policy.candidate_logits(sim.astype(np.float64), cand_true)
            nxt[fr] = softmax_choice(cand, logits, u_policy[fr, t + 1, 1])
        current = nxt

    reward = np.where(correct, confidence, -confidence)
    H = np.cumsum(reward, axis=1)
    return claim, accepted, confidence, reward, H, correct


def _top_candidates(pool, context, k, removed_bits, bit_rows, restrict, n_removed, n_false_remaining,
                    candidate_mode, index):
    # The removal mask is passed whole with the rows to read (bit_rows): copying the rows of
    # the accepting trajectories would move most of the mask (gigabytes at full scale) per step.
    if candidate_mode == "exact":
        return exact_top_k(pool, context, k=k, removed_bits=removed_bits, restrict_false=restrict,
                           bit_rows=bit_rows)
    cand, sim = index.top_k(pool, context, k=k, removed_bits=removed_bits, restrict_false=restrict,
                            bit_rows=bit_rows)
    eligible = np.where(restrict, n_false_remaining, pool.size - n_removed)
    short = (cand >= 0).sum(axis=1) < np.minimum(k, eligible)
    if short.any():
        cand[short], sim[short] = exact_top_k(pool, context[short], k=k, removed_bits=removed_bits,
                                              restrict_false=restrict[short], bit_rows=bit_rows[short])
    return cand, sim
