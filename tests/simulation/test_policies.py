"""Each branch of the exposure policies on hand-built pools, checked against brute force."""
from __future__ import annotations

import numpy as np
import pytest

from simulation.agents import ScoreAgent, parametric_agent
from simulation.engine import (
    Pool,
    run_trajectories,
    trajectory_uniforms,
    uniform_choice,
)
from simulation.policies import (
    NeighbourhoodPolicy,
    PolicyError,
    make_policy,
    parse_policy_params,
)

ACCEPT_ALL = parametric_agent("credulous", true_acceptance=1.0, false_acceptance=1.0, confidence=1.0)


def hand_pool(n_base=40, framings=2, dim=8, seed=0, truth=None):
    """Base claims on random directions, framings tightly around them; truth alternates
    unless given, so true and false claims are interleaved in embedding space."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_base, dim))
    emb = np.repeat(centres, framings, axis=0) + 0.05 * rng.normal(size=(n_base * framings, dim))
    truth = np.arange(n_base) % 2 == 0 if truth is None else np.asarray(truth)
    base = np.repeat(np.arange(n_base), framings)
    return Pool.build(claim_ids=[f"b{b}:f{i % framings}" for i, b in enumerate(base)], base_ids=base,
                      true_labels=truth[base], embeddings=emb)


def brute_force_ranking(pool, history, shown_bases, restrict_false):
    """Remaining claims by cosine to the normalised mean of `history`, best first."""
    context = pool.embeddings[history].astype(np.float64).sum(axis=0)
    context /= np.linalg.norm(context)
    remaining = [i for i in range(pool.size) if pool.base[i] not in shown_bases]
    if restrict_false:
        remaining = [i for i in remaining if not pool.is_true[i]] or remaining
    return sorted(remaining, key=lambda i: (-float(pool.embeddings[i] @ context), i))


def walk(pool, batch, row, window):
    """Yield (t, history since the last reset (last `window`), shown bases) after each step."""
    start = 0
    for t in range(batch.steps - 1):
        history = [int(c) for c in batch.claim[row, max(start, t - window + 1):t + 1]]
        yield t, history, set(pool.base[batch.claim[row, :t + 1]].tolist())
        if not batch.accepted[row, t]:
            start = t + 1


def test_frameref_defaults_are_the_papers():
    policy = make_policy("frameref")
    assert (policy.window, policy.top_k, policy.temperature, policy.reinforce_false) == (3, 5, 0.1, True)


@pytest.mark.parametrize("policy_name", ["frameref", "similarity"])
def test_greedy_neighbourhood_step_is_the_brute_force_nearest_claim(policy_name):
    # With a vanishing temperature the sample is the top candidate: every accepted step's
    # successor must be the brute-force nearest remaining claim to the context of the last
    # three claims since the last rejection (false-only after an accepted false claim).
    pool = hand_pool(seed=3)
    agent = ScoreAgent("coin", np.random.default_rng(1).random(pool.size))
    policy = make_policy(policy_name, {"temperature": 1e-6})
    batch = run_trajectories(pool, agent, policy, trajectory_ids=range(12), steps=25, seed=4)
    checked = 0
    for row in range(12):
        for t, history, shown in walk(pool, batch, row, window=3):
            if not batch.accepted[row, t]:
                continue
            restrict = policy.reinforce_false and not pool.is_true[batch.claim[row, t]]
            expected = brute_force_ranking(pool, history, shown, restrict)[0]
            assert batch.claim[row, t + 1] == expected, (row, t)
            checked += 1
    assert checked > 50


def test_sampled_successor_is_among_the_top_k():
    pool = hand_pool(seed=5)
    policy = make_policy("frameref", {"top_k": 2, "temperature": 10.0})
    batch = run_trajectories(pool, ACCEPT_ALL, policy, trajectory_ids=range(10), steps=15, seed=2)
    seen_second = False
    for row in range(10):
        for t, history, shown in walk(pool, batch, row, window=3):
            top = brute_force_ranking(pool, history, shown, not pool.is_true[batch.claim[row, t]])[:2]
            assert batch.claim[row, t + 1] in top
            seen_second |= batch.claim[row, t + 1] == top[1]
    assert seen_second, "a hot softmax over two candidates must sometimes pick the second"


def test_accepted_false_claim_leads_to_a_false_claim_only_under_reinforcement():
    pool = hand_pool(seed=6)
    transitions = {}
    for name in ("frameref", "similarity"):
        batch = run_trajectories(pool, ACCEPT_ALL, make_policy(name), trajectory_ids=range(30), steps=15, seed=3)
        false_now = ~pool.is_true[batch.claim[:, :-1]]
        false_next = ~pool.is_true[batch.claim[:, 1:]]
        transitions[name] = (false_next[false_now].mean(), false_now.sum())
    assert transitions["frameref"][0] == 1.0  # false claims remain throughout: always false next
    assert transitions["similarity"][0] < 0.9  # neighbours of false claims are often true


def test_false_only_restriction_falls_back_to_the_whole_pool():
    # One false base claim among twelve: once it is shown and accepted no false claim is
    # left, so its successor comes from the whole remaining pool.
    truth = np.ones(12, dtype=bool)
    truth[4] = False
    pool = hand_pool(n_base=12, framings=3, truth=truth, seed=7)
    batch = run_trajectories(pool, ACCEPT_ALL, make_policy("frameref"), trajectory_ids=range(40), steps=10, seed=5)
    followed = 0
    for row in range(40):
        where = np.flatnonzero(~pool.is_true[batch.claim[row]])
        if len(where) and where[0] < 9:
            t = int(where[0])
            assert pool.is_true[batch.claim[row, t + 1]]
            followed += 1
    assert followed > 5


def test_rejection_jumps_uniformly_and_resets_the_history():
    pool = hand_pool(seed=8)
    never = ScoreAgent("never", np.zeros(pool.size))
    steps = 8
    batch = run_trajectories(pool, never, make_policy("frameref"), trajectory_ids=[0, 1, 2], steps=steps, seed=9)
    u, _ = trajectory_uniforms(9, 0, [0, 1, 2], steps, 0)
    for row in range(3):
        removed = np.zeros((1, 0), dtype=np.int64)
        for t in range(steps):
            n_removed = np.array([(removed >= 0).sum()])
            assert batch.claim[row, t] == uniform_choice(pool, u[row, t:t + 1, 0], removed, n_removed)[0]
            removed = np.concatenate([removed, pool.base_claims[pool.base[batch.claim[row, t]]][None]], axis=1)


def test_health_aware_policy_demotes_false_candidates():
    pool = hand_pool(seed=10)
    policy = make_policy("health-aware", {"false_weight": 0.0, "temperature": 1.0})
    batch = run_trajectories(pool, ACCEPT_ALL, policy, trajectory_ids=range(20), steps=15, seed=6)
    for row in range(20):
        for t, history, shown in walk(pool, batch, row, window=3):
            top = brute_force_ranking(pool, history, shown, False)[:5]
            nxt = batch.claim[row, t + 1]
            assert nxt in top
            if any(pool.is_true[c] for c in top):
                assert pool.is_true[nxt], "false_weight=0 shows a false claim only when all top-k are false"
    similar = run_trajectories(pool, ACCEPT_ALL, make_policy("similarity", {"temperature": 1.0}),
                               trajectory_ids=range(20), steps=15, seed=6)
    assert (~pool.is_true[batch.claim]).mean() < (~pool.is_true[similar.claim]).mean()


def test_uniform_policy_never_follows_the_neighbourhood():
    pool = hand_pool(seed=11)
    batch = run_trajectories(pool, ACCEPT_ALL, make_policy("uniform"), trajectory_ids=[5], steps=6, seed=1)
    u, _ = trajectory_uniforms(1, 0, [5], 6, 0)
    removed = np.zeros((1, 0), dtype=np.int64)
    for t in range(6):
        assert batch.claim[0, t] == uniform_choice(pool, u[0, t:t + 1, 0], removed, np.array([(removed >= 0).sum()]))[0]
        removed = np.concatenate([removed, pool.base_claims[pool.base[batch.claim[0, t]]][None]], axis=1)


def test_window_one_uses_only_the_last_claim():
    pool = hand_pool(seed=12)
    policy = make_policy("similarity", {"window": 1, "temperature": 1e-6})
    batch = run_trajectories(pool, ACCEPT_ALL, policy, trajectory_ids=range(5), steps=12, seed=2)
    for row in range(5):
        for t, history, shown in walk(pool, batch, row, window=1):
            assert history == [batch.claim[row, t]]
            assert batch.claim[row, t + 1] == brute_force_ranking(pool, history, shown, False)[0]


def test_policy_parameters_from_strings_and_errors():
    policy = make_policy("frameref", parse_policy_params(["top_k=10", "temperature=0.5", "reinforce_false=no"]))
    assert isinstance(policy, NeighbourhoodPolicy)
    assert (policy.top_k, policy.temperature, policy.reinforce_false) == (10, 0.5, False)
    with pytest.raises(PolicyError, match="unknown policy 'greedy'"):
        make_policy("greedy")
    with pytest.raises(PolicyError, match="no parameter 'topk'.*top_k"):
        make_policy("frameref", {"topk": 3})
    with pytest.raises(PolicyError, match="'top_k': '2.5' is not a int"):
        make_policy("frameref", {"top_k": "2.5"})
    with pytest.raises(PolicyError, match="temperature must be positive"):
        make_policy("frameref", {"temperature": 0})
    with pytest.raises(PolicyError, match="false_weight must lie in"):
        make_policy("health-aware", {"false_weight": 2})
    with pytest.raises(PolicyError, match="name=value"):
        parse_policy_params(["top_k"])
    with pytest.raises(PolicyError, match="no parameter"):
        make_policy("uniform", {"top_k": 2})
