"""Concurrency on PostgreSQL in CI: many parallel processes entering and answering at once;
afterwards every invariant holds: no batch over quota, no participant with two framings of
one base claim, no duplicate or lost judgment, every acknowledged submission stored.

Several OS processes, each running `manage.py run_bots` with many bots in threads, take
one study at once through a gunicorn with several workers. There are more participants
than slots, and the bots double-submit (the same ticket twice at once) and reload pages or
come back through the study link mid-session. On SQLite the first test uses fewer bots;
the large rush (100 bots for 60 slots, about 40 s) runs in the default run too: it guards
data integrity and takes less than a minute.
"""
import json
import os
import subprocess
import sys
import time

import pytest
from django.core.management import call_command
from django.db import connection

from annotation.models import (
    Batch,
    Dataset,
    Judgment,
    JudgmentRevision,
    Participant,
    Study,
)
from annotation.studies.invariants import study_invariant_violations
from annotation.studies.services import study_create

from .conftest import ROOT, database_url_of_live_connection

pytestmark = pytest.mark.django_db(transaction=True)


def run_bot_processes(server, study, *, processes, bots_each, concurrency, tmp_path):
    """Starts `processes` run_bots commands at once; returns their JSON reports."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
           "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "DATABASE_URL": database_url_of_live_connection()}
    children = []
    for n in range(processes):
        out = tmp_path / f"bots-{n}.json"
        command = [sys.executable, "manage.py", "run_bots", str(study.pk),
                   "--participants", str(bots_each), "--concurrency", str(concurrency),
                   "--base-url", server.url, "--seed", str(n), "--id-prefix", f"proc{n}-",
                   "--double-submit", "0.25", "--reload", "0.2", "--json", str(out)]
        with open(tmp_path / f"bots-{n}.log", "w") as log:
            children.append((subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                                              stderr=subprocess.STDOUT), out))
    try:
        codes = [child.wait(timeout=240) for child, _ in children]
    finally:
        for child, _ in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    reports = []
    for (_, out), code in zip(children, codes):
        output = (tmp_path / f"{out.stem}.log").read_text()
        assert code == 0, f"run_bots exited with {code}:\n{output}\nserver:\n{server.log_tail()}"
        reports.append(json.loads(out.read_text()))
    return reports


def check_study_after_the_rush(study, reports, *, participants, slots):
    bots = [bot for report in reports for bot in report["bots"]]
    assert len(bots) == participants
    assert not [bot for bot in bots if bot["outcome"] == "error"]
    completed = [bot for bot in bots if bot["outcome"] == "completed"]
    turned_away = [bot for bot in bots if bot["outcome"] == "turned away"]
    # Every consenting bot finishes, so exactly the slots are used: none lost, none given twice.
    assert len(completed) == slots and len(turned_away) == participants - slots, (
        f"{len(completed)} completed and {len(turned_away)} turned away for {slots} slots and "
        f"{participants} participants: someone was told the study was full while a slot was free")
    assert all("full" in bot["detail"] for bot in turned_away)

    assert study_invariant_violations(study) == []
    for batch in Batch.objects.filter(study=study):
        assert batch.completed_count == batch.quota and batch.active_count == 0
        assert batch.participants.filter(status="completed").count() == batch.quota
    assert not Participant.objects.filter(study=study, status="active").exists()

    # Every acknowledged submission is stored, with the answer that was acknowledged, and
    # nothing else is: the double submits and reloads stored nothing twice.
    acknowledged = {(bot["external_id"], s["position"]): (s["accurate"], s["confidence"], s["familiarity"])
                    for bot in bots for s in bot["submissions"]}
    assert len(acknowledged) == sum(len(bot["submissions"]) for bot in bots)
    stored = {(external_id, position): (accept, confidence, familiarity)
              for external_id, position, accept, confidence, familiarity in Judgment.objects.filter(
                  participant__study=study).values_list("participant__external_id", "item__position",
                                                        "accept", "confidence", "familiarity")}
    assert stored == acknowledged
    assert not JudgmentRevision.objects.filter(judgment__participant__study=study).exists()
    assert sum(bot["duplicates_sent"] for bot in bots) > 0 and sum(bot["reloads"] for bot in bots) > 0
    # The completion codes went to exactly the participants who finished.
    assert {bot["completion_code"] for bot in completed} == {study.completion_code}
    assert set(Participant.objects.filter(study=study, status="completed").values_list(
        "external_id", flat=True)) == {bot["external_id"] for bot in completed}


def rush(gunicorn_servers, tmp_path, *, base_claims, raters_per_batch, processes, bots_each,
         concurrency, workers):
    call_command("load_demo", no_user=True)
    study = study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name="rush",
                         base_claims=base_claims, batch_size=6, raters_per_batch=raters_per_batch,
                         seed=11, status=Study.Status.OPEN)
    slots = study.batches.count() * raters_per_batch
    participants = processes * bots_each
    assert participants > slots
    server = gunicorn_servers(workers=workers)
    started = time.monotonic()
    reports = run_bot_processes(server, study, processes=processes, bots_each=bots_each,
                                concurrency=concurrency, tmp_path=tmp_path)
    check_study_after_the_rush(study, reports, participants=participants, slots=slots)
    return time.monotonic() - started


def test_parallel_processes_keep_every_invariant(gunicorn_servers, tmp_path):
    if connection.vendor == "postgresql":
        # 10 batches x 2 raters = 20 slots for 36 participants, 36 bots in flight at once.
        size = {"base_claims": 10, "raters_per_batch": 2, "processes": 3, "bots_each": 12,
                "concurrency": 12, "workers": 4}
    else:
        # SQLite serialises writers; fewer bots keep the default run short.
        size = {"base_claims": 6, "raters_per_batch": 2, "processes": 2, "bots_each": 8,
                "concurrency": 8, "workers": 3}
    rush(gunicorn_servers, tmp_path, **size)


def test_a_large_rush_keeps_every_invariant(gunicorn_servers, tmp_path):
    # 20 batches x 3 raters = 60 slots for 100 participants from 4 processes.
    rush(gunicorn_servers, tmp_path, base_claims=20, raters_per_batch=3, processes=4, bots_each=25,
         concurrency=25, workers=4)


def test_a_burst_of_exactly_as_many_participants_as_slots_all_get_one(gunicorn_servers):
    """Nobody is told "full" while a slot is free: as many participants as slots consent at
    the same moment (and quit at once, keeping their slot), three times over."""
    from annotation.studies.bots import run_bots

    call_command("load_demo", no_user=True)
    dataset = Dataset.objects.get(name="FrameLab demo")
    # Many threads, so that many consents are in flight at once (more than there are batches).
    server = gunicorn_servers(workers=4, threads=8)
    for round_ in range(3):
        # 6 batches (the fewest a design allows: one per framing) of 10 slots each.
        study = study_create(dataset=dataset, name=f"burst {round_}", base_claims=6, batch_size=6,
                             raters_per_batch=10, seed=round_, status=Study.Status.OPEN)
        slots = study.batches.count() * 10
        report = run_bots(base_url=server.url, study_id=study.pk, participants=slots,
                          concurrency=slots, seed=round_, leave_after=0)
        assert not report.errors, report.summary()
        turned_away = [r.detail for r in report.by_outcome("turned away")]
        assert not turned_away, (
            f"round {round_}: {len(turned_away)} of {slots} participants were turned away with "
            f"'{turned_away[0]}' while {slots - report.left} slots were free")
        assert report.left == slots
        assert sorted(Batch.objects.filter(study=study).values_list("active_count", flat=True)) == [10] * 6
        assert study_invariant_violations(study) == []
