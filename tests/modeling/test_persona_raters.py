"""Personas as raters: the mapping of scores to the form's answers, the familiarity
likelihood against a naive computation, and a persona taking a study over HTTP beside human
participants (a real gunicorn), kept out of the human numbers and present in the exports."""
import io

import numpy as np
import pandas as pd
import pytest
import torch
from django.core.management import CommandError, call_command

from annotation.analysis.human_profile import study_human_profile
from annotation.analysis.options import AnalysisOptions
from annotation.analysis.study import study_analysis
from annotation.dataio.judgment_table import judgment_table
from annotation.models import Dataset, Judgment, Participant, Study
from annotation.studies.invariants import study_invariant_violations
from annotation.studies.services import study_create
from modeling.persona_raters import (
    PersonaRaterError,
    SampledAnswerPolicy,
    answers_from_scores,
    familiarity_levels,
    persona_answer_table,
    study_texts,
)
from modeling.score_services import base_persona_get_or_create
from modeling.scoring import claim_log_likelihood
from tests.annotation.test_human_profile import fill_study
from tests.integration import conftest as integration

gunicorn_server = integration.gunicorn_server
ATTENTION = "Please answer No to this statement."


@torch.no_grad()
def naive_log_likelihood(model, tokenizer, text):
    ids = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    ids += list(tokenizer(text, add_special_tokens=False)["input_ids"])
    logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    log_probs = torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(ids[1:])[:, None])
    return float(log_probs.mean())


def test_claim_log_likelihood_equals_a_claim_by_claim_computation(tiny_model_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True).eval()
    claims = ["The Moon orbits the Earth.", "Water boils at 100 degrees Celsius at sea level.",
              "Paris", "According to experts, the capital of Australia is Sydney, which is wrong."]
    expected = np.array([naive_log_likelihood(model, tiny_tokenizer, claim) for claim in claims])
    for batch_size in (1, 3, 16):
        got = claim_log_likelihood(model, tiny_tokenizer, claims, batch_size=batch_size)
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert len(set(np.round(expected, 6))) == len(claims)  # the texts really differ


def test_familiarity_levels_are_quintiles_of_the_study_texts():
    assert familiarity_levels(np.arange(10.0)).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert familiarity_levels(np.array([-3.0, -1.0, -1.0, -2.0, -5.0])).tolist() == [2, 4, 4, 3, 1]
    assert familiarity_levels(np.full(4, -2.0)).tolist() == [3, 3, 3, 3]  # ties share the middle
    with pytest.raises(PersonaRaterError, match="no scored token"):
        familiarity_levels(np.array([-1.0, np.nan]))


def test_answers_follow_the_predicted_label_and_the_confidence_rule():
    answers = answers_from_scores(np.array(["SUPPORTS", "REFUTES", "SUPPORTS", "REFUTES", "SUPPORTS"]),
                                  np.array([0.97, 0.30, 0.50, 0.001, 0.69]),
                                  np.array([-1.0, -2.0, -3.0, -4.0, -5.0]))
    assert answers["accurate"].tolist() == [True, False, True, False, True]
    # chosen-label probability 0.97, 0.70, 0.50, 0.999, 0.69 -> nearest of 0.5 + 0.125 (k - 1)
    assert answers["confidence"].tolist() == [5, 3, 1, 5, 3]
    assert answers["familiarity"].tolist() == [5, 4, 3, 2, 1]


def test_sampled_answers_follow_the_tempered_probability():
    """With a sampling rule the table's Yes share is the tempered, top-p-truncated P(SUPPORTS)
    within Monte Carlo error, confidence follows the label drawn (untempered), and each
    simulated participant draws its own answers from its own stream, reproducibly. Guards
    against argmax answers under a sampling rule and against every participant sharing one draw."""
    import random

    n = 4000
    p = np.full(n, 0.7)
    q = 0.7 ** (1 / 0.6) / (0.7 ** (1 / 0.6) + 0.3 ** (1 / 0.6))
    answers = answers_from_scores(np.full(n, "SUPPORTS"), p, np.arange(n, dtype=float),
                                  decision="frameref", seed=1)
    assert abs(answers["accurate"].mean() - q) < 4 * np.sqrt(q * (1 - q) / n)
    np.testing.assert_allclose(answers["p_accept"], q)
    assert answers["confidence"].tolist() == [3 if yes else 1 for yes in answers["accurate"]]  # 0.7 -> 3; 0.3 (under a coin flip) -> 1
    # p = 0.8 tempers to 0.909 >= top-p 0.9: Yes alone.
    assert answers_from_scores(np.full(50, "SUPPORTS"), np.full(50, 0.8), np.arange(50.0),
                               decision="frameref")["accurate"].all()
    # argmax (the default) keeps the predicted label.
    assert answers_from_scores(np.full(n, "SUPPORTS"), p, np.arange(n, dtype=float))["accurate"].all()

    table = pd.DataFrame({"text": ["a claim", "another  claim"], "p_supports_norm": [0.7, 0.3],
                          "accurate": [True, False], "confidence": [3, 3], "familiarity": [4, 2]})
    from modeling.decisions import FRAMEREF

    policy = SampledAnswerPolicy(table, FRAMEREF)
    per_participant = [[policy.answer("a claim", random.Random(f"0:{i}")) for _ in range(1)][0] for i in range(2000)]
    yes = np.mean([c.accurate for c in per_participant])
    assert abs(yes - q) < 4 * np.sqrt(q * (1 - q) / 2000)
    assert all(c.familiarity == 4 and c.confidence == (3 if c.accurate else 1) for c in per_participant)
    assert policy.answer("another claim", random.Random("0:5")) == policy.answer("another claim", random.Random("0:5"))


@pytest.mark.django_db(transaction=True)
def test_a_persona_takes_a_study_beside_humans_and_stays_out_of_their_numbers(
        gunicorn_server, tiny_model_dir, tmp_path):
    call_command("load_demo", no_user=True, stdout=io.StringIO())
    study = study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name="persona raters",
                         base_claims=6, batch_size=6, raters_per_batch=2, seed=5, status=Study.Status.OPEN,
                         completion_code="PERSONA-OK", attention_checks=[(ATTENTION, False, 3)])
    humans = fill_study(study, 2, lambda claim: (False, 2, 2) if claim is None
                        else (claim.base_claim.true_label == "SUPPORTS", 4, 3))
    persona = base_persona_get_or_create(base_model=str(tiny_model_dir))

    out = io.StringIO()
    answers_path = tmp_path / "answers.csv"
    call_command("rate_study", persona=persona.name, study=study.name, base_url=gunicorn_server.url,
                 answers_out=str(answers_path), no_progress=True, stdout=out, stderr=io.StringIO())
    printed = out.getvalue()
    assert f"took study {study.pk} 'persona raters'" in printed
    assert "completed: 6" in printed and "errors: 0" in printed
    assert "participants marked as persona raters: 6" in printed

    # One persona participant per batch, each answer stored exactly as the table decided.
    answers = pd.read_csv(answers_path)
    assert len(answers) == len(study_texts(study)) == 36 + 1
    by_text = answers.set_index("text")
    personas = Participant.objects.filter(study=study, source=Participant.Source.PERSONA)
    assert personas.count() == 6 and set(personas.values_list("status", flat=True)) == {"completed"}
    assert all(p.external_id.startswith(f"persona{persona.pk}-") for p in personas)
    stored = Judgment.objects.filter(participant__in=personas).select_related(
        "item__framed_claim", "item__attention_check")
    assert stored.count() == 6 * 7
    for judgment in stored:
        item = judgment.item.framed_claim or judgment.item.attention_check
        row = by_text.loc[item.text]
        assert (judgment.accept, judgment.confidence, judgment.familiarity) == (
            bool(row["accurate"]), int(row["confidence"]), int(row["familiarity"]))
    assert study_invariant_violations(study) == []

    # The exports carry them beside the humans; the human numbers leave them out.
    table = judgment_table(study=study)
    assert (table["participant_source"] == "persona").sum() == 6 * 6  # attention checks apart
    assert (table["participant_source"] != "persona").sum() == 2 * 6
    assert study_human_profile(study=study).n_raters == len(humans) == 2
    # Only persona and status here: the rule under test is persona.
    result = study_analysis(study=study, options=AnalysisOptions(
        exclusions={"persona", "status"}, bootstrap_resamples=0, mixed_model=False))
    persona_rule = next(row for row in result.exclusions if row["rule"] == "persona")
    assert persona_rule["participants_removed"] == 6 and persona_rule["judgments_removed"] == 36
    assert result.counts["participants_analysed"] == 2
    everyone = study_analysis(study=study, options=AnalysisOptions(
        exclusions={"status"}, bootstrap_resamples=0, mixed_model=False))
    assert everyone.counts["participants_analysed"] == 8


@pytest.mark.django_db
def test_a_persona_needs_a_usable_model_and_a_study_with_items(tiny_model_dir):
    from core.jobs import JobStatus
    from modeling.models import Persona

    call_command("load_demo", no_user=True, stdout=io.StringIO())
    study = study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name="s", base_claims=6,
                         batch_size=6, raters_per_batch=1, seed=1, status=Study.Status.OPEN)
    failed = Persona.objects.create(name="broken", base_model=str(tiny_model_dir), status=JobStatus.FAILED)
    with pytest.raises(PersonaRaterError, match="status failed"):
        persona_answer_table(persona=failed, study=study)
    with pytest.raises(CommandError, match="no persona with id or name 'nobody'"):
        call_command("rate_study", persona="nobody", study="s", base_url="http://127.0.0.1:1")


@pytest.mark.django_db
def test_a_calibrated_persona_answers_from_its_calibrated_probabilities(tiny_model_dir, media_root):
    """With a calibration the claims' answers are decided from each framing's calibrated
    P(SUPPORTS) (`p_decide`), attention checks from the raw one; rate_study refuses a
    calibration of another persona. Guards against a calibrated rater that still answers
    from its raw scores."""
    from modeling.models import Calibration, Persona

    call_command("load_demo", no_user=True, stdout=io.StringIO())
    study = study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name="calibrated", base_claims=6,
                         batch_size=6, raters_per_batch=1, seed=1, status=Study.Status.OPEN,
                         attention_checks=[(ATTENTION, False, 3)])
    persona = base_persona_get_or_create(base_model=str(tiny_model_dir))
    framings = sorted(set(study_texts(study).query("kind == 'claim'")["framing"]))
    yes = framings[0]
    params = {"method": "intercept", "pooled": {"b": 0.0},
              "per_framing": {f: {"b": 50.0 if f == yes else -50.0} for f in framings}}
    answers = persona_answer_table(persona=persona, study=study, calibration=params)
    claims, checks = answers[answers["kind"] == "claim"], answers[answers["kind"] == "attention check"]
    assert claims.loc[claims["framing"] == yes, "accurate"].all()
    assert not claims.loc[claims["framing"] != yes, "accurate"].any()
    assert (claims.loc[claims["framing"] == yes, "p_decide"] > 0.999).all()
    np.testing.assert_array_equal(checks["p_decide"], checks["p_supports_norm"])
    # Each participant samples from p_decide under the default rule of a calibrated persona.
    import random

    from modeling.decisions import DecisionRule

    policy = SampledAnswerPolicy(answers, DecisionRule("sample", 1.0, 1.0))
    text = claims.loc[claims["framing"] == yes, "text"].iloc[0]
    assert all(policy.answer(text, random.Random(i)).accurate for i in range(50))

    other = Persona.objects.create(name="other", base_model=str(tiny_model_dir), status="succeeded",
                                   adapter_dir="adapters/other")
    wrong = Calibration.objects.create(persona=other, study=study, method="intercept", result={"parameters": params})
    with pytest.raises(CommandError, match=f"--calibration {wrong.pk}: calibration {wrong.pk} is of persona 'other'"):
        call_command("rate_study", persona=persona.name, study=study.name, base_url="http://127.0.0.1:1",
                     calibration=str(wrong.pk), no_progress=True)
