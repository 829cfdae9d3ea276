"""Simulated participants against a real gunicorn process: sessions completed over HTTP, a
full or closed study turning bots away, answering policies, double submits and reloads,
the run_bots command, and the invariant checks (including that they catch broken states)."""
import json
import random
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from annotation.models import (
    Batch,
    BatchItem,
    Dataset,
    FramedClaim,
    Judgment,
    JudgmentRevision,
    Participant,
    Study,
)
from annotation.studies.bots import (
    COMPLETED,
    ERROR,
    LEFT,
    SHOW,
    SUBMIT,
    TURNED_AWAY,
    Choice,
    TruthfulPolicy,
    make_policy,
    percentile,
    run_bots,
)
from annotation.studies.invariants import study_invariant_violations
from annotation.studies.selectors import study_truth_table
from annotation.studies.services import study_create
from tests.integration import conftest as integration

# The live gunicorn fixture, shared with tests/integration.
gunicorn_server = integration.gunicorn_server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo():
    call_command("load_demo", no_user=True)
    return Dataset.objects.get(name="FrameLab demo")


def make_study(dataset, name="bots", base_claims=8, batch_size=6, raters_per_batch=1, **extra):
    return study_create(dataset=dataset, name=name, base_claims=base_claims, batch_size=batch_size,
                        raters_per_batch=raters_per_batch, seed=5, status=Study.Status.OPEN,
                        completion_code="BOTS-OK", **extra)


def assert_stored(report, study):
    """Every answer a bot saw acknowledged is the stored judgment of that item."""
    stored = {(external_id, position): (accept, confidence, familiarity)
              for external_id, position, accept, confidence, familiarity in Judgment.objects.filter(
                  participant__study=study).values_list("participant__external_id", "item__position",
                                                        "accept", "confidence", "familiarity")}
    acknowledged = {(r.external_id, s.position): (s.accurate, s.confidence, s.familiarity)
                    for r in report.results for s in r.submissions}
    assert acknowledged == stored


def test_bots_complete_sessions_over_http(gunicorn_server, demo):
    study = make_study(demo)  # 8 batches of 6, one rater each
    report = run_bots(base_url=gunicorn_server.url, study_id=study.pk, participants=4,
                      concurrency=4, policy=make_policy("random"), seed=1)

    assert [r.outcome for r in report.results] == [COMPLETED] * 4, report.summary()
    assert all(r.completion_code == "BOTS-OK" and r.total_items == 6 for r in report.results)
    assert [len(r.submissions) for r in report.results] == [6] * 4
    assert report.judgments == 24 and report.judgments_per_second > 0
    assert len(report.latencies(SHOW)) == 24 and len(report.latencies(SUBMIT)) == 24
    assert report.latency_ms(SUBMIT, 0.99) >= report.latency_ms(SUBMIT, 0.5) > 0
    assert Participant.objects.filter(study=study, status="completed").count() == 4
    participants = dict(Participant.objects.filter(study=study).values_list("external_id", "token"))
    assert {r.external_id: r.token for r in report.results} == participants
    assert_stored(report, study)
    assert study_invariant_violations(study) == []
    summary = report.summary()
    assert "completed: 4" in summary and "turned away: 0" in summary and "errors: 0" in summary
    assert "judgments submitted: 24" in summary and "show item: p50" in summary

    # A participant who quits after two answers keeps their slot and their answers.
    quitter = run_bots(base_url=gunicorn_server.url, study_id=study.pk, participants=1, seed=1,
                       id_prefix="quitter-", leave_after=2)
    assert quitter.results[0].outcome == LEFT and quitter.left == 1 and quitter.judgments == 2
    assert "left on purpose: 1" in quitter.summary()
    participant = Participant.objects.get(external_id="quitter-00000")
    assert participant.status == "active" and participant.judgments.count() == 2
    assert study_invariant_violations(study) == []


def test_a_full_study_turns_the_extra_bots_away(gunicorn_server, demo):
    study = make_study(demo, base_claims=6)  # 6 batches of 6, one rater each: 6 slots
    report = run_bots(base_url=gunicorn_server.url, study_id=study.pk, participants=9,
                      concurrency=9, seed=2)

    assert report.completed == 6 and report.turned_away == 3 and not report.errors, report.summary()
    assert all("full" in r.detail for r in report.by_outcome(TURNED_AWAY))
    assert sorted(Batch.objects.filter(study=study).values_list("completed_count", flat=True)) == [1] * 6
    assert_stored(report, study)
    assert study_invariant_violations(study) == []
    # A returning participant, once the study is full, still gets their completion page.
    again = run_bots(base_url=gunicorn_server.url, study_id=study.pk, participants=9,
                     concurrency=3, seed=2, id_prefix=report.results[0].external_id[:-5])
    assert again.completed == 6 and again.turned_away == 3 and again.judgments == 0


def test_a_closed_study_turns_new_bots_away(gunicorn_server, demo):
    study = make_study(demo, base_claims=6)
    Study.objects.filter(pk=study.pk).update(status=Study.Status.CLOSED)
    report = run_bots(base_url=gunicorn_server.url, study_id=study.pk, participants=2, seed=3)
    assert report.turned_away == 2 and not report.errors
    assert "closed" in report.results[0].detail
    assert not Participant.objects.filter(study=study).exists()


def test_double_submits_and_reloads_store_each_answer_once(gunicorn_server, demo):
    study = make_study(demo)
    report = run_bots(base_url=gunicorn_server.url, study_id=study.pk, participants=3,
                      concurrency=3, seed=4, double_submit=1.0, reload=1.0)

    assert report.completed == 3 and not report.errors, report.summary()
    assert sum(r.duplicates_sent for r in report.results) == 18
    assert sum(r.reloads for r in report.results) == 18
    assert Judgment.objects.filter(participant__study=study).count() == 18
    assert not JudgmentRevision.objects.exists()
    assert_stored(report, study)
    assert study_invariant_violations(study) == []


def test_truthful_and_credulous_policies(gunicorn_server, demo):
    study = make_study(demo, attention_checks=[("Please answer No to this statement.", False, 3)])
    truth = study_truth_table(study)
    assert truth["Please answer No to this statement."] is False
    truthful = TruthfulPolicy(truth)
    report = run_bots(base_url=gunicorn_server.url, study_id=study.pk, participants=2,
                      concurrency=2, policy=truthful, seed=6, id_prefix="truthful-")
    assert report.completed == 2, report.summary()
    assert truthful.looked_up == 14 and truthful.guessed == 0
    for accept, label, attention_passed in Judgment.objects.filter(
            participant__external_id__startswith="truthful-").values_list(
            "accept", "item__framed_claim__base_claim__true_label", "attention_passed"):
        if label is None:  # the attention check
            assert attention_passed is True
        else:
            assert accept == (label == "SUPPORTS")

    credulous = run_bots(base_url=gunicorn_server.url, study_id=study.pk, participants=2,
                         policy=make_policy("credulous"), seed=6, id_prefix="credulous-")
    assert credulous.completed == 2
    answers = Judgment.objects.filter(participant__external_id__startswith="credulous-")
    assert answers.count() == 14
    assert all(accept and confidence >= 4 for accept, confidence in answers.values_list("accept", "confidence"))
    assert study_invariant_violations(study) == []


def test_run_bots_command(gunicorn_server, demo, capsys, tmp_path):
    study = make_study(demo, name="FrameRef pilot", base_claims=6)
    out = tmp_path / "bots.json"
    call_command("run_bots", "FrameRef pilot", participants=8, base_url=gunicorn_server.url,
                 concurrency=8, policy="truthful", seed=9, json=str(out))
    printed = capsys.readouterr().out
    assert f"study {study.pk} 'FrameRef pilot'" in printed and "policy truthful" in printed
    assert "completed: 6" in printed and "turned away: 2" in printed and "errors: 0" in printed
    assert "judgments submitted: 36" in printed and "submit:    p50" in printed
    written = json.loads(out.read_text())
    assert written["completed"] == 6 and len(written["bots"]) == 8
    assert study_invariant_violations(study) == []

    with pytest.raises(CommandError, match="no study with the id or name 'nope'"):
        call_command("run_bots", "nope", participants=1, base_url=gunicorn_server.url)


def test_run_bots_fails_when_bots_hit_errors(demo, capsys):
    from annotation.studies.bots import free_port

    study = make_study(demo, base_claims=6)
    with pytest.raises(CommandError, match="2 bot"):
        call_command("run_bots", str(study.pk), participants=2,
                     base_url=f"http://127.0.0.1:{free_port()}", timeout=5)
    printed = capsys.readouterr().out
    assert "errors: 2" in printed and "connection" in printed.lower()


def test_policies_and_percentiles():
    rng = random.Random(1)
    truthful = TruthfulPolicy({"  The sky is blue. ": True})
    assert truthful.answer("The sky  is blue.", rng).accurate is True
    assert truthful.looked_up == 1
    truthful.answer("Something unknown.", rng)
    assert truthful.guessed == 1
    random_answers = [make_policy("random").answer("x", rng) for _ in range(200)]
    assert 60 < sum(a.accurate for a in random_answers) < 140
    assert {a.confidence for a in random_answers} == {1, 2, 3, 4, 5}
    assert make_policy("credulous").answer("x", rng).accurate is True
    assert isinstance(make_policy("truthful").answer("x", rng), Choice)  # no table: random
    with pytest.raises(ValueError, match="accepted: random, truthful, credulous"):
        make_policy("sceptical")
    assert percentile([], 0.5) is None
    assert percentile([3, 1, 2], 0.5) == 2 and percentile(list(range(1, 101)), 0.99) == 99
    assert ERROR == "error"


def test_invariant_checks_catch_broken_states(demo):
    study = make_study(demo, base_claims=6, raters_per_batch=1)
    first, second = Batch.objects.filter(study=study).order_by("index")[:2]
    done = Participant.objects.create(study=study, external_id="done", token="t1", batch=first,
                                      status="completed")
    Participant.objects.create(study=study, external_id="extra", token="t2", batch=first,
                               status="completed")
    item = BatchItem.objects.filter(batch=first).order_by("position").first()
    base = item.framed_claim.base_claim
    now = timezone.now()
    Judgment.objects.create(participant=done, item=item, accept=True, confidence=3, familiarity=3,
                            position=1, shown_at=now, answered_at=now, submission_key=uuid.uuid4())
    foreign = BatchItem.objects.filter(batch=second).exclude(framed_claim__base_claim=base).first()
    Judgment.objects.create(participant=done, item=foreign, accept=True, confidence=3, familiarity=3,
                            position=1, shown_at=now, answered_at=now, submission_key=uuid.uuid4())
    # A second framing of a base claim the first batch already holds.
    other = FramedClaim.objects.filter(base_claim=base).exclude(pk=item.framed_claim_id).first()
    BatchItem.objects.create(batch=first, position=99, framed_claim=other)

    violations = study_invariant_violations(study)
    text = "\n".join(violations)
    assert "batch 1 has 2 completed sessions, more than its quota of 1." in text
    assert "batch 1 counts 0 completed sessions but has 2 completed participants." in text
    assert f"holds 2 framings of base claim {base.external_id}: participants done, extra were shown" in text
    assert "participant done has judgments of items outside their batch: " in text
    assert "participant done completed batch 1 but has no judgment of item(s) 2, 3, 4, 5, 6, 99" in text
    assert "participant extra completed batch 1 but has no judgment" in text
    assert "judged 2 framings" not in text  # the foreign item is another base claim
    assert len(violations) == 6, violations
