"""Study designs: FrameRef's layout, balance bounds over random configurations, every error."""
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotation.studies.design import (
    CandidateClaim,
    DesignError,
    StudyDesign,
    design_study,
    feasible_batch_sizes,
    insert_attention_checks,
)
from core.vocabulary import FRAMINGS, TRUTH_LABELS

TRUE, FALSE = TRUTH_LABELS
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


def candidate(base_id: int, label: str, framings=FRAMINGS) -> CandidateClaim:
    # Framed ids derived from the base id and framing, so a test can tell them apart.
    return CandidateClaim(base_id, label,
                          {f: base_id * 10 + FRAMINGS.index(f) for f in framings})


def pool(n_true: int, n_false: int, framings=FRAMINGS, first_id: int = 1) -> list[CandidateClaim]:
    return [candidate(first_id + i, TRUE if i < n_true else FALSE, framings)
            for i in range(n_true + n_false)]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def check_design(design: StudyDesign, candidates, framings, batch_size: int) -> None:
    """Every guarantee design_study documents, for whatever base claims it chose."""
    by_id = {c.base_claim_id: c for c in candidates}
    chosen = design.base_claim_ids
    n, n_framings = len(chosen), len(framings)
    n_true = sum(by_id[i].true_label == TRUE for i in chosen)
    assert len(set(chosen)) == n
    assert design.framings == tuple(framings)

    assert len(design.batches) == n * n_framings // batch_size
    assert all(len(batch) == batch_size for batch in design.batches)
    items = [item for batch in design.batches for item in batch]
    # Each chosen item exactly once, with the candidate's own framed id and label.
    assert sorted((i.base_claim_id, i.framing) for i in items) == sorted(
        (base, f) for base in chosen for f in framings)
    for item in items:
        assert item.framed_claim_id == by_id[item.base_claim_id].framed_claim_ids[item.framing]
        assert item.true_label == by_id[item.base_claim_id].true_label

    for batch in design.batches:
        bases = [item.base_claim_id for item in batch]
        assert len(set(bases)) == len(bases), "a batch holds two framings of one base claim"
        trues = sum(item.true_label == TRUE for item in batch)
        assert batch_size * n_true // n <= trues <= ceil_div(batch_size * n_true, n)
        per_framing = Counter(item.framing for item in batch)
        counts = [per_framing[f] for f in framings]  # zeros included
        assert set(counts) <= {batch_size // n_framings, ceil_div(batch_size, n_framings)}
        assert max(counts) - min(counts) <= (0 if batch_size % n_framings == 0 else 1)


# ---------------------------------------------------------------------------------------
# FrameRef's published configuration


@pytest.mark.parametrize("seed", range(8))
def test_frameref_configuration_is_perfectly_balanced(seed):
    candidates = pool(30, 35)
    design = design_study(candidates=candidates, framings=FRAMINGS, base_claims=40,
                          batch_size=20, seed=seed)
    check_design(design, candidates, FRAMINGS, 20)
    labels = Counter(candidates[i - 1].true_label for i in design.base_claim_ids)
    assert labels == {TRUE: 20, FALSE: 20}
    assert len(design.batches) == 12
    items = [item for batch in design.batches for item in batch]
    assert len(items) == len({item.framed_claim_id for item in items}) == 240
    for batch in design.batches:
        assert len({item.base_claim_id for item in batch}) == 20
        assert Counter(item.true_label for item in batch) == {TRUE: 10, FALSE: 10}
        # 20 items over six framings: the best possible is two framings 4 times, four 3 times.
        assert sorted(Counter(item.framing for item in batch).values()) == [3, 3, 3, 3, 4, 4]
    # Every base claim is seen in six different batches, once per framing.
    batches_of = Counter(item.base_claim_id for batch in design.batches for item in batch)
    assert set(batches_of.values()) == {6}


def test_frameref_exact_pool_of_forty_uses_every_claim():
    candidates = pool(20, 20)
    design = design_study(candidates=candidates, framings=FRAMINGS, base_claims=40,
                          batch_size=20, seed=2026)
    assert sorted(design.base_claim_ids) == list(range(1, 41))
    check_design(design, candidates, FRAMINGS, 20)


# ---------------------------------------------------------------------------------------
# Determinism and randomisation


def frameref(seed: int, candidates=None) -> StudyDesign:
    return design_study(candidates=candidates or pool(30, 30), framings=FRAMINGS,
                        base_claims=40, batch_size=20, seed=seed)


def test_same_arguments_give_the_identical_design_whatever_the_candidate_order():
    candidates = pool(30, 30)
    assert frameref(7, candidates) == frameref(7, candidates)
    assert frameref(7, candidates[::-1]) == frameref(7, candidates)


def test_different_seeds_give_different_designs():
    designs = [frameref(seed) for seed in range(6)]
    assert len({d.batches for d in designs}) == 6
    assert len({frozenset(d.base_claim_ids) for d in designs}) == 6


def test_presentation_order_is_shuffled():
    design = frameref(11)
    # Sorted batches would show the dealing order; a shuffle shows neither truth nor framing
    # runs in the same places in every batch.
    first_labels = {batch[0].true_label for batch in design.batches}
    first_framings = {batch[0].framing for batch in design.batches}
    assert len(first_labels) == 2 and len(first_framings) > 2
    positions = Counter(k for batch in design.batches for k, item in enumerate(batch)
                        if item.framing == "emotional")
    assert len(positions) > 10


# ---------------------------------------------------------------------------------------
# Random feasible configurations


@st.composite
def candidate_pools(draw):
    """Candidates with random labels and missing framings, plus a requested framing subset."""
    framings = draw(st.lists(st.sampled_from(FRAMINGS), min_size=1, max_size=6, unique=True))
    n_candidates = draw(st.integers(2, 36))
    candidates = []
    for base_id in range(n_candidates):
        # The first two are complete, one true and one false, so a balanced study exists.
        label = TRUE if base_id == 0 else FALSE if base_id == 1 else draw(
            st.sampled_from(TRUTH_LABELS))
        missing = set() if base_id < 2 else draw(
            st.one_of(st.just(set()), st.sets(st.sampled_from(FRAMINGS), max_size=3)))
        candidates.append(candidate(100 + base_id, label,
                                    [f for f in FRAMINGS if f not in missing]))
    return candidates, framings


def qualifying(candidates, framings):
    return [c for c in candidates if all(f in c.framed_claim_ids for f in framings)]


@PROPERTY_SETTINGS
@given(data=st.data(), drawn=candidate_pools())
def test_balanced_choice_meets_every_bound(data, drawn):
    candidates, framings = drawn
    ok = qualifying(candidates, framings)
    largest = 2 * min(sum(c.true_label == TRUE for c in ok), sum(c.true_label == FALSE for c in ok))
    n = 2 * data.draw(st.integers(1, largest // 2), label="half")
    batch_size = data.draw(st.sampled_from(feasible_batch_sizes(n, len(framings))), label="size")
    seed = data.draw(st.integers(0, 2**32), label="seed")
    kwargs = dict(candidates=candidates, framings=framings, base_claims=n,
                  batch_size=batch_size, seed=seed)
    design = design_study(**kwargs)
    check_design(design, candidates, framings, batch_size)
    labels = Counter(c.true_label for c in candidates if c.base_claim_id in design.base_claim_ids)
    assert labels == {TRUE: n // 2, FALSE: n // 2}
    assert {c.base_claim_id for c in ok} >= set(design.base_claim_ids)
    assert design_study(**kwargs) == design


@PROPERTY_SETTINGS
@given(data=st.data(), drawn=candidate_pools())
def test_listed_base_claims_of_any_truth_mix_meet_every_bound(data, drawn):
    candidates, framings = drawn
    ids = [c.base_claim_id for c in qualifying(candidates, framings)]
    chosen = data.draw(st.lists(st.sampled_from(ids), min_size=1, unique=True), label="ids")
    batch_size = data.draw(st.sampled_from(feasible_batch_sizes(len(chosen), len(framings))),
                           label="size")
    seed = data.draw(st.integers(0, 99), label="seed")
    design = design_study(candidates=candidates, framings=framings, base_claims=None,
                          batch_size=batch_size, seed=seed, base_claim_ids=chosen)
    assert sorted(design.base_claim_ids) == sorted(chosen)
    check_design(design, candidates, framings, batch_size)
    assert design == design_study(candidates=candidates, framings=framings, base_claims=None,
                                  batch_size=batch_size, seed=seed, base_claim_ids=chosen[::-1])


# ---------------------------------------------------------------------------------------
# Random requests, feasible or not: a valid design or a DesignError with a suggestion


def expected_problem(candidates, framings, base_claims, batch_size, base_claim_ids):
    """None when the request is feasible, else a word for what is wrong (for failure output)."""
    by_id = {c.base_claim_id: c for c in candidates}
    ok = {c.base_claim_id for c in qualifying(candidates, framings)}
    if base_claim_ids is None:
        if base_claims is None or base_claims < 2 or base_claims % 2:
            return "base_claims"
        trues = sum(by_id[i].true_label == TRUE for i in ok)
        if base_claims > 2 * min(trues, len(ok) - trues):
            return "too few claims"
        n = base_claims
    else:
        if not base_claim_ids or len(set(base_claim_ids)) < len(base_claim_ids):
            return "ids"
        if base_claims is not None and base_claims != len(base_claim_ids):
            return "count"
        if not set(base_claim_ids) <= ok:
            return "unknown or incomplete ids"
        n = len(base_claim_ids)
    if batch_size < 1 or batch_size > n or n * len(framings) % batch_size:
        return "batch size"
    return None


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), drawn=candidate_pools())
def test_any_request_gives_a_valid_design_or_a_design_error_with_a_suggestion(data, drawn):
    candidates, framings = drawn
    # Each argument is usually sensible and sometimes not, so that both outcomes, and every
    # kind of mistake, turn up often.
    ok = [c.base_claim_id for c in qualifying(candidates, framings)]
    # Mostly ids that are unknown or lack a framing, with a few good ones mixed in.
    anything = [c.base_claim_id for c in candidates if c.base_claim_id not in ok] + [0, 999]
    anything += ok[:3]
    base_claim_ids = data.draw(st.one_of(
        st.none(),
        st.lists(st.sampled_from(ok), min_size=1, unique=True),
        st.lists(st.sampled_from(anything), max_size=12, unique=True),
        st.lists(st.sampled_from(anything), max_size=12),
    ), label="base_claim_ids")
    if base_claim_ids is None:
        trues = sum(c.true_label == TRUE for c in qualifying(candidates, framings))
        largest = 2 * min(trues, len(ok) - trues)
        sensible = st.integers(1, largest // 2).map(lambda half: 2 * half)
        too_many = st.integers(largest + 1, largest + 8)
        n = data.draw(st.one_of(sensible, st.none(), st.integers(-2, 40), too_many),
                      label="base_claims")
        base_claims = n
    else:
        base_claims = data.draw(st.one_of(st.none(), st.just(len(base_claim_ids)),
                                          st.integers(-2, 40)), label="base_claims")
        n = len(base_claim_ids)
    sizes = feasible_batch_sizes(n, len(framings)) if isinstance(n, int) and n > 0 else ()
    batch_size = data.draw(st.one_of(st.sampled_from(sizes or (1,)), st.integers(-1, 50)),
                           label="batch_size")
    problem = expected_problem(candidates, framings, base_claims, batch_size, base_claim_ids)
    kwargs = dict(candidates=candidates, framings=framings, base_claims=base_claims,
                  batch_size=batch_size, seed=5, base_claim_ids=base_claim_ids)
    if problem is None:
        check_design(design_study(**kwargs), candidates, framings, batch_size)
    else:
        with pytest.raises(DesignError) as caught:
            design_study(**kwargs)
        error = caught.value
        assert error.problem and error.suggestion, problem
        assert str(error) == f"{error.problem}; {error.suggestion}"


# ---------------------------------------------------------------------------------------
# Each infeasible request, and what its message suggests


def error_for(**overrides) -> DesignError:
    kwargs = dict(candidates=pool(30, 30), framings=FRAMINGS, base_claims=40, batch_size=20,
                  seed=1)
    kwargs.update(overrides)
    with pytest.raises(DesignError) as caught:
        design_study(**kwargs)
    return caught.value


def test_odd_base_claims_suggests_the_nearest_even_numbers():
    error = error_for(base_claims=39)
    assert "half true, half false" in error.problem
    assert "base_claims=38" in error.suggestion and "base_claims=40" in error.suggestion
    assert "base_claims=2" in error_for(base_claims=1).suggestion


@pytest.mark.parametrize("base_claims", [0, -4, None])
def test_missing_or_non_positive_base_claims_suggests_a_feasible_count(base_claims):
    assert "largest feasible base_claims is 60" in str(error_for(base_claims=base_claims))


def test_too_few_qualifying_claims_says_how_many_and_the_largest_feasible():
    candidates = pool(12, 9) + pool(5, 5, framings=FRAMINGS[:3], first_id=100)
    error = error_for(candidates=candidates, base_claims=20, batch_size=10)
    assert "10 true and 10 false" in error.problem
    assert "12 true and 9 false candidates have all of the framings" in error.problem
    assert "largest feasible base_claims is 18" in error.suggestion
    # 18 x 6 = 108 items do not split into batches of 10; 10 x 6 = 60 does.
    assert "with batch_size=10 is 10" in error.suggestion
    for n in (18, 10):
        design_study(candidates=candidates, framings=FRAMINGS, base_claims=n,
                     batch_size=6 if n == 18 else 10, seed=0)
    # Asking for only the framings the small claims have makes them qualify.
    design = design_study(candidates=candidates, framings=FRAMINGS[:3], base_claims=28,
                          batch_size=14, seed=0)
    check_design(design, candidates, FRAMINGS[:3], 14)


def test_no_qualifying_claims_of_one_truth_suggests_what_to_change():
    error = error_for(candidates=pool(10, 0), base_claims=2, batch_size=2)
    assert "10 true and 0 false" in error.problem
    assert "request fewer framings" in error.suggestion
    assert "base_claim_ids" in error.suggestion


def test_batch_size_that_does_not_divide_the_items_lists_those_that_do():
    error = error_for(batch_size=19)
    assert "240 items (40 base claims x 6 framings)" in error.problem
    assert "divides 240" in error.suggestion
    assert feasible_batch_sizes(40, 6) == (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 16, 20, 24, 30, 40)
    assert ("batch sizes that work: 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 16, 20, 24, 30, 40"
            in error.suggestion)
    small = error_for(base_claims=4, batch_size=3, framings=FRAMINGS[:2])
    assert "batch sizes that work: 1, 2, 4" in small.suggestion
    # With many sizes the message names the twenty nearest the request.
    large = error_for(candidates=pool(400, 400), base_claims=720, batch_size=7)
    assert "the 20 batch sizes that work nearest 7 are 1, 2, 3, 4, 5, 6, 8, 9," in str(large)


def test_batch_larger_than_the_base_claims_gives_the_largest_size_that_fits():
    error = error_for(batch_size=48)  # 240 / 48 = 5 batches, fewer than 6 framings
    assert "48 different base claims but the study has 40" in error.problem
    assert "fewer than the 6 batches" in error.problem
    assert "largest batch size that fits is 40" in error.suggestion
    assert "largest batch size that fits is 28" in str(error_for(base_claims=28, batch_size=30))


@pytest.mark.parametrize("batch_size", [0, -3])
def test_non_positive_batch_size_lists_sizes_that_work(batch_size):
    assert "batch sizes that work: 1, 2, 3" in str(error_for(batch_size=batch_size))


def test_listed_base_claims_unknown_id_is_named():
    error = error_for(base_claims=None, base_claim_ids=[1, 2, 999, 3])
    assert "base_claim_ids 999 are not among the candidates" in error.problem
    assert "choose from the 60 candidates with every requested framing" in error.suggestion


def test_listed_base_claim_missing_a_framing_is_named_with_the_framing():
    candidates = pool(4, 4) + [candidate(50, TRUE, FRAMINGS[:-1])]
    error = error_for(candidates=candidates, base_claims=None, base_claim_ids=[1, 50],
                      batch_size=2)
    assert "50 lacks sensationalist" in error.problem
    assert "request fewer framings" in error.suggestion
    # Without the missing framing the same ids work.
    design = design_study(candidates=candidates, framings=FRAMINGS[:-1], base_claims=None,
                          batch_size=2, seed=0, base_claim_ids=[1, 50])
    check_design(design, candidates, FRAMINGS[:-1], 2)


def test_listed_base_claims_duplicate_is_named():
    error = error_for(base_claims=None, base_claim_ids=[1, 2, 2, 3, 1])
    assert "lists 1, 2 more than once" in error.problem
    assert "each base claim once" in error.suggestion


def test_listed_base_claims_count_must_match_base_claims():
    error = error_for(base_claims=4, base_claim_ids=[1, 2])
    assert "base_claims=4 but 2 base_claim_ids" in error.problem
    assert "base_claims=None" in error.suggestion
    assert "is empty" in str(error_for(base_claims=None, base_claim_ids=[]))


def test_listed_base_claims_may_be_unbalanced_and_keep_the_given_set():
    candidates = pool(10, 10)
    ids = [1, 2, 3, 4, 5, 6, 11, 12]  # six true, two false
    design = design_study(candidates=candidates, framings=FRAMINGS, base_claims=8,
                          batch_size=8, seed=3, base_claim_ids=ids)
    assert sorted(design.base_claim_ids) == ids
    for batch in design.batches:
        assert Counter(item.true_label for item in batch) == {TRUE: 6, FALSE: 2}


@pytest.mark.parametrize("framings, text", [
    ([], "request one or more of original"),
    (["original", "clickbait"], "unknown framings clickbait"),
    (["emotional", "original", "emotional"], "request each framing once: emotional, original"),
    ("emotional", "pass framings=['emotional']"),
])
def test_bad_framings_are_explained(framings, text):
    assert text in str(error_for(framings=framings, base_claims=2, batch_size=1))


def test_malformed_candidates_are_explained():
    bad_label = pool(3, 3) + [CandidateClaim(77, "TRUE", {"original": 770})]
    assert "base claim 77 has true_label 'TRUE'; use SUPPORTS or REFUTES" in str(
        error_for(candidates=bad_label, base_claims=2, batch_size=1))
    twice = pool(3, 3) + pool(1, 0)
    assert "base claim 1 is among the candidates more than once" in str(
        error_for(candidates=twice, base_claims=2, batch_size=1))
    shared = [CandidateClaim(1, TRUE, {"original": 5}), CandidateClaim(2, FALSE, {"original": 5})]
    error = error_for(candidates=shared, framings=["original"], base_claims=2, batch_size=1)
    assert "framed claim id 5 is used by base claim" in error.problem
    assert "its own id" in error.suggestion


def test_design_error_is_a_value_error_and_pickles():
    import pickle

    error = error_for(base_claims=39)
    assert isinstance(error, ValueError)
    assert str(pickle.loads(pickle.dumps(error))) == str(error)


# ---------------------------------------------------------------------------------------
# Attention checks


def test_attention_checks_go_to_their_one_based_positions():
    assert insert_attention_checks(["a", "b", "c"], ["X", "Y"], [1, 5]) == ["X", "a", "b", "c", "Y"]
    assert insert_attention_checks(["a", "b", "c"], ["X", "Y"], [4, 2]) == ["a", "Y", "b", "X", "c"]
    assert insert_attention_checks(["a"], [], []) == ["a"]
    assert insert_attention_checks([], ["X"], [1]) == ["X"]


@given(batch=st.lists(st.integers(0, 999), max_size=25), data=st.data())
@settings(max_examples=80, deadline=None)
def test_attention_checks_keep_the_batch_order(batch, data):
    total_checks = data.draw(st.integers(0, 5))
    positions = data.draw(st.permutations(range(1, len(batch) + total_checks + 1)))[:total_checks]
    checks = [f"check-{k}" for k in range(total_checks)]
    result = insert_attention_checks(batch, checks, positions)
    assert len(result) == len(batch) + total_checks
    assert all(result[p - 1] == check for p, check in zip(positions, checks))
    assert [x for x in result if not isinstance(x, str)] == batch


@pytest.mark.parametrize("checks, positions, text", [
    (["X", "Y"], [1, 1], "positions 1 are given more than once"),
    (["X"], [0], "positions 0 fall outside 1..4"),
    (["X"], [5], "positions 5 fall outside 1..4"),
    (["X", "Y"], [2], "2 attention checks but 1 positions"),
    (["X"], [2, 3], "1 attention checks but 2 positions"),
    (["X"], [1.5], "position 1.5 is not a whole number"),
])
def test_bad_attention_check_positions_are_explained(checks, positions, text):
    with pytest.raises(DesignError) as caught:
        insert_attention_checks(["a", "b", "c"], checks, positions)
    assert text in caught.value.problem
    assert "between 1 and" in caught.value.suggestion
