"""The fact corpus: size, balance, split integrity, determinism, and every label true to the facts."""
import json
import random
from collections import Counter, defaultdict
from importlib import resources

import orjson
import pytest
from django.core.management import call_command

from annotation.claims.facts import (
    RELATIONS,
    FactBase,
    element_period,
    enumerate_slots,
    format_amount,
    generate_base_claims,
)
from annotation.models import BaseClaim, Dataset, FramedClaim
from core.vocabulary import FRAMINGS, SPLITS


@pytest.fixture(scope="module")
def facts():
    return FactBase.load()


@pytest.fixture(scope="module")
def corpus(facts):
    return generate_base_claims(facts, seed=0)


def test_at_least_5000_distinct_base_claims(corpus):
    assert len(corpus) >= 5_000
    assert len({c.base_id for c in corpus}) == len(corpus)
    assert len({c.text for c in corpus}) == len(corpus)
    # every kind of fact contributes, none is silently empty
    assert set(Counter(c.relation for c in corpus)) == set(RELATIONS)


def test_balanced_by_truth_overall_and_in_every_split(corpus):
    by_split = Counter((c.split, c.true_label) for c in corpus)
    for split in SPLITS:
        supports, refutes = by_split[(split, "SUPPORTS")], by_split[(split, "REFUTES")]
        assert supports + refutes > 0
        assert abs(supports - refutes) <= max(2, 0.01 * (supports + refutes)), (split, supports, refutes)


def test_splits_are_80_10_10_and_never_share_a_topic(corpus):
    splits_of_topic = defaultdict(set)
    for claim in corpus:
        splits_of_topic[claim.topic].add(claim.split)
    assert all(len(s) == 1 for s in splits_of_topic.values())
    shares = Counter(c.split for c in corpus)
    for split, share in (("train", 0.8), ("dev", 0.1), ("test", 0.1)):
        assert abs(shares[split] / len(corpus) - share) < 0.01


def test_topics_look_like_their_subjects(corpus):
    prefixes = Counter(c.topic.split(":")[0] for c in corpus)
    assert set(prefixes) == {"country", "element", "us-state", "unit"}
    iron = [c for c in corpus if c.topic == "element:Fe"]
    assert {c.relation for c in iron} == {"element-symbol", "element-number", "element-weight",
                                          "element-period"}


def test_same_seed_same_corpus_other_seed_other_choices(facts, corpus):
    again = generate_base_claims(facts, seed=0)
    assert again == corpus
    other = generate_base_claims(facts, seed=1)
    assert {c.base_id for c in other} == {c.base_id for c in corpus}  # same facts
    labels = {c.base_id: c.true_label for c in corpus}
    flipped = sum(labels[c.base_id] != c.true_label for c in other)
    assert 0.3 * len(corpus) < flipped < 0.7 * len(corpus)


def test_every_label_re_derived_from_the_facts(facts, corpus):
    """Exhaustive: each claim's assertion holds exactly when it is labelled SUPPORTS, its
    text is the rendering of that assertion, and a false claim names a value that differs
    from the recorded one."""
    for claim in corpus:
        relation = RELATIONS[claim.relation]
        holds = facts.holds(claim.relation, claim.subject, claim.value)
        assert holds == (claim.true_label == "SUPPORTS"), claim
        assert relation.render(facts, claim.subject, claim.value) == claim.text
        if claim.true_label == "REFUTES":
            assert claim.value != claim.true_value
            assert facts.holds(claim.relation, claim.subject, claim.true_value)


def _raw_countries():
    folder = resources.files("countryinfo") / "data"
    records = [json.loads(p.read_text(encoding="utf-8")) for p in folder.iterdir()
               if p.name.endswith(".json")]
    return records


def test_false_claims_checked_against_the_raw_package_data(corpus):
    """Independent of FactBase: a sample of false claims of each kind is re-checked
    against the packages' own data, every one of them."""
    import periodictable
    import pycountry
    import us

    raw = _raw_countries()
    capitals = defaultdict(set)
    borders = defaultdict(set)
    alpha3 = {}
    for record in raw:
        code = (record.get("ISO") or {}).get("alpha2")
        capital = record.get("capital")
        capitals[code].update(capital if isinstance(capital, list) else [capital])
        borders[(record.get("ISO") or {}).get("alpha3")].update(record.get("borders") or ())
    for country in pycountry.countries:
        alpha3[country.alpha_2] = country.alpha_3
    rng = random.Random(7)
    false = [c for c in corpus if c.true_label == "REFUTES"]
    checked = Counter()
    for claim in rng.sample(false, 1_500):
        if claim.relation == "capital":
            assert claim.value not in capitals[claim.subject]
            assert claim.text.endswith(f" is {claim.value}.")
        elif claim.relation == "border":
            a, b = alpha3[claim.subject], alpha3[claim.value]
            assert b not in borders[a] and a not in borders[b]
        elif claim.relation == "subdivision":
            names = {s.name for s in pycountry.subdivisions.get(country_code=claim.value) or ()}
            name = pycountry.subdivisions.get(code=claim.subject).name
            assert name not in names
            assert claim.subject.split("-")[0] != claim.value
        elif claim.relation == "element-symbol":
            assert periodictable.elements[int(claim.subject)].symbol != claim.value
        elif claim.relation == "element-number":
            element = periodictable.elements[int(claim.subject)]
            assert f"{element.name.capitalize()} has the atomic number {claim.value}." == claim.text
            assert element.number != int(claim.value)
        elif claim.relation == "element-weight":
            assert abs(periodictable.elements[int(claim.subject)].mass - float(claim.value)) >= 0.5
        elif claim.relation == "element-period":
            assert int(claim.value) != element_period(int(claim.subject))
        elif claim.relation == "state-capital":
            assert us.states.lookup(claim.subject).capital != claim.value
        elif claim.relation == "state-statehood":
            assert us.states.lookup(claim.subject).statehood_year != int(claim.value)
        elif claim.relation == "alpha3":
            assert alpha3[claim.subject] != claim.value
        checked[claim.relation] += 1
    assert {"capital", "border", "subdivision", "element-symbol"} <= set(checked)


def test_periods_follow_the_periodic_table():
    assert [element_period(z) for z in (1, 2, 3, 10, 11, 26, 54, 55, 86, 87, 118)] == \
        [1, 1, 2, 2, 3, 4, 5, 6, 6, 7, 7]
    with pytest.raises(ValueError):
        element_period(119)


def test_known_facts_read_as_expected(facts, corpus):
    texts = {c.base_id: (c.text, c.true_label) for c in corpus}
    text, label = texts["facts-capital-FR"]
    assert text.startswith("The capital of France is ")
    assert (label == "SUPPORTS") == (text == "The capital of France is Paris.")
    assert facts.holds("border", "FR", "ES") and facts.holds("border", "ES", "FR")
    assert not facts.holds("border", "FR", "PL")
    assert facts.holds("element-symbol", "26", "Fe") and not facts.holds("element-symbol", "26", "Co")
    assert facts.holds("state-capital", "TX", "Austin")
    assert facts.holds("quantity", "mile", "1.609") and not facts.holds("quantity", "mile", "2.011")
    assert format_amount(6.02214076e23) == "6.022 × 10^23"


def test_false_values_are_plausible_neighbours(facts, corpus):
    """Wrong values come from the same kind and, for countries, the same part of the world."""
    for claim in corpus:
        if claim.true_label != "REFUTES":
            continue
        if claim.relation in ("capital", "border", "currency", "calling-code"):
            me = facts.countries[claim.subject]
            if claim.relation == "border":
                other = facts.countries[claim.value]
                assert other.region == me.region
        elif claim.relation == "element-number":
            assert abs(int(claim.value) - int(claim.subject)) <= 3
        elif claim.relation == "element-symbol":
            symbols = {facts.elements[z].symbol for z in range(int(claim.subject) - 4,
                                                                   int(claim.subject) + 5)
                       if z in facts.elements}
            assert claim.value in symbols


def test_a_balanced_subset_of_n(facts):
    subset = generate_base_claims(facts, seed=3, base_claims=400)
    assert len(subset) == 400
    labels = Counter(c.true_label for c in subset)
    assert labels["SUPPORTS"] == labels["REFUTES"] == 200
    assert Counter(c.split for c in subset) == {"train": 320, "dev": 40, "test": 40}
    with pytest.raises(ValueError, match="asked for"):
        generate_base_claims(facts, seed=3, base_claims=10**6)


def test_every_fact_is_one_claim(facts, corpus):
    assert len(enumerate_slots(facts)) == len(corpus)


@pytest.mark.django_db
def test_command_writes_frameref_files_that_import(tmp_path, capsys):
    out = tmp_path / "facts"
    call_command("make_fact_claims", out=out, seed=2, base_claims=300, import_as="framelab-facts",
                 no_progress=True)
    printed = capsys.readouterr().out
    assert "base claims by split and truth" in printed and "authoritative" in printed
    rows = [orjson.loads(line) for path in sorted(out.rglob("*.jsonl"))
            for line in path.read_bytes().splitlines()]
    assert len(rows) == 300 * len(FRAMINGS)
    assert {p.parent.name for p in out.rglob("*.jsonl")} == set(SPLITS)
    dataset = Dataset.objects.get(name="framelab-facts")
    assert "countryinfo" in dataset.source and "LGPL" in dataset.licence
    assert BaseClaim.objects.filter(dataset=dataset).count() == 300
    assert FramedClaim.objects.filter(base_claim__dataset=dataset).count() == 300 * len(FRAMINGS)
    stored = {b.external_id: b for b in BaseClaim.objects.filter(dataset=dataset)}
    for row in rows:
        base_id = row["claim_id"].split(":")[0]
        assert stored[base_id].topic == row["topic"] and stored[base_id].true_label == row["true_label"]
    assert Counter(b.split for b in stored.values()) == {"train": 240, "dev": 30, "test": 30}
    assert "Licence" in (out / "DATASET.md").read_text()
