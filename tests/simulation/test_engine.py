"""The trajectory engine against FrameRef's loop (the reference), and its invariants."""
from __future__ import annotations

import numpy as np
import pytest

from simulation.agents import OracleAgent, ScoreAgent, parametric_agent
from simulation.engine import (
    GRID_SCALE,
    Pool,
    PoolError,
    TrajectoryBatch,
    on_grid,
    run_study,
    run_trajectories,
    similarities,
    to_grid,
    trajectory_stream,
    trajectory_uniforms,
    uniform_choice,
)
from simulation.index import IVFIndex, measure_recall, recall_queries
from simulation.policies import make_policy
from simulation.synthetic_pool import persona_scores, synthetic_pool
from tests.simulation.frameref_reference import (
    SUPPORTS,
    AlignedDraws,
    NaturalDraws,
    reference_trajectory,
)


def small_pool(n_claims=240, dim=16, seed=0, false_share=0.5):
    return synthetic_pool(n_claims, dim=dim, seed=seed, n_topics=6, false_share=false_share)


def reference_inputs(pool):
    labels = list(pool.true_labels)
    return dict(base_ids=list(pool.base), labels=labels, embeddings=pool.embeddings, grid=GRID_SCALE)


def assert_same_batch(a: TrajectoryBatch, b: TrajectoryBatch):
    for name in ("trajectory", "claim", "accepted", "confidence", "reward", "H", "correct"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# --- the reference, with aligned draws: same trajectories claim for claim ----------------

@pytest.mark.parametrize("policy_name", ["frameref", "similarity"])
def test_engine_equals_reference_loop_when_draws_are_aligned(policy_name):
    pool = small_pool()
    agent = ScoreAgent("persona", persona_scores(pool, competence=0.4, seed=3))
    policy = make_policy(policy_name)
    steps, seed, ids = 30, 11, range(25)
    batch = run_trajectories(pool, agent, policy, trajectory_ids=ids, steps=steps, seed=seed)
    u_policy, _ = trajectory_uniforms(seed, 0, ids, steps, 0)

    def judge(claim, t):
        predicted, confidence = agent.judge(pool, np.array([claim]), np.zeros((1, 0)))
        return (SUPPORTS if predicted[0] else "REFUTES"), float(confidence[0])

    for row in range(len(ids)):
        ref = reference_trajectory(**reference_inputs(pool), judge=judge, draws=AlignedDraws(u_policy[row]),
                                   steps=steps, reinforce_false=policy.reinforce_false)
        assert batch.claim[row].tolist() == ref.claims
        np.testing.assert_allclose(batch.H[row], ref.H, rtol=0, atol=1e-12)


def test_engine_equals_reference_for_a_stochastic_agent_with_aligned_draws():
    pool = small_pool(seed=4)
    agent = parametric_agent("p", true_acceptance=0.7, false_acceptance={"*": 0.3, "consensus": 0.8},
                             confidence=[1, 2, 3, 4, 5])
    steps, seed, ids = 25, 5, range(20)
    batch = run_trajectories(pool, agent, make_policy("frameref"), trajectory_ids=ids, steps=steps, seed=seed)
    u_policy, u_agent = trajectory_uniforms(seed, 0, ids, steps, agent.uniforms_per_step)
    for row in range(len(ids)):
        def judge(claim, t):
            predicted, confidence = agent.judge(pool, np.array([claim]), u_agent[row, t:t + 1])
            return (SUPPORTS if predicted[0] else "REFUTES"), float(confidence[0])

        ref = reference_trajectory(**reference_inputs(pool), judge=judge, draws=AlignedDraws(u_policy[row]),
                                   steps=steps)
        assert batch.claim[row].tolist() == ref.claims
        assert batch.accepted[row].tolist() == [p == SUPPORTS for p in ref.predictions]


# --- the reference with its own natural draws: same distribution ------------------------

@pytest.mark.slow
def test_engine_matches_reference_in_distribution_over_many_seeds():
    _distribution_check(n_traj=400)


def test_engine_matches_reference_in_distribution_small():
    _distribution_check(n_traj=80)


def _distribution_check(n_traj):
    pool = small_pool(n_claims=300, seed=8, false_share=0.4)
    agent = parametric_agent("p", true_acceptance=0.8, false_acceptance=0.45, confidence=[1, 1, 2, 3, 3])
    steps = 20
    batch = run_trajectories(pool, agent, make_policy("frameref"), trajectory_ids=range(n_traj), steps=steps,
                             seed=123)
    engine_ih = batch.H.mean(axis=1)
    engine_false = (~pool.is_true[batch.claim]).mean(axis=1)
    ref_ih, ref_false = [], []
    for i in range(n_traj):
        rng = np.random.default_rng([999, i])

        def judge(claim, t):
            predicted, confidence = agent.judge(pool, np.array([claim]), rng.random((1, 3)))
            return (SUPPORTS if predicted[0] else "REFUTES"), float(confidence[0])

        ref = reference_trajectory(**reference_inputs(pool), judge=judge, draws=NaturalDraws(rng), steps=steps)
        ref_ih.append(np.mean(ref.H))
        ref_false.append(np.mean([not pool.is_true[c] for c in ref.claims]))
    for name, a, b in (("mean_IH", engine_ih, np.array(ref_ih)), ("false share", engine_false, np.array(ref_false))):
        se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        assert abs(a.mean() - b.mean()) < 4 * se, (name, a.mean(), b.mean(), se)
    # The reinforcement policy shows more false claims than their share of the pool.
    assert engine_false.mean() > (~pool.is_true).mean() + 0.03


# --- invariants -------------------------------------------------------------------------

def test_invariants_of_every_trajectory():
    pool = small_pool(n_claims=360, seed=2)
    agent = parametric_agent("p", true_acceptance=0.8, false_acceptance=0.5, confidence=[1, 1, 1, 1, 1])
    batch = run_trajectories(pool, agent, make_policy("frameref"), trajectory_ids=range(60), steps=40, seed=7)
    for row in range(60):
        bases = pool.base[batch.claim[row]]
        assert len(set(bases.tolist())) == 40, "a base claim was shown twice"
    np.testing.assert_allclose(batch.H, np.cumsum(batch.reward, axis=1))
    np.testing.assert_array_equal(np.abs(batch.reward), batch.confidence)
    np.testing.assert_array_equal(batch.correct, batch.accepted == pool.is_true[batch.claim])
    np.testing.assert_array_equal(batch.reward > 0, batch.correct)
    assert set(np.unique(batch.confidence)) <= {0.5, 0.625, 0.75, 0.875, 1.0}


def test_oracle_health_is_the_step_number():
    pool = small_pool()
    batch = run_trajectories(pool, OracleAgent(), make_policy("frameref"), trajectory_ids=range(5), steps=20, seed=1)
    np.testing.assert_array_equal(batch.H, np.tile(np.arange(1, 21, dtype=float), (5, 1)))


def test_first_claim_and_jumps_are_uniform_choices_of_the_trajectory_stream():
    pool = small_pool()
    agent = ScoreAgent("never", np.zeros(pool.size))  # always rejects: every claim is a jump
    batch = run_trajectories(pool, agent, make_policy("frameref"), trajectory_ids=[3, 9], steps=10, seed=2)
    u_policy, _ = trajectory_uniforms(2, 0, [3, 9], 10, 0)
    for row in range(2):
        removed = np.full((1, 0), -1)
        for t in range(10):
            expected = uniform_choice(pool, u_policy[row, t:t + 1, 0], removed, np.array([removed.size - (removed < 0).sum()]))
            assert batch.claim[row, t] == expected[0]
            shown = pool.base_claims[pool.base[batch.claim[row, t]]]
            removed = np.concatenate([removed, shown[None, :]], axis=1)


# --- determinism and shards -------------------------------------------------------------

def test_streams_are_the_spawned_children_of_the_seed():
    child = np.random.SeedSequence(42).spawn(3)[2].spawn(8)[7]
    expected = np.random.default_rng(child).random(4)
    np.testing.assert_array_equal(trajectory_stream(42, 2, 7).random(4), expected)


def unit_grid(rng, shape):
    x = rng.standard_normal(shape)
    return to_grid(x / np.linalg.norm(x, axis=-1, keepdims=True))


@pytest.mark.parametrize("n_claims,dim", [(37, 64), (2048 + 77, 384)])
def test_similarities_are_exact_and_do_not_depend_on_the_other_queries(n_claims, dim):
    # Shard independence rests on this. For arbitrary float32 vectors a plain matrix product
    # computes a row differently depending on its position and the number of rows (BLAS
    # micro-kernel tiles); for grid vectors every sum is exact, so nothing can depend on it.
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(n_claims)
    emb = unit_grid(rng, (n_claims, dim))
    query = unit_grid(rng, dim)
    expected = similarities(query[None], emb)[0]
    exact = (emb.astype(np.float64) @ query.astype(np.float64))
    np.testing.assert_array_equal(expected.astype(np.float64), exact)  # exact, not merely close
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            for batch in (2, 3, 8, 13, 40, 97):
                for position in range(0, batch, 7):
                    queries = unit_grid(rng, (batch, dim))
                    queries[position] = query
                    np.testing.assert_array_equal(similarities(queries, emb)[position], expected)


def test_pool_embeddings_are_unit_vectors_on_the_grid():
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((30, 8)) * 3
    pool = Pool.build(claim_ids=[f"c{i}:original" for i in range(30)], base_ids=np.arange(30),
                      true_labels=np.arange(30) % 2 == 0, embeddings=raw)
    assert pool.embeddings.dtype == np.float32 and on_grid(pool.embeddings)
    np.testing.assert_allclose(pool.embeddings, raw / np.linalg.norm(raw, axis=1, keepdims=True),
                               atol=0.5 / GRID_SCALE)
    # Already-unit grid vectors are used as they are, without a copy.
    ready = unit_grid(rng, (30, 8))
    same = Pool.build(claim_ids=pool.claim_ids, base_ids=np.arange(30), true_labels=pool.is_true,
                      embeddings=ready, normalise=False)
    assert same.embeddings is ready
    # normalise=False with vectors that are not unit norm is refused, naming the claim.
    with pytest.raises(PoolError, match=r"claim 'c0:original' \(row 0\) has norm"):
        Pool.build(claim_ids=pool.claim_ids, base_ids=np.arange(30), true_labels=pool.is_true,
                   embeddings=raw, normalise=False)


@pytest.mark.parametrize("mode", ["exact", "indexed"])
def test_shard_split_gives_bit_identical_results(mode):
    pool = small_pool(n_claims=600, seed=5)
    index = None
    if mode == "indexed":
        index = IVFIndex.build(pool, n_lists=12, n_probe=3, seed=1)
        pool = index.pool
    agent = parametric_agent("p", true_acceptance=0.75, false_acceptance=0.5, confidence=[1, 2, 2, 2, 1])
    policy = make_policy("frameref")
    kwargs = dict(steps=30, seed=77, run=1, candidate_mode=mode, index=index)
    whole = run_trajectories(pool, agent, policy, trajectory_ids=range(50), **kwargs)
    shards = [run_trajectories(pool, agent, policy, trajectory_ids=r, **kwargs)
              for r in (range(31, 50), range(0, 1), range(1, 31))]
    assert_same_batch(whole, TrajectoryBatch.concatenate(shards))
    chunked = run_trajectories(pool, agent, policy, trajectory_ids=range(50), chunk_size=7, **kwargs)
    assert_same_batch(whole, chunked)
    again = run_trajectories(pool, agent, policy, trajectory_ids=range(50), **kwargs)
    assert_same_batch(whole, again)


def test_a_batched_study_equals_each_agent_and_run_alone():
    pool = small_pool(n_claims=360, seed=9)
    agents = [ScoreAgent("persona", persona_scores(pool, seed=2)), OracleAgent(),
              parametric_agent("p", true_acceptance=0.7, false_acceptance=0.4, confidence=[1, 1, 2, 2, 1])]
    policy = make_policy("frameref")
    study = run_study(pool, agents, policy, runs=[0, 2], trajectory_ids=range(5, 25), steps=15, seed=8,
                      chunk_size=17)
    assert [(b.agent, b.run) for b in study] == [(a.name, r) for a in agents for r in (0, 2)]
    for batch in study:
        agent = next(a for a in agents if a.name == batch.agent)
        alone = run_trajectories(pool, agent, policy, trajectory_ids=range(5, 25), steps=15, seed=8, run=batch.run)
        assert_same_batch(batch, alone)


def test_seed_and_run_change_the_result():
    pool = small_pool()
    agent = OracleAgent()
    policy = make_policy("frameref")
    a = run_trajectories(pool, agent, policy, trajectory_ids=range(10), steps=10, seed=1)
    b = run_trajectories(pool, agent, policy, trajectory_ids=range(10), steps=10, seed=2)
    c = run_trajectories(pool, agent, policy, trajectory_ids=range(10), steps=10, seed=1, run=1)
    assert not np.array_equal(a.claim, b.claim)
    assert not np.array_equal(a.claim, c.claim)


def test_agents_share_policy_draws_for_the_same_trajectory():
    pool = small_pool()
    policy = make_policy("frameref")
    a = run_trajectories(pool, OracleAgent(), policy, trajectory_ids=range(10), steps=5, seed=1)
    b = run_trajectories(pool, ScoreAgent("s", np.full(pool.size, 0.2)), policy, trajectory_ids=range(10),
                         steps=5, seed=1)
    np.testing.assert_array_equal(a.claim[:, 0], b.claim[:, 0])


# --- indexed mode -----------------------------------------------------------------------

def test_indexed_mode_probing_every_list_equals_exact_mode():
    pool = small_pool(n_claims=480, seed=6)
    index = IVFIndex.build(pool, n_lists=10, n_probe=10, seed=0)
    agent = ScoreAgent("s", persona_scores(pool, competence=0.3, seed=1))
    policy = make_policy("frameref")
    exact = run_trajectories(pool, agent, policy, trajectory_ids=range(30), steps=40, seed=9)
    indexed = run_trajectories(index.pool, agent, policy, trajectory_ids=range(30), steps=40, seed=9,
                               candidate_mode="indexed", index=index)
    np.testing.assert_array_equal(pool.claim_ids[exact.claim], index.pool.claim_ids[indexed.claim])
    np.testing.assert_array_equal(exact.H, indexed.H)


def test_indexed_recall_on_a_clustered_pool():
    pool = synthetic_pool(6_000, dim=32, seed=3)
    index = IVFIndex.build(pool, n_lists=40, n_probe=3, seed=0)
    queries = recall_queries(index.pool, 200, seed=1)
    recall = measure_recall(index, queries, k=5)
    assert recall >= 0.9
    assert measure_recall(index.with_probes(40), queries, k=5) == 1.0
    assert measure_recall(index.with_probes(1), queries, k=5) <= recall


def test_indexed_run_falls_back_to_exact_when_probed_lists_run_dry():
    # One probed list of a tiny index is soon exhausted; runs must still find candidates.
    pool = small_pool(n_claims=120, seed=1)
    index = IVFIndex.build(pool, n_lists=20, n_probe=1, seed=0)
    batch = run_trajectories(index.pool, OracleAgent(), make_policy("frameref"), trajectory_ids=range(8),
                             steps=20, seed=3, candidate_mode="indexed", index=index)
    for row in batch.claim:
        assert len(set(index.pool.base[row].tolist())) == 20


# --- errors -----------------------------------------------------------------------------

def test_too_many_steps_for_the_pool_is_an_error():
    pool = small_pool(n_claims=60)
    with pytest.raises(ValueError, match="only 10"):
        run_trajectories(pool, OracleAgent(), make_policy("frameref"), trajectory_ids=range(2), steps=11, seed=1)


def test_indexed_mode_needs_the_index_pool():
    pool = small_pool()
    index = IVFIndex.build(pool, n_lists=4)
    with pytest.raises(ValueError, match="index.pool"):
        run_trajectories(pool, OracleAgent(), make_policy("frameref"), trajectory_ids=range(2), steps=3,
                         seed=1, candidate_mode="indexed", index=index)


def test_pool_rejects_mixed_truth_and_bad_labels():
    emb = np.eye(3, dtype=np.float32)
    with pytest.raises(PoolError, match="disagree"):
        Pool.build(claim_ids=["a:x", "a:y", "b:x"], base_ids=["a", "a", "b"],
                   true_labels=["SUPPORTS", "REFUTES", "SUPPORTS"], embeddings=emb)
    with pytest.raises(PoolError, match=r"'b:x' \(row 2\) is 'TRUE'"):
        Pool.build(claim_ids=["a:x", "a:y", "b:x"], base_ids=["a", "a", "b"],
                   true_labels=["SUPPORTS", "SUPPORTS", "TRUE"], embeddings=emb)
    with pytest.raises(PoolError, match="all zeros"):
        Pool.build(claim_ids=["a", "b", "c"], base_ids=["a", "b", "c"], true_labels=[True, False, True],
                   embeddings=np.zeros((3, 3)))


def test_trajectory_frame_has_the_documented_columns():
    pool = small_pool()
    batch = run_trajectories(pool, OracleAgent(), make_policy("frameref"), trajectory_ids=[4, 5], steps=3, seed=1)
    frame = batch.to_frame(pool)
    assert list(frame.columns) == ["agent", "run", "trajectory", "step", "claim_id", "base_id", "framing",
                                   "true_label", "accepted", "predicted", "confidence", "reward", "H", "correct"]
    assert frame["trajectory"].tolist() == [4, 4, 4, 5, 5, 5]
    assert frame["step"].tolist() == [1, 2, 3, 1, 2, 3]
    assert frame["claim_id"].tolist() == pool.claim_ids[batch.claim.reshape(-1)].tolist()


def test_largest_columns_finds_each_rows_top_k_with_or_without_torch(monkeypatch):
    from simulation import engine

    rng = np.random.default_rng(5)
    values = rng.standard_normal((13, 300)).astype(np.float32)
    values[:, rng.integers(0, 300, 40)] = -np.inf
    values[3, 5:] = -np.inf  # a row with fewer finite values than k
    expected = np.sort(values, axis=1)[:, -7:]
    got = engine.largest_columns(values, 7)
    assert got.shape == (13, 7) and got.dtype == np.int64
    np.testing.assert_array_equal(np.sort(np.take_along_axis(values, got, axis=1), axis=1), expected)
    monkeypatch.setattr(engine, "_TORCH", [None])  # numpy only
    np.testing.assert_array_equal(np.sort(np.take_along_axis(values, engine.largest_columns(values, 7), axis=1),
                                          axis=1), expected)
    assert engine.largest_columns(values[:, :4], 7).tolist() == [[0, 1, 2, 3]] * 13
