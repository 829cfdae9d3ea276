"""Decision rules (modeling/decisions.py): argmax and sampling with temperature and top-p,
by hand, through a persona agent in the engine, across shards, and from the specs."""
from __future__ import annotations

import numpy as np
import pytest

from modeling.decisions import (
    ARGMAX,
    FRAMEREF,
    DecisionRule,
    DecisionRuleError,
    parse_decision,
    tempered_probability,
)
from simulation.agents import AgentError, ScoreAgent
from simulation.engine import run_study, run_trajectories
from simulation.policies import make_policy
from simulation.synthetic_pool import persona_scores, synthetic_pool


def by_hand(p, T):
    return p ** (1 / T) / (p ** (1 / T) + (1 - p) ** (1 / T))


# --- the formula ------------------------------------------------------------------------

@pytest.mark.parametrize("T", [0.1, 0.6, 1.0, 1.7, 4.0])
def test_tempered_probability_is_the_formula(T):
    """Guards against a temperature applied the wrong way round (p^T) or to one label only."""
    p = np.array([0.01, 0.2, 0.4, 0.5, 0.6, 0.75, 0.93, 0.999])
    np.testing.assert_allclose(tempered_probability(p, T), by_hand(p, T), rtol=1e-12)


def test_tempered_probability_edges():
    # T = 0.5 squares the odds: 0.75 (odds 3) becomes 0.9 (odds 9).
    assert tempered_probability(0.75, 0.5) == pytest.approx(0.9, abs=1e-15)
    # p = 0, 1 and 0.5 stay where they are at any temperature; a tiny T neither
    # underflows nor gives 0/0.
    for T in (1e-4, 0.6, 3.0):
        np.testing.assert_array_equal(tempered_probability(np.array([0.0, 0.5, 1.0]), T), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(tempered_probability(np.array([0.49, 0.51]), 1e-4), [0.0, 1.0], atol=1e-12)
    # T = 1 is the identity exactly.
    p = np.random.default_rng(0).random(100)
    np.testing.assert_array_equal(tempered_probability(p, 1.0), p)


def test_top_p_keeps_the_top_label_alone_when_its_tempered_probability_reaches_top_p():
    """Guards against 'more than' for 'at least', and against top-p on the untempered p."""
    rule = DecisionRule("sample", 1.0, 0.75)
    u = np.array([0.0, 0.5, 0.7499, 0.75, 0.9999])
    # Tempered 0.75 == top-p: SUPPORTS alone, whatever the draw.
    assert rule.decide(np.full(5, 0.75), u).all()
    # ... and REFUTES alone at 0.25 (its probability 0.75).
    assert not rule.decide(np.full(5, 0.25), u).any()
    # Just under top-p: both labels kept, SUPPORTS when u < q.
    np.testing.assert_array_equal(rule.decide(np.full(5, 0.7499), u), u < 0.7499)
    # Top-p acts on the tempered probability: p = 0.7 at T 0.6 is 0.804, under 0.9 -> sampled;
    # p = 0.8 at T 0.6 is 0.909 -> SUPPORTS alone (untempered 0.8 is under 0.9).
    assert by_hand(0.7, 0.6) < 0.9 < by_hand(0.8, 0.6)
    np.testing.assert_array_equal(FRAMEREF.decide(np.full(5, 0.7), u), u < by_hand(0.7, 0.6))
    assert FRAMEREF.decide(np.full(5, 0.8), u).all()
    # top-p 1 keeps both unless one label has all the mass.
    both = DecisionRule("sample", 1.0, 1.0)
    np.testing.assert_array_equal(both.decide(np.full(5, 0.999), u), u < 0.999)
    assert both.decide(np.full(5, 1.0), u).all() and not both.decide(np.zeros(5), u).any()


def test_expected_acceptance_matches_decide():
    p = np.array([0.05, 0.3, 0.5, 0.7, 0.8, 0.97])
    np.testing.assert_allclose(FRAMEREF.p_supports_decision(p),
                               np.where(np.maximum(by_hand(p, 0.6), 1 - by_hand(p, 0.6)) >= 0.9,
                                        (by_hand(p, 0.6) >= 0.5).astype(float), by_hand(p, 0.6)))
    np.testing.assert_array_equal(ARGMAX.p_supports_decision(p), p >= 0.5)


def test_rules_read_from_text_and_refuse_bad_text():
    assert parse_decision(None) == ARGMAX == parse_decision("argmax")
    assert parse_decision("frameref") == DecisionRule("sample", 0.6, 0.9) == parse_decision("sample:0.6:0.9")
    assert parse_decision("sample:0.6:0.9").text() == "frameref"
    assert parse_decision("sample:1.5:1").text() == "sample:1.5:1"
    assert ARGMAX.uniforms_per_judgment == 0 and FRAMEREF.uniforms_per_judgment == 1
    for bad, message in [("greedy", "accepted: argmax, frameref"), ("sample:0:0.9", "temperature 0.0"),
                         ("sample:0.6:1.5", "top-p 1.5"), ("sample:x:0.9", "accepted"),
                         ("sample:0.6", "accepted")]:
        with pytest.raises(DecisionRuleError, match=message):
            parse_decision(bad)
    with pytest.raises(AgentError, match="agent 's': decision 'greedy'"):
        ScoreAgent("s", np.array([0.5]), decision="greedy")


# --- a persona agent that samples ------------------------------------------------------

def test_sampling_persona_accepts_at_the_tempered_rate():
    """The acceptance frequency of a sampled persona is q within Monte Carlo error, its
    confidence the untempered probability of the label it chose. Guards against drawing
    from the untempered p (0.70 against 0.80 here) and against reporting q as confidence."""
    pool = synthetic_pool(600, dim=8, seed=1, n_topics=4)
    p = 0.7
    agent = ScoreAgent("s", np.full(pool.size, p), decision="frameref")
    assert agent.uniforms_per_step == 1
    batch = run_trajectories(pool, agent, make_policy("frameref"), trajectory_ids=range(400), steps=20, seed=5)
    q = by_hand(p, 0.6)
    n = batch.accepted.size
    rate = batch.accepted.mean()
    assert abs(rate - q) < 4 * np.sqrt(q * (1 - q) / n), (rate, q)
    np.testing.assert_allclose(batch.confidence, np.where(batch.accepted, p, 1 - p))
    # Same persona by argmax: every claim accepted.
    assert run_trajectories(pool, ScoreAgent("a", np.full(pool.size, p)), make_policy("frameref"),
                            trajectory_ids=range(20), steps=20, seed=5).accepted.all()


def test_unnormalised_label_probabilities_are_normalised_before_sampling():
    """p(S) = 0.35, p(R) = 0.15 is P(SUPPORTS) 0.7 over the two labels; confidence stays the raw 0.35 / 0.15."""
    pool = synthetic_pool(300, dim=8, seed=2, n_topics=3)
    agent = ScoreAgent("s", np.full(pool.size, 0.35), np.full(pool.size, 0.15), decision="sample:1:1")
    u = np.random.default_rng(3).random((4000, 1))
    claims = np.arange(4000) % pool.size
    supports, conf = agent.judge(pool, claims, u)
    np.testing.assert_array_equal(supports, u[:, 0] < 0.7)
    np.testing.assert_array_equal(conf, np.where(supports, 0.35, 0.15))


def test_sampled_runs_are_identical_however_they_are_sharded():
    """Each judgment's draw comes from its trajectory's stream: splitting the trajectories
    into shards (or running them beside other agents) gives the same trajectories to the bit."""
    pool = synthetic_pool(400, dim=8, seed=4, n_topics=5)
    agent = ScoreAgent("s", persona_scores(pool, competence=0.4, seed=3), decision="frameref")
    policy = make_policy("frameref")
    whole = run_trajectories(pool, agent, policy, trajectory_ids=range(30), steps=15, seed=9, run=1)
    parts = [run_trajectories(pool, agent, policy, trajectory_ids=ids, steps=15, seed=9, run=1)
             for ids in (range(0, 7), range(7, 30))]
    for name in ("claim", "accepted", "confidence", "H"):
        np.testing.assert_array_equal(getattr(whole, name),
                                      np.concatenate([getattr(b, name) for b in parts]), err_msg=name)
    argmax = ScoreAgent("a", agent.p_supports)
    together = run_study(pool, [argmax, agent], policy, runs=[1], trajectory_ids=range(30), steps=15, seed=9)
    np.testing.assert_array_equal(together[1].accepted, whole.accepted)
    # Sampling does change decisions: some claims' judgments differ from argmax.
    assert (together[0].accepted != together[1].accepted).any()


def test_argmax_agent_is_unchanged():
    """The default rule takes no draws and decides p >= q exactly as before."""
    pool = synthetic_pool(200, dim=8, seed=6, n_topics=3)
    p = persona_scores(pool, competence=0.4, seed=1)
    default, explicit = ScoreAgent("d", p), ScoreAgent("e", p, decision="argmax")
    assert default.uniforms_per_step == explicit.uniforms_per_step == 0
    supports, conf = default.judge(pool, np.arange(pool.size), np.zeros((pool.size, 0)))
    np.testing.assert_array_equal(supports, p[pool.rank] >= 1 - p[pool.rank])
    np.testing.assert_array_equal(conf, np.where(supports, p[pool.rank], 1 - p[pool.rank]))
