"""Agents from the database: a persona from its score table file, a human-calibrated agent
from a study's real judgments, parametric and oracle specs, and the errors a bad spec gets."""
import uuid

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from django.utils import timezone

from annotation.models import BaseClaim, BatchItem, Dataset, FramedClaim, Study
from annotation.studies.assignment import (
    participant_consent,
    participant_enter,
    participant_mark,
)
from annotation.studies.judgments import Answer, judgment_record
from annotation.studies.services import study_create
from modeling.models import Persona, ScoreTable
from simulation.agent_builders import (
    AgentSpecError,
    agent_specs_resolve,
    agents_build,
    parse_agent_option,
)
from simulation.agents import RateAgent, ScoreAgent
from simulation.engine import Pool
from simulation.selectors import pool_claims

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_dataset():
    dataset = Dataset.objects.create(name="small")
    for i in range(4):
        base = BaseClaim.objects.create(dataset=dataset, external_id=f"c{i}", split="test",
                                        true_label="SUPPORTS" if i % 2 == 0 else "REFUTES")
        for framing in ("original", "consensus"):
            FramedClaim.objects.create(base_claim=base, framing=framing, text=f"claim {i} {framing}")
    return dataset


def engine_pool(frame):
    return Pool.build(claim_ids=frame["claim_id"], base_ids=frame["base_id"], true_labels=frame["true_label"],
                      embeddings=np.eye(len(frame), dtype=np.float32), framings=frame["framing"])


def persona_with_table(media_root, dataset, rows, name="consensus-0.5"):
    path = media_root / "scores" / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)
    persona = Persona.objects.create(name=name, status="succeeded", adapter_dir=f"adapters/{name}",
                                     dataset=dataset)
    ScoreTable.objects.create(persona=persona, dataset=dataset, split="test", status="succeeded",
                              path=str(path.relative_to(media_root)), rows=len(rows))
    return persona


def score_rows(pool, p_supports, p_refutes):
    # Written in reverse pool order: the builder must align by claim id, not by position.
    rows = [{"claim_id": c, "framed_claim_id": int(f), "base_id": b, "framing": fr, "true_label": t,
             "p_supports": s, "p_refutes": r, "p_supports_norm": s / (s + r),
             "predicted_label": "SUPPORTS" if s >= r else "REFUTES", "confidence": max(s, r)}
            for c, f, b, fr, t, s, r in zip(pool["claim_id"], pool["framed_claim_id"], pool["base_id"],
                                            pool["framing"], pool["true_label"], p_supports, p_refutes)]
    return rows[::-1]


def test_persona_agent_reads_its_score_table_in_pool_order(media_root, small_dataset):
    pool = pool_claims(dataset=small_dataset, split="test")
    p_s = np.array([0.7, 0.2, 0.1, 0.6, 0.55, 0.05, 0.3, 0.3])
    p_r = np.array([0.2, 0.5, 0.8, 0.3, 0.25, 0.9, 0.3, 0.6])
    persona = persona_with_table(media_root, small_dataset, score_rows(pool, p_s, p_r))

    specs = agent_specs_resolve([{"kind": "persona", "persona": str(persona.pk)}],
                                dataset=small_dataset, split="test", pool=pool)
    assert specs[0]["name"] == "consensus-0.5" and specs[0]["persona_id"] == persona.pk
    (agent,) = agents_build(specs, pool=pool)
    assert isinstance(agent, ScoreAgent)
    rows = np.arange(len(pool))
    supports, confidence = agent.judge(engine_pool(pool), rows, np.zeros((len(pool), 0)))
    np.testing.assert_array_equal(supports, p_s >= p_r)  # a tie (row 6) predicts SUPPORTS
    np.testing.assert_allclose(confidence, np.maximum(p_s, p_r))

    normalised = agents_build([dict(specs[0], normalised=True)], pool=pool)[0]
    _, confidence = normalised.judge(engine_pool(pool), rows, np.zeros((len(pool), 0)))
    np.testing.assert_allclose(confidence, np.maximum(p_s, p_r) / (p_s + p_r))


def test_persona_errors_name_the_problem(media_root, small_dataset):
    pool = pool_claims(dataset=small_dataset, split="test")
    rows = score_rows(pool, [0.6] * 8, [0.3] * 8)
    persona_with_table(media_root, small_dataset, rows[:5], name="partial")
    with pytest.raises(AgentSpecError, match=r"agent 1 \('partial'\): no scores for 3 of the pool's 8 claims \(e\.g\. c0:original"):
        agent_specs_resolve([{"kind": "persona", "persona": "partial"}], dataset=small_dataset, split="test", pool=pool)

    bad = [dict(r) for r in rows]
    bad[2]["p_supports"] = 1.7
    persona_with_table(media_root, small_dataset, bad, name="broken")
    with pytest.raises(AgentSpecError, match=r"broken\.parquet: row 3 \(c2:consensus\): field 'p_supports': value 1\.7"):
        agent_specs_resolve([{"kind": "persona", "persona": "broken"}], dataset=small_dataset, split="test", pool=pool)

    with pytest.raises(AgentSpecError, match=r"no persona with the id or name 'nobody' \(personas: .*partial"):
        agent_specs_resolve([{"kind": "persona", "persona": "nobody"}], dataset=small_dataset, split="test", pool=pool)
    Persona.objects.create(name="untrained")
    with pytest.raises(AgentSpecError, match="persona 'untrained' has no finished score table for dataset 'small' split test"):
        agent_specs_resolve([{"kind": "persona", "persona": "untrained"}], dataset=small_dataset, split="test", pool=pool)


def run_raters(study, decide, n_raters, milliseconds=4000, first=0):
    """Raters through the real services: enter, consent, answer every item of their batch.

    Each answer takes `milliseconds` (4 s by default: a person reading; under 2 s per item the
    analysis's "fast" rule, which the human profile applies too, leaves the rater out)."""
    for number in range(first, first + n_raters):
        participant = participant_consent(participant=participant_enter(study=study, external_id=f"R{number}"))
        items = BatchItem.objects.filter(batch=participant.batch).select_related("framed_claim__base_claim")
        for item in items.order_by("position"):
            claim = item.framed_claim
            accept, confidence = decide(claim.framing, claim.base_claim.true_label, number)
            judgment_record(participant=participant, item=item, answer=Answer(
                accept=accept, confidence=confidence, familiarity=1 + number % 5,
                shown_at=timezone.now(), submission_key=uuid.uuid4(), response_time_ms=milliseconds))


def test_human_agent_is_calibrated_on_the_study_and_snapshotted(media_root):
    call_command("load_demo", no_user=True)
    dataset = Dataset.objects.get(name="FrameLab demo")
    study = study_create(dataset=dataset, name="pilot", base_claims=12, batch_size=12, raters_per_batch=2,
                         seed=3, status=Study.Status.OPEN)

    def decide(framing, truth, rater):
        # Every rater accepts every true claim, and false ones in the authoritative framing;
        # the second rater of each batch (raters 6..11) accepts false consensus claims too.
        if truth == "SUPPORTS":
            return True, 5
        return framing == "authoritative" or (rater >= 6 and framing == "consensus"), 2

    run_raters(study, decide, n_raters=study.batches.count() * 2)
    pool = pool_claims(dataset=dataset, split="all")
    specs = agent_specs_resolve([{"kind": "human", "study": "pilot"}], dataset=dataset, split="all", pool=pool)
    spec = specs[0]
    assert spec["name"] == "humans: pilot" and spec["study_id"] == study.pk
    assert spec["profile"]["n_judgments"] == study.batches.count() * 2 * 12

    (agent,) = agents_build(specs, pool=pool)
    assert isinstance(agent, RateAgent)
    table = dict(zip(agent.framings, agent.acceptance))
    assert table["authoritative"].tolist() == [1.0, 1.0]    # [REFUTES, SUPPORTS]
    assert table["consensus"].tolist() == [0.5, 1.0]
    assert table["emotional"].tolist() == [0.0, 1.0]
    # Accepted true claims were all at level 5 (probability 1.0): every judgment of a true
    # claim in the simulation reports confidence 1.0; rejected false claims level 2 (0.625).
    frame_pool = engine_pool(pool)
    true_rows = np.flatnonzero(pool["true_label"].to_numpy() == "SUPPORTS")
    rng = np.random.default_rng(0)
    accepted, confidence = agent.judge(frame_pool, true_rows, rng.random((len(true_rows), 3)))
    assert accepted.all() and np.all(confidence == 1.0)

    # By familiarity: each judgment draws a level first, with the study's weights per cell;
    # raters 0..11 answered at levels 1 + number % 5, so every level 1..5 is present.
    familiar = agents_build([dict(spec, by_familiarity=True)], pool=pool)[0]
    assert familiar.familiarity is not None and familiar.familiarity.shape == (len(familiar.framings), 2, 5)
    np.testing.assert_allclose(familiar.familiarity.sum(axis=-1), 1.0)
    np.testing.assert_array_equal(familiar.acceptance_by_familiarity[:, 1, :], 1.0)  # true claims always accepted

    # The stored spec is a snapshot: when the study's data change later (here the raters
    # who accepted false consensus claims are excluded), the run still builds the same agent.
    for participant in study.participants.filter(external_id__in=[f"R{n}" for n in range(6, 12)]):
        participant_mark(participant=participant, status="excluded")
    live = agent_specs_resolve([{"kind": "human", "study": "pilot"}], dataset=dataset, split="all", pool=pool)
    assert dict(zip(*[agents_build(live, pool=pool)[0].framings,
                      agents_build(live, pool=pool)[0].acceptance]))["consensus"].tolist() == [0.0, 1.0]
    again = agents_build(specs, pool=pool)[0]
    np.testing.assert_array_equal(again.acceptance, agent.acceptance)

    with pytest.raises(AgentSpecError, match=r"agent 1 \('human'\): field 'study': no study with the id or name 'nope'"):
        agent_specs_resolve([{"kind": "human", "study": "nope"}], dataset=dataset, split="all", pool=pool)
    study_create(dataset=dataset, name="empty", base_claims=6, batch_size=6, raters_per_batch=1, seed=1)
    with pytest.raises(AgentSpecError, match="study 'empty' has no judgments"):
        agent_specs_resolve([{"kind": "human", "study": "empty"}], dataset=dataset, split="all", pool=pool)


def test_parametric_and_oracle_specs(small_dataset):
    pool = pool_claims(dataset=small_dataset, split="test")
    specs = agent_specs_resolve([
        {"kind": "parametric", "name": "credulous", "accept": {"SUPPORTS": 0.9, "REFUTES": "0.7"}, "confidence": 0.8},
        {"kind": "parametric", "name": "framed", "confidence": [0, 0, 1, 1, 0],
         "accept": {"consensus": {"SUPPORTS": 1, "REFUTES": 1}, "*": {"SUPPORTS": 0, "REFUTES": 0}}},
        {"kind": "oracle", "confidence": 0.9},
    ], dataset=small_dataset, split="test", pool=pool)
    assert [s["name"] for s in specs] == ["credulous", "framed", "oracle"]
    assert specs[0]["accept"] == {"*": {"SUPPORTS": 0.9, "REFUTES": 0.7}}
    credulous, framed, oracle = agents_build(specs, pool=pool)
    engine = engine_pool(pool)
    rows = np.arange(len(pool))
    accepted, confidence = framed.judge(engine, rows, np.full((len(pool), 3), 0.5))
    np.testing.assert_array_equal(accepted, pool["framing"].to_numpy() == "consensus")
    assert set(confidence) <= {0.75, 0.875}
    accepted, confidence = oracle.judge(engine, rows, np.zeros((len(pool), 0)))
    np.testing.assert_array_equal(accepted, pool["true_label"].to_numpy() == "SUPPORTS")
    assert np.all(confidence == 0.9)
    u = np.random.default_rng(1).random((20_000, 3))
    accepted, _ = credulous.judge(engine, np.zeros(20_000, dtype=int), u)  # row 0 is true
    assert abs(accepted.mean() - 0.9) < 0.01


@pytest.mark.parametrize("spec, message", [
    ({"kind": "robot"}, r"agent 1 \('robot'\): field 'kind': value 'robot': accepted: persona, human, parametric, oracle"),
    ({"kind": "parametric", "name": "p", "accept": {"SUPPORTS": 1.5, "REFUTES": 0.2}},
     r"agent 1 \('p'\): field 'accept\.\*\.SUPPORTS': value 1\.5: accepted: a probability in \[0, 1\]"),
    ({"kind": "parametric", "name": "p", "accept": {"SUPPORTS": 0.5}},
     r"field 'accept\.\*': value \{'SUPPORTS': 0\.5\}"),
    ({"kind": "parametric", "name": "p", "accept": {"emotional": {"SUPPORTS": 0.5, "REFUTES": 0.1}}},
     r"field 'accept': no numbers for framing\(s\) consensus, original of the pool"),
    ({"kind": "parametric", "name": "p", "accept": {"framed": {"SUPPORTS": 0.5, "REFUTES": 0.1}}},
     r"field 'accept': framing 'framed': accepted: original, authoritative"),
    ({"kind": "oracle", "confidence": -1}, r"field 'confidence': value -1"),
    ({"kind": "oracle", "colour": "red"}, r"unknown field 'colour'; accepted for oracle: confidence, kind, name"),
    ("oracle", r"agent 1: value 'oracle': accepted: an object with a 'kind'"),
])
def test_bad_specs_are_refused_with_the_field_and_value(small_dataset, spec, message):
    pool = pool_claims(dataset=small_dataset, split="test")
    with pytest.raises(AgentSpecError, match=message):
        agent_specs_resolve([spec], dataset=small_dataset, split="test", pool=pool)


def test_two_agents_may_not_share_a_name(small_dataset):
    pool = pool_claims(dataset=small_dataset, split="test")
    with pytest.raises(AgentSpecError, match=r"agent 2: field 'name': value 'oracle' is used by agent 1 too"):
        agent_specs_resolve([{"kind": "oracle"}, {"kind": "oracle"}], dataset=small_dataset, split="test", pool=pool)
    with pytest.raises(AgentSpecError, match="at least one agent"):
        agent_specs_resolve([], dataset=small_dataset, split="test", pool=pool)


def test_command_line_agent_options():
    assert parse_agent_option("persona:consensus-0.5") == {"kind": "persona", "persona": "consensus-0.5"}
    assert parse_agent_option("human:FrameRef replication:by_familiarity") == {
        "kind": "human", "study": "FrameRef replication", "by_familiarity": True}
    assert parse_agent_option("parametric:credulous:accept_true=0.8,accept_false=0.3,confidence=0.7") == {
        "kind": "parametric", "name": "credulous", "accept": {"SUPPORTS": "0.8", "REFUTES": "0.3"},
        "confidence": "0.7"}
    assert parse_agent_option("oracle") == {"kind": "oracle"}
    with pytest.raises(AgentSpecError, match="give accept_true=P,accept_false=P"):
        parse_agent_option("parametric:x:accept_true=0.8")
    with pytest.raises(AgentSpecError, match="unknown kind 'bot'"):
        parse_agent_option("bot:x")


def test_human_agent_applies_the_analysis_exclusions_and_says_so(media_root):
    """Guards against a human-calibrated agent learning from raters the report leaves out
    (here two raters who clicked through at 0.7 s per item and accepted every claim)."""
    call_command("load_demo", no_user=True)
    dataset = Dataset.objects.get(name="FrameLab demo")
    study = study_create(dataset=dataset, name="pilot", base_claims=6, batch_size=6, raters_per_batch=2,
                         seed=3, status=Study.Status.OPEN)
    careful = study.batches.count() * 2 - 2
    run_raters(study, lambda framing, truth, rater: (truth == "SUPPORTS", 4), n_raters=careful)
    run_raters(study, lambda framing, truth, rater: (True, 5), n_raters=2, milliseconds=700, first=careful)
    pool = pool_claims(dataset=dataset, split="all")
    (spec,) = agent_specs_resolve([{"kind": "human", "study": "pilot"}], dataset=dataset, split="all", pool=pool)
    assert spec["profile"]["n_raters"] == careful
    assert spec["exclusions"] == ["persona", "status", "attention", "fast", "design-violations"]
    fast = {row["rule"]: row for row in spec["exclusions_applied"]["flow"]}["fast"]
    assert (fast["participants_removed"], fast["judgments_removed"]) == (2, 12)
    (agent,) = agents_build([spec], pool=pool)
    assert all(rates[0] == 0.0 for rates in agent.acceptance)  # no false claim accepted
    (lenient,) = agent_specs_resolve([{"kind": "human", "study": "pilot", "exclusions": ["status"]}],
                                     dataset=dataset, split="all", pool=pool)
    assert lenient["profile"]["n_raters"] == careful + 2
    assert lenient["exclusions"] == lenient["exclusions_applied"]["policy"]["rules"] == ["persona", "status"]
    # A stored spec resolves again to the same raters.
    again = agent_specs_resolve([lenient], dataset=dataset, split="all", pool=pool)[0]
    assert again["profile"]["n_raters"] == careful + 2
    with pytest.raises(AgentSpecError, match="field 'exclusions'.*unknown rule 'nope'"):
        agent_specs_resolve([{"kind": "human", "study": "pilot", "exclusions": ["nope"]}],
                            dataset=dataset, split="all", pool=pool)


def test_persona_decision_rule_from_the_spec_or_the_run(media_root, small_dataset):
    """A persona spec's `decision` (one word) is stored canonically and builds a sampling
    agent; a run's default applies to personas that name none, a spec's own rule wins.
    Guards against the run-wide rule overriding a spec's own, and against a stored spec
    without its rule (a rerun would then decide differently)."""
    pool = pool_claims(dataset=small_dataset, split="test")
    p_s = np.full(len(pool), 0.7)
    persona = persona_with_table(media_root, small_dataset, score_rows(pool, p_s, 1 - p_s))
    specs = agent_specs_resolve(
        [{"kind": "persona", "persona": persona.name, "name": "a"},
         {"kind": "persona", "persona": persona.name, "name": "b", "decision": "argmax"},
         {"kind": "persona", "persona": persona.name, "name": "c", "decision": "sample:1.5:0.95"},
         {"kind": "oracle"}],
        dataset=small_dataset, split="test", pool=pool, decision="frameref")
    assert [s.get("decision") for s in specs] == ["frameref", "argmax", "sample:1.5:0.95", None]
    agents = agents_build(specs, pool=pool)
    assert [a.uniforms_per_step for a in agents[:3]] == [1, 0, 1]
    assert (agents[0].decision.temperature, agents[0].decision.top_p) == (0.6, 0.9)
    # The stored spec resolves again to itself, with no run default.
    again = agent_specs_resolve(specs[:3], dataset=small_dataset, split="test", pool=pool)
    assert [s["decision"] for s in again] == ["frameref", "argmax", "sample:1.5:0.95"]
    # Without any rule: argmax, as before.
    plain = agent_specs_resolve([{"kind": "persona", "persona": persona.name}],
                                dataset=small_dataset, split="test", pool=pool)
    assert plain[0]["decision"] == "argmax" and agents_build(plain, pool=pool)[0].uniforms_per_step == 0
    with pytest.raises(AgentSpecError, match=r"agent 1 \('x'\): field 'decision': decision 'greedy': accepted"):
        agent_specs_resolve([{"kind": "persona", "persona": persona.name, "name": "x", "decision": "greedy"}],
                            dataset=small_dataset, split="test", pool=pool)
    with pytest.raises(AgentSpecError, match="field 'decision': decision 'sample:0:1'"):
        agent_specs_resolve([{"kind": "oracle"}], dataset=small_dataset, split="test", pool=pool,
                            decision="sample:0:1")
    with pytest.raises(AgentSpecError, match="unknown field 'decision'"):
        agent_specs_resolve([{"kind": "oracle", "decision": "frameref"}], dataset=small_dataset,
                            split="test", pool=pool)


def test_command_line_persona_decision_option():
    assert parse_agent_option("persona:p:decision=frameref") == {
        "kind": "persona", "persona": "p", "decision": "frameref"}
    assert parse_agent_option("persona:p:normalised:decision=sample/0.7/0.95") == {
        "kind": "persona", "persona": "p", "normalised": True, "decision": "sample:0.7:0.95"}
    with pytest.raises(AgentSpecError, match="unknown option 'greedy'"):
        parse_agent_option("persona:p:greedy")


def test_calibrated_persona_decides_from_its_calibrated_probabilities(media_root, small_dataset):
    """A persona spec with a calibration judges each claim by its framing's calibrated
    P(SUPPORTS), sampled (temperature 1, top-p 1) unless the spec names a rule, whatever the
    run's default; the parameters are snapshotted in the stored spec. Guards against a
    calibrated agent that still decides by argmax on the raw scores (calibration then
    changes nothing it does)."""
    from modeling.models import Calibration

    pool = pool_claims(dataset=small_dataset, split="test")
    p_s = np.full(len(pool), 0.6)
    persona = persona_with_table(media_root, small_dataset, score_rows(pool, p_s, 1 - p_s))
    other = Persona.objects.create(name="other", status="succeeded", adapter_dir="adapters/other",
                                   base_model="m")
    study = Study.objects.create(name="s", dataset=small_dataset, base_claim_count=1, batch_size=1,
                                 raters_per_batch=1)
    params = {"method": "intercept", "per_framing": {"original": {"b": -3.0}, "consensus": {"b": 2.0}},
              "pooled": {"b": 0.0}}
    calibration = Calibration.objects.create(persona=persona, study=study, method="intercept",
                                             result={"parameters": params})
    specs = agent_specs_resolve([{"kind": "persona", "persona": persona.name, "calibration": calibration.pk}],
                                dataset=small_dataset, split="test", pool=pool, decision="argmax")
    assert specs[0]["decision"] == "sample:1:1" and specs[0]["calibration_parameters"] == params
    (agent,) = agents_build(specs, pool=pool)
    engine = engine_pool(pool)
    rows = np.arange(len(pool))
    expected = np.where(pool["framing"] == "original", 1 / (1 + np.exp(3.0 - np.log(1.5))),
                        1 / (1 + np.exp(-2.0 - np.log(1.5))))
    u = np.linspace(0.001, 0.999, 999)
    for row in rows:
        accepted, confidence = agent.judge(engine, np.full(len(u), row), u[:, None])
        np.testing.assert_array_equal(accepted, u < expected[row])
        np.testing.assert_allclose(confidence, np.where(accepted, expected[row], 1 - expected[row]))
    # The stored spec resolves again to itself; a spec's own rule wins.
    assert agent_specs_resolve(specs, dataset=small_dataset, split="test", pool=pool) == specs
    argmax = agent_specs_resolve([{"kind": "persona", "persona": persona.name, "calibration": calibration.pk,
                                   "decision": "argmax"}], dataset=small_dataset, split="test", pool=pool)
    supports, _ = agents_build(argmax, pool=pool)[0].judge(engine, rows, np.zeros((len(rows), 0)))
    np.testing.assert_array_equal(supports, pool["framing"] == "consensus")
    wrong = Calibration.objects.create(persona=other, study=study, method="intercept", result={"parameters": params})
    none = Calibration.objects.create(persona=persona, study=study, method="none",
                                      result={"parameters": {"method": "none"}})
    for ref, message in ((wrong.pk, "is of persona 'other', not 'consensus-0.5'"), (none.pk, "has no fitted parameters"),
                         (99999, "no calibration with that id")):
        with pytest.raises(AgentSpecError, match=message):
            agent_specs_resolve([{"kind": "persona", "persona": persona.name, "calibration": ref}],
                                dataset=small_dataset, split="test", pool=pool)
    assert parse_agent_option("persona:p:calibration=7:decision=frameref") == {
        "kind": "persona", "persona": "p", "calibration": "7", "decision": "frameref"}
