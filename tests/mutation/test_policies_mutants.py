"""Exposure policies (simulation/policies.py), method by method: what each returns for
every branch, and the exact message of each refusal (a form and the command show it)."""
import numpy as np
import pytest

from simulation.policies import (
    NeighbourhoodPolicy,
    PolicyError,
    UniformPolicy,
    make_policy,
    parse_policy_params,
)

ACCEPTED = np.array([True, False, True, False])
TRUE = np.array([True, True, False, False])


def test_frameref_follows_after_acceptance_only_and_restricts_after_an_accepted_false_claim():
    """Guards against the follow/jump rule or the false-only rule being inverted or widened."""
    policy = make_policy("frameref")
    follows = policy.follows_neighbourhood([1, 0, 1, 0])
    assert follows.dtype == bool and follows.tolist() == [True, False, True, False]
    restrict = policy.restrict_to_false([1, 0, 1, 0], [1, 1, 0, 0])
    assert restrict.dtype == bool and restrict.tolist() == [False, False, True, False]


def test_follow_on_reject_follows_everywhere_and_similarity_never_restricts():
    policy = NeighbourhoodPolicy(follow_on_reject=True, reinforce_false=False)
    follows = policy.follows_neighbourhood(ACCEPTED)
    assert follows.dtype == bool and follows.tolist() == [True] * 4
    restrict = policy.restrict_to_false([1, 0, 1, 0], TRUE)
    assert restrict.dtype == bool and restrict.tolist() == [False] * 4


def test_logits_are_similarity_over_temperature_with_the_false_penalty():
    """Guards against the temperature multiplying instead of dividing, the penalty landing on
    true candidates, or a false_weight of 1 changing anything."""
    similarity = np.array([[0.5, 0.2, -0.1]], dtype=np.float32)
    is_true = np.array([[True, False, False]])
    plain = NeighbourhoodPolicy(temperature=0.25).candidate_logits(similarity, is_true)
    assert plain.dtype == np.float64
    assert plain == pytest.approx(np.array([[2.0, 0.8, -0.4]]))
    demoted = NeighbourhoodPolicy(temperature=0.25, false_weight=0.5).candidate_logits(similarity, is_true)
    assert demoted == pytest.approx(np.array([[2.0, 0.8 + np.log(0.5), -0.4 + np.log(0.5)]]))
    never = NeighbourhoodPolicy(temperature=0.25, false_weight=0.0).candidate_logits(similarity, is_true)
    assert never[0, 0] == pytest.approx(2.0) and np.isneginf(never[0, 1:]).all()


def test_uniform_policy_never_follows_restricts_or_weights():
    policy = make_policy("uniform")
    assert isinstance(policy, UniformPolicy) and policy.parameters() == {}
    for answer in (policy.follows_neighbourhood(ACCEPTED), policy.restrict_to_false(ACCEPTED, TRUE)):
        assert answer.dtype == bool and answer.shape == (4,) and not answer.any()
    logits = policy.candidate_logits(np.ones((2, 3)), np.ones((2, 3), dtype=bool))
    assert logits.shape == (2, 3) and (logits == 0).all()
    assert (policy.window, policy.top_k) == (1, 1)


def test_parameters_are_every_field_but_the_name():
    assert make_policy("health-aware").parameters() == dict(
        window=3, top_k=5, temperature=0.1, reinforce_false=False, false_weight=0.2,
        follow_on_reject=False)


@pytest.mark.parametrize("kwargs, message", [
    (dict(window=0), "window must be a positive integer, not 0"),
    (dict(window=1.5), "window must be a positive integer, not 1.5"),
    (dict(top_k=0), "top_k must be a positive integer, not 0"),
    (dict(top_k=2.5), "top_k must be a positive integer, not 2.5"),
    (dict(temperature=0), "temperature must be positive, not 0"),
    (dict(false_weight=-0.1), "false_weight must lie in [0, 1], not -0.1"),
    (dict(false_weight=1.5), "false_weight must lie in [0, 1], not 1.5"),
])
def test_out_of_range_values_are_refused_by_name(kwargs, message):
    with pytest.raises(PolicyError) as caught:
        NeighbourhoodPolicy(**kwargs)
    assert str(caught.value) == message


def test_the_smallest_valid_values_are_accepted():
    """Guards against off-by-one bounds (window or top_k of 1, false_weight of 0 or 1)."""
    for kwargs in (dict(window=1, top_k=1), dict(false_weight=0.0), dict(false_weight=1.0)):
        NeighbourhoodPolicy(**kwargs)


def test_string_values_are_converted_to_each_parameters_type():
    policy = make_policy("frameref", {"window": "4", "top_k": " 7.0", "temperature": "0.5",
                                      "reinforce_false": " No ", "false_weight": "0.25"})
    assert policy.name == "frameref"
    assert (policy.window, policy.top_k, policy.temperature) == (4, 7, 0.5)
    assert type(policy.window) is int and type(policy.top_k) is int
    assert policy.reinforce_false is False and policy.false_weight == 0.25
    assert make_policy("similarity", {"reinforce_false": True}).reinforce_false is True
    assert make_policy("similarity", {"reinforce_false": "yes"}).reinforce_false is True
    assert make_policy("similarity", None).parameters()["reinforce_false"] is False
    assert make_policy("frameref", {"temperature": 2}).temperature == 2.0


@pytest.mark.parametrize("params, message", [
    ({"window": "2.5"}, "policy 'frameref' parameter 'window': '2.5' is not a int"),
    ({"window": "many"}, "policy 'frameref' parameter 'window': 'many' is not a int"),
    ({"temperature": None}, "policy 'frameref' parameter 'temperature': None is not a float"),
    ({"reinforce_false": "maybe"}, "policy 'frameref' parameter 'reinforce_false': 'maybe' is not a true/false"),
    ({"colour": "red", "bias": 1}, "policy 'frameref' has no parameter 'bias'; accepted: window, top_k, "
                                   "temperature, reinforce_false, false_weight"),
])
def test_bad_parameters_are_refused_by_name(params, message):
    with pytest.raises(PolicyError) as caught:
        make_policy("frameref", params)
    assert str(caught.value) == message


def test_unknown_policy_and_uniform_parameters_are_refused():
    with pytest.raises(PolicyError) as caught:
        make_policy("random")
    assert str(caught.value) == "unknown policy 'random'; choose one of frameref, similarity, health-aware, uniform"
    with pytest.raises(PolicyError) as caught:
        make_policy("uniform", {"top_k": 3})
    assert str(caught.value) == "policy 'uniform' has no parameter 'top_k'; accepted: none"


def test_parse_policy_params():
    assert parse_policy_params([" top_k = 10", "temperature=0.2=x", "empty="]) == {
        "top_k": "10", "temperature": "0.2=x", "empty": ""}
    assert parse_policy_params(None) == {}
    for bad in ("top_k", " =3"):
        with pytest.raises(PolicyError) as caught:
            parse_policy_params([bad])
        assert str(caught.value) == f"policy parameter {bad!r} is not of the form name=value"


def test_each_policy_keeps_its_own_name():
    """Guards against a built policy being called "frameref" whatever was asked for: the
    name is stored with the run and shown on its report."""
    for name in ("frameref", "similarity", "health-aware", "uniform"):
        assert make_policy(name).name == name
