"""The engine's decision step (simulation/engine.py): the softmax and uniform choices one row
at a time, and the dtypes of what a run returns."""
import numpy as np
import pytest

from simulation.agents import parametric_agent
from simulation.engine import run_trajectories, softmax_choice
from simulation.policies import make_policy
from simulation.synthetic_pool import synthetic_pool


def test_softmax_choice_picks_the_first_candidate_whose_cumulative_weight_exceeds_u():
    """Guards against `<` for `<=` in the cumulative comparison: weights 1, 2, 1 (total 4)
    put u = 0.25 exactly on the first boundary, which belongs to the second candidate."""
    candidates = np.array([[10, 11, 12]] * 4)
    logits = np.tile(np.log([1.0, 2.0, 1.0]), (4, 1))
    u = np.array([0.0, 0.25, 0.74, 0.75])
    assert softmax_choice(candidates, logits, u).tolist() == [10, 11, 11, 12]


def test_softmax_choice_reads_each_row_its_own_candidates():
    """Guards against the pick being taken from the flattened candidates (the first row's)."""
    candidates = np.array([[1, 2, 3], [7, 8, 9]])
    logits = np.zeros((2, 3))
    assert softmax_choice(candidates, logits, np.array([0.9, 0.1])).tolist() == [3, 7]
    assert softmax_choice(candidates, logits, np.array([0.1, 0.9])).tolist() == [1, 9]


def test_a_row_without_finite_logits_draws_its_valid_candidates_evenly():
    """Guards against the fallback for rows whose logits are all -inf (a false_weight of 0
    with only false candidates) giving NaN weights or weight to missing candidates (-1)."""
    # As the searches return them: valid candidates first, -1 after.
    candidates = np.array([[4, 9, -1, -1]] * 3)
    logits = np.full((3, 4), -np.inf)
    got = softmax_choice(candidates, logits, np.array([0.1, 0.49, 0.9]))
    assert got.tolist() == [4, 4, 9]


def test_missing_candidates_are_never_chosen_whatever_their_logits():
    candidates = np.array([[4, 9, -1], [4, 9, -1]])
    logits = np.array([[0.0, 0.0, 50.0], [0.0, 0.0, 50.0]])
    assert softmax_choice(candidates, logits, np.array([0.45, 0.55])).tolist() == [4, 9]


def test_a_run_returns_boolean_acceptance_and_correctness():
    """Guards against the per-step arrays losing their dtypes (a float `accepted` would be
    summed and compared as numbers downstream)."""
    pool = synthetic_pool(120, dim=8, seed=0, n_topics=4, false_share=0.5)
    agent = parametric_agent("half", true_acceptance=0.5, false_acceptance=0.5, confidence=0.7)
    batch = run_trajectories(pool, agent, make_policy("frameref"), trajectory_ids=[0, 1, 2], steps=6, seed=1)
    assert batch.accepted.dtype == bool and batch.correct.dtype == bool
    assert batch.claim.dtype == np.int64 and batch.H.dtype == np.float64
    assert (batch.correct == (batch.accepted == pool.is_true[batch.claim])).all()
    assert batch.H[:, -1] == pytest.approx(np.where(batch.correct, batch.confidence, -batch.confidence).sum(axis=1))
