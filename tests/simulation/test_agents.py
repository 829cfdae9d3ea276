"""Pure agents: score tables, rate tables (human-calibrated and parametric), the oracle."""
from __future__ import annotations

import numpy as np
import pytest

from simulation.agents import (
    AgentError,
    OracleAgent,
    RateAgent,
    ScoreAgent,
    confidence_from_level,
    human_calibrated_agent,
    parametric_agent,
)
from simulation.engine import Pool
from simulation.synthetic_pool import synthetic_pool

FRAMINGS = ("original", "authoritative")


def framed_pool():
    # 4 base claims x 2 framings; bases 0 and 2 true.
    base = np.repeat(np.arange(4), 2)
    return Pool.build(claim_ids=[f"b{b}:{FRAMINGS[i % 2]}" for i, b in enumerate(base)], base_ids=base,
                      true_labels=np.isin(base, [0, 2]), embeddings=np.random.default_rng(0).normal(size=(8, 4)),
                      framings=[FRAMINGS[i % 2] for i in range(8)])


def test_confidence_levels_map_to_probabilities():
    np.testing.assert_array_equal(confidence_from_level([1, 2, 3, 4, 5]), [0.5, 0.625, 0.75, 0.875, 1.0])


def test_score_agent_predicts_the_more_probable_label_with_its_probability():
    pool = framed_pool()
    p = np.array([0.9, 0.5, 0.2, 0.4999, 0.7, 0.1, 0.6, 0.3])
    supports, conf = ScoreAgent("s", p).judge(pool, np.arange(8), np.zeros((8, 0)))
    np.testing.assert_array_equal(supports, [True, True, False, False, True, False, True, False])
    np.testing.assert_allclose(conf, [0.9, 0.5, 0.8, 0.5001, 0.7, 0.9, 0.6, 0.7])


def test_score_agent_with_separate_label_probabilities():
    pool = framed_pool()
    p = np.full(8, 0.3)
    q = np.array([0.2, 0.4, 0.3, 0.1, 0.9, 0.29, 0.31, 0.0])
    supports, conf = ScoreAgent("s", p, q).judge(pool, np.arange(8), np.zeros((8, 0)))
    np.testing.assert_array_equal(supports, [True, False, True, True, False, True, False, True])
    np.testing.assert_allclose(conf, np.maximum(p, q))


def test_score_agent_follows_claims_through_a_reordered_pool():
    pool = framed_pool()
    p = np.linspace(0.05, 0.95, 8)
    order = np.array([3, 1, 7, 0, 2, 6, 5, 4])
    moved = pool.reordered(order)
    agent = ScoreAgent("s", p)
    _, conf_moved = agent.judge(moved, np.arange(8), np.zeros((8, 0)))
    _, conf = agent.judge(pool, order, np.zeros((8, 0)))
    np.testing.assert_array_equal(conf_moved, conf)


def test_oracle_is_always_right():
    pool = framed_pool()
    supports, conf = OracleAgent(confidence=0.9).judge(pool, np.arange(8), np.zeros((8, 0)))
    np.testing.assert_array_equal(supports, pool.is_true)
    np.testing.assert_array_equal(conf, np.full(8, 0.9))


def test_parametric_agent_accepts_at_its_rates_per_framing():
    pool = synthetic_pool(600, dim=4, seed=1)
    agent = parametric_agent("p", true_acceptance=0.8, false_acceptance={"*": 0.2, "authoritative": 0.6},
                             confidence=0.7)
    claims = np.repeat(np.arange(pool.size), 40)
    u = np.random.default_rng(3).random((len(claims), 3))
    supports, conf = agent.judge(pool, claims, u)
    framing = pool.framing_of(claims)
    truth = pool.is_true[claims]
    for mask, rate in ((truth, 0.8), (~truth & (framing == "authoritative"), 0.6),
                       (~truth & (framing != "authoritative"), 0.2)):
        assert abs(supports[mask].mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / mask.sum())
    assert (conf == 0.7).all()


def test_human_calibrated_agent_draws_confidence_per_decision():
    pool = framed_pool()
    acceptance = {(f, t): 0.5 for f in FRAMINGS for t in ("SUPPORTS", "REFUTES")}
    confidence = {(f, t, "accepted"): [0, 0, 0, 0, 1] for f in FRAMINGS for t in ("SUPPORTS", "REFUTES")}
    confidence.update({(f, t, "rejected"): [3, 1, 0, 0, 0] for f in FRAMINGS for t in ("SUPPORTS", "REFUTES")})
    agent = human_calibrated_agent("humans", acceptance=acceptance, confidence=confidence)
    claims = np.tile(np.arange(8), 2000)
    supports, conf = agent.judge(pool, claims, np.random.default_rng(0).random((len(claims), 3)))
    assert (conf[supports] == 1.0).all()
    assert set(np.unique(conf[~supports])) == {0.5, 0.625}
    assert abs((conf[~supports] == 0.5).mean() - 0.75) < 0.03
    assert abs(supports.mean() - 0.5) < 0.03


def test_human_calibrated_agent_per_familiarity_level():
    pool = framed_pool()
    acceptance = {(f, t): 0.5 for f in FRAMINGS for t in ("SUPPORTS", "REFUTES")}
    confidence = {("original", "SUPPORTS", "accepted"): [1, 1, 1, 1, 1]}
    # False authoritative claims: familiar raters (level 5, weight 1) never accept, unfamiliar
    # ones (level 1, weight 3) always do: P(accept) = 3/4, not the plain 0.5.
    familiarity = {("authoritative", "REFUTES", 1): (1.0, 3), ("authoritative", "REFUTES", 5): (0.0, 1)}
    agent = human_calibrated_agent("humans", acceptance=acceptance, confidence=confidence, familiarity=familiarity)
    claims = np.full(20000, 3)  # base 1 (false), authoritative
    supports, _ = agent.judge(pool, claims, np.random.default_rng(1).random((len(claims), 3)))
    assert abs(supports.mean() - 0.75) < 0.02
    other = np.full(20000, 2)  # base 1... original framing: no familiarity data, plain rate
    supports, _ = agent.judge(pool, other, np.random.default_rng(2).random((len(other), 3)))
    assert abs(supports.mean() - 0.5) < 0.02


def test_rate_agent_errors_name_the_problem():
    with pytest.raises(AgentError, match="acceptance at .* is 1.5"):
        parametric_agent("p", true_acceptance=1.5, false_acceptance=0.2)
    with pytest.raises(AgentError, match="no acceptance rate for framing 'original' and REFUTES"):
        human_calibrated_agent("h", acceptance={("original", "SUPPORTS"): 0.5}, confidence={})
    agent = parametric_agent("p", true_acceptance={"original": 0.9}, false_acceptance={"original": 0.1})
    with pytest.raises(AgentError, match="no numbers for framing 'authoritative'"):
        agent.judge(framed_pool(), np.arange(8), np.zeros((8, 3)))
    with pytest.raises(AgentError, match="either a confidence distribution or a confidence_value"):
        RateAgent(name="r", framings=("*",), acceptance=np.full((1, 2), 0.5))
    with pytest.raises(AgentError, match="p_supports at 1 is"):
        ScoreAgent("s", np.array([0.5, np.nan]))
