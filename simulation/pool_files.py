"""Read a claim pool a researcher brings: a Parquet table of claims and scores plus a .npy
matrix of sentence embeddings in the same row order.

The Parquet file has one row per framed claim with ``claim_id``, ``base_id``, ``true_label``
(``SUPPORTS``/``REFUTES``), optionally ``framing``, and one ``p_supports_<agent>`` column
per agent (the agent's probability of SUPPORTS for that claim; ``p_refutes_<agent>`` may be
given too when a model scored both labels separately). The embeddings file is a 2-D
``.npy`` array with one row per Parquet row.

Every problem is reported as a :class:`PoolFileError` naming the file, the row (0-based,
the same position in both files), the column and the value, and nothing is run on a pool
that failed any check.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simulation.engine import LABELS, Pool

REQUIRED_COLUMNS = ("claim_id", "base_id", "true_label")
SCORE_PREFIX = "p_supports_"
REFUTES_PREFIX = "p_refutes_"


class PoolFileError(ValueError):
    """A pool or embeddings file that cannot be simulated, with where and why."""


@dataclass(frozen=True)
class PoolFiles:
    pool: Pool
    #: agent name -> p(SUPPORTS) per row (pool order = file order)
    p_supports: dict[str, np.ndarray]
    #: agent name -> p(REFUTES) per row, only for agents whose file gives it
    p_refutes: dict[str, np.ndarray]


def read_pool_files(pool_path: str | Path, embeddings_path: str | Path, *, require_scores: bool = True) -> PoolFiles:
    pool_path, embeddings_path = Path(pool_path), Path(embeddings_path)
    table = _read_table(pool_path)
    n = len(table)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise PoolFileError(f"{pool_path}: missing column {missing[0]!r}; a pool file needs "
                            f"{', '.join(REQUIRED_COLUMNS)} and one {SCORE_PREFIX}<agent> column per agent")
    if n == 0:
        raise PoolFileError(f"{pool_path}: the file has no rows")
    score_columns = [c for c in table.columns if str(c).startswith(SCORE_PREFIX)]
    if require_scores and not score_columns:
        raise PoolFileError(f"{pool_path}: no {SCORE_PREFIX}<agent> column; add one per agent, e.g. "
                            f"{SCORE_PREFIX}baseline")
    claim_ids = _text_column(pool_path, table, "claim_id")
    duplicated = pd.Series(claim_ids).duplicated(keep="first").to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        first = int(np.flatnonzero(claim_ids == claim_ids[row])[0])
        raise PoolFileError(f"{pool_path}: row {row}, column 'claim_id': {claim_ids[row]!r} already appears in row {first}")
    base_ids = _text_column(pool_path, table, "base_id")
    labels = _text_column(pool_path, table, "true_label")
    bad = ~np.isin(labels, LABELS)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise PoolFileError(f"{pool_path}: row {row}, column 'true_label': {labels[row]!r} is not a label; "
                            f"expected SUPPORTS or REFUTES")
    is_true = labels == "SUPPORTS"
    truth_by_base = pd.Series(is_true).groupby(base_ids).transform("nunique").to_numpy()
    if (truth_by_base > 1).any():
        row = int(np.flatnonzero(truth_by_base > 1)[0])
        raise PoolFileError(f"{pool_path}: row {row}, column 'true_label': the framings of base claim "
                            f"{base_ids[row]!r} disagree on the true label")
    framings = _text_column(pool_path, table, "framing") if "framing" in table.columns else None
    p_supports, p_refutes = {}, {}
    for column in score_columns:
        agent = str(column)[len(SCORE_PREFIX):]
        if not agent:
            raise PoolFileError(f"{pool_path}: column {column!r} names no agent; use {SCORE_PREFIX}<agent>")
        p_supports[agent] = _probability_column(pool_path, table, column)
        refutes = f"{REFUTES_PREFIX}{agent}"
        if refutes in table.columns:
            p_refutes[agent] = _probability_column(pool_path, table, refutes)
    embeddings = _read_embeddings(embeddings_path, n, claim_ids)
    pool = Pool.build(claim_ids=claim_ids, base_ids=base_ids, true_labels=is_true, embeddings=embeddings,
                      framings=framings, normalise=False)
    return PoolFiles(pool=pool, p_supports=p_supports, p_refutes=p_refutes)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise PoolFileError(f"{path}: no such file")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise PoolFileError(f"{path}: not a readable Parquet file ({exc})") from None


def _text_column(path: Path, table: pd.DataFrame, column: str) -> np.ndarray:
    values = table[column]
    null = values.isna().to_numpy()
    if null.any():
        row = int(np.flatnonzero(null)[0])
        raise PoolFileError(f"{path}: row {row}, column {column!r}: the value is empty")
    text = values.astype(str).to_numpy(dtype=object)
    blank = np.array([not s.strip() for s in text])
    if blank.any():
        row = int(np.flatnonzero(blank)[0])
        raise PoolFileError(f"{path}: row {row}, column {column!r}: the value is blank")
    return text


def _probability_column(path: Path, table: pd.DataFrame, column: str) -> np.ndarray:
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~((values >= 0) & (values <= 1))  # also NaN: empty or not a number
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise PoolFileError(f"{path}: row {row}, column {column!r}: {_shown(table[column].iloc[row])} is not a "
                            f"probability between 0 and 1")
    return values


def _shown(value) -> str:
    """A cell value as the researcher would write it (no numpy wrapper in the repr)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _read_embeddings(path: Path, n: int, claim_ids: np.ndarray) -> np.ndarray:
    if not path.exists():
        raise PoolFileError(f"{path}: no such file")
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise PoolFileError(f"{path}: not a readable .npy array ({exc})") from None
    if matrix.ndim != 2:
        raise PoolFileError(f"{path}: the array has shape {matrix.shape}; expected (rows, dimension)")
    if matrix.shape[0] != n:
        raise PoolFileError(f"{path}: {matrix.shape[0]} rows of embeddings for {n} claims in the pool file; "
                            f"they must be in the same order, one per claim")
    if not np.issubdtype(matrix.dtype, np.floating):
        raise PoolFileError(f"{path}: dtype {matrix.dtype} is not a floating-point type")
    out = np.empty(matrix.shape, dtype=np.float32)
    for start in range(0, n, 65536):
        block = np.asarray(matrix[start:start + 65536], dtype=np.float32)
        finite = np.isfinite(block).all(axis=1)
        norms = np.linalg.norm(np.where(np.isfinite(block), block, 0), axis=1)
        bad = ~finite | (norms == 0)
        if bad.any():
            row = start + int(np.flatnonzero(bad)[0])
            what = "not finite" if not finite[row - start] else "all zeros"
            raise PoolFileError(f"{path}: row {row} (claim {claim_ids[row]!r}) is {what}; every claim needs "
                                f"a usable embedding")
        out[start:start + 65536] = block / norms[:, None]
    return out


def score_agents(files: PoolFiles, names: list[str] | None = None, decision=None) -> list:
    """One :class:`simulation.agents.ScoreAgent` per score column (or per name in ``names``),
    each deciding by ``decision`` (``modeling.decisions``: argmax when None)."""
    from modeling.decisions import parse_decision
    from simulation.agents import ScoreAgent

    try:
        rule = parse_decision(decision)
    except ValueError as exc:
        raise PoolFileError(f"--decision: {exc}") from None

    available = list(files.p_supports)
    names = names or available
    unknown = [name for name in names if name not in files.p_supports]
    if unknown:
        raise PoolFileError(f"no column {SCORE_PREFIX}{unknown[0]} in the pool file; agents there: "
                            f"{', '.join(available)}")
    return [ScoreAgent(name, files.p_supports[name], files.p_refutes.get(name), decision=rule) for name in names]


def simulate_pool(pool: Pool, agents: list, policy, *, trajectories: int, steps: int, seed: int, runs: int = 1,
                  candidate_mode: str = "exact", index=None, workers: int = 1, progress=None) -> pd.DataFrame:
    """Run every agent for ``runs`` runs of ``trajectories`` trajectories; the long table.

    All (agent, run) pairs advance together (``simulation.engine.run_study``). With
    ``workers > 1`` the trajectory numbers are split over that many forked processes; the
    result is identical to one process (streams are per trajectory). In indexed mode
    ``pool`` must be ``index.pool``.
    """
    from simulation.engine import TrajectoryBatch, blas_single_thread, run_study

    if workers <= 1:
        with blas_single_thread():
            batches = run_study(pool, agents, policy, runs=range(runs), trajectory_ids=range(trajectories),
                                steps=steps, seed=seed, candidate_mode=candidate_mode, index=index,
                                progress=progress)
        return _concat([batch.to_frame(pool) for batch in batches])
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    global _WORKER_STATE
    _WORKER_STATE = (pool, agents, policy, runs, steps, seed, candidate_mode, index)
    bounds = np.linspace(0, trajectories, workers + 1).astype(int)
    shards = [range(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as executor:
            futures = [executor.submit(_run_shard, shard) for shard in shards]
            results = []
            for future, shard in zip(futures, shards):
                results.append(future.result())
                if progress is not None:
                    progress(len(shard) * steps * runs * len(agents))
    finally:
        _WORKER_STATE = None
    frames = [TrajectoryBatch.concatenate([shard[i] for shard in results]).to_frame(pool)
              for i in range(len(results[0]))]
    return _concat(frames)


_WORKER_STATE = None


def _run_shard(shard):
    from simulation.engine import blas_single_thread, run_study

    pool, agents, policy, runs, steps, seed, candidate_mode, index = _WORKER_STATE
    with blas_single_thread():
        return run_study(pool, agents, policy, runs=range(runs), trajectory_ids=shard, steps=steps,
                         seed=seed, candidate_mode=candidate_mode, index=index)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frame = pd.concat(frames, ignore_index=True)
    frame["agent"] = frame["agent"].astype(str)
    return frame
