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


class AcceptingAgent:
    """Accepts every claim with confidence 0.8, recording the uniforms it is handed."""

    def __init__(self, name, uniforms_per_step):
        self.name, self.uniforms_per_step, self.widths = name, uniforms_per_step, set()

    def judge(self, pool, claims, uniforms):
        self.widths.add(uniforms.shape[1])
        return np.ones(len(claims), dtype=bool), np.full(len(claims), 0.8)


def hand_pool(truth, framings_of=None, dim=6, seed=0):
    """One claim per (base, framing); `framings_of[b]` framings for base b (default 1)."""
    from simulation.engine import Pool
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(truth), dim))
    ids, base, emb = [], [], []
    for b, centre in enumerate(centres):
        for f in range((framings_of or {}).get(b, 1)):
            ids.append(f"b{b}:f{f}")
            base.append(b)
            emb.append(centre + 0.05 * rng.normal(size=dim))
    return Pool.build(claim_ids=ids, base_ids=base, true_labels=[truth[b] for b in base],
                      embeddings=np.array(emb))


def test_each_agent_gets_exactly_its_own_number_of_uniforms_and_progress_is_counted():
    """Guards against an agent being handed every agent's uniforms (the widest width), and
    against progress being reported without the number of trajectory-steps done."""
    from simulation.engine import run_study
    pool = synthetic_pool(60, dim=6, seed=0, n_topics=3, false_share=0.5)
    narrow, wide = AcceptingAgent("narrow", 1), AcceptingAgent("wide", 3)
    done = []
    run_study(pool, [narrow, wide], make_policy("frameref"), runs=[0], trajectory_ids=[0, 1, 2],
              steps=4, seed=0, progress=done.append)
    assert narrow.widths == {1} and wide.widths == {3}
    assert sum(done) == 2 * 3 * 4


def test_after_an_accepted_false_claim_the_last_false_claim_left_is_shown_next():
    """Guards against the false-only restriction being dropped while one false claim is
    left (FrameRef's reinforcement falls back to the whole pool only when none is left)."""
    truth = [True] * 30 + [False, False]
    pool = hand_pool(truth)
    agent = AcceptingAgent("credulous", 1)
    batch = run_trajectories(pool, agent, make_policy("frameref"), trajectory_ids=range(40), steps=12, seed=3)
    checked = 0
    for row in range(40):
        false_steps = [t for t in range(12) if not pool.is_true[batch.claim[row, t]]]
        if len(false_steps) >= 1 and false_steps[0] < 11:
            # The first false claim shown, accepted: the other false claim must come next.
            assert false_steps[:2] == [false_steps[0], false_steps[0] + 1], row
            checked += 1
    assert checked >= 5


def test_uniform_choice_skips_missing_framings_in_the_removal_list():
    """Guards against the padding of the removal list (-1 where a base claim lacks a framing)
    being ranked as a removed claim."""
    from simulation.engine import uniform_choice
    pool = hand_pool([True, False, True, False, True], framings_of={0: 2, 1: 1, 2: 2, 3: 1, 4: 2})
    rows_of_base = [np.flatnonzero(pool.base == b) for b in range(5)]
    removed = np.array([[*rows_of_base[1], -1, *rows_of_base[2]]])  # base 1 has one framing: padded
    remaining = [r for r in np.argsort(pool.rank) if pool.base[r] not in (1, 2)]
    for j, row in enumerate(remaining):
        u = np.array([(j + 0.5) / len(remaining)])
        assert uniform_choice(pool, u, removed, np.array([3]))[0] == row
