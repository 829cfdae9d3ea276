"""Pure agents: score tables, rate tables (human-calibrated and parametric), the oracle."""
from __future__ import annotations

import numpy as np
import pandas as pd
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


def familiarity_study(informative: bool):
    """A judgment table over base claims b0..b3 (b0, b2 true) in two framings, 20 raters each.

    informative: b1 and b0 are known topics (raters report familiarity 5), b3 and b2 unknown
    (level 1); familiar raters reject the false b1 at confidence 5 and accept the true b0 at
    confidence 5, unfamiliar ones accept the false b3 at confidence 1 and the true b2 at
    confidence 2. Not informative: b0, b1 are reported at level 2 and b2, b3 at level 4, and
    at both levels half the raters accept, with the same confidence whatever they decide.
    """
    from annotation.analysis.human_profile import human_profile

    rows = []
    for base in range(4):
        for framing in FRAMINGS:
            for rater in range(20):
                truth = "SUPPORTS" if base in (0, 2) else "REFUTES"
                if informative:
                    level = 5 if base in (0, 1) else 1
                    accept = base != 1
                    confidence = {0: 5, 1: 5, 2: 2, 3: 1}[base]
                else:
                    level = 2 if base in (0, 1) else 4
                    accept = rater % 2 == 0
                    confidence = 2 if rater % 4 < 2 else 5
                rows.append((f"r{rater}", f"b{base}:{framing}", framing, truth,
                             "SUPPORTS" if accept else "REFUTES", confidence, level))
    return human_profile(pd.DataFrame(rows, columns=[
        "Annotator_ID", "full_claim_id", "framing_type", "true_label",
        "accurate_response", "confidence_response", "familiarity_response"]))


def base_named_pool():
    base = np.repeat(np.arange(4), 2)
    return Pool.build(claim_ids=[f"b{b}:{FRAMINGS[i % 2]}" for i, b in enumerate(base)],
                      base_ids=[f"b{b}" for b in base], true_labels=np.isin(base, [0, 2]),
                      embeddings=np.random.default_rng(0).normal(size=(8, 4)),
                      framings=[FRAMINGS[i % 2] for i in range(8)])


def test_familiarity_agent_judges_each_claim_at_its_reported_familiarity():
    """Guards against the familiarity-aware human agent reproducing the plain one (a level
    drawn from the framing's own familiarity distribution gives back the framing's rate):
    a claim its raters know well is judged as the familiar raters judged, with their
    confidence."""
    from simulation.agent_builders import FAMILIARITY_PRIOR_JUDGMENTS as m
    from simulation.agent_builders import human_agent_from_profile

    profile = familiarity_study(informative=True)
    plain = human_agent_from_profile("plain", profile, by_familiarity=False)
    familiar = human_agent_from_profile("familiar", profile, by_familiarity=True)
    pool = base_named_pool()
    n = 20000
    u = np.random.default_rng(4).random((n, 3))
    expected = {  # P(accept) per base: thin levels are blended toward the framing's 0.5 by m
        1: (0 + m * 0.5) / (40 / 2 + m), 3: (20 + m * 0.5) / (20 + m), 0: 1.0, 2: 1.0}
    for base, p_familiar in expected.items():
        for row in (2 * base, 2 * base + 1):
            claims = np.full(n, row)
            accepted_plain, conf_plain = plain.judge(pool, claims, u)
            accepted, conf = familiar.judge(pool, claims, u)
            p_plain = 0.5 if base in (1, 3) else 1.0
            assert abs(accepted_plain.mean() - p_plain) < 0.015
            assert abs(accepted.mean() - p_familiar) < 0.015, (base, accepted.mean(), p_familiar)
            if base in (0, 2):
                # Accepted true claims: the plain agent mixes levels 2 and 5 half and half;
                # the familiar one gives b0 (known) level 5 and b2 (unknown) level 2 with
                # probability (20 + m/2) / (20 + m).
                assert abs((conf_plain == 1.0).mean() - 0.5) < 0.015
                top = (20 + m / 2) / (20 + m)
                share = (conf == (1.0 if base == 0 else 0.625)).mean()
                assert abs(share - top) < 0.015, (base, share, top)


def test_familiarity_agent_equals_the_plain_agent_where_familiarity_says_nothing():
    """Where acceptance and confidence are the same at every familiarity level, judging at a
    claim's familiarity changes nothing: the same draws give the same judgments."""
    from simulation.agent_builders import human_agent_from_profile

    profile = familiarity_study(informative=False)
    plain = human_agent_from_profile("plain", profile, by_familiarity=False)
    familiar = human_agent_from_profile("familiar", profile, by_familiarity=True)
    assert familiar.claim_familiarity is not None
    pool = base_named_pool()
    claims = np.tile(np.arange(8), 3000)
    u = np.random.default_rng(5).random((len(claims), 3))
    a_plain, c_plain = plain.judge(pool, claims, u)
    a_fam, c_fam = familiar.judge(pool, claims, u)
    np.testing.assert_array_equal(a_fam, a_plain)
    np.testing.assert_array_equal(c_fam, c_plain)
    assert 0.45 < a_plain.mean() < 0.55


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
