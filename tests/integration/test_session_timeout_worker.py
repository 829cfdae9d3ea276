"""The beat task that times out idle participant sessions, run by a real Celery worker (and,
in the second test, sent by a real celery beat): idle sessions time out by their own
study's limit, their slots reopen, and sessions still in use are left alone."""
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from annotation.models import Batch, Dataset, Participant, Study
from annotation.studies.assignment import (
    StudyUnavailable,
    participant_consent,
    participant_enter,
)
from annotation.studies.services import study_create

from .conftest import ROOT, database_url_of_live_connection


def full_study(name, *, time_limit_minutes):
    """An open study with every slot taken (8 batches x 2 raters); returns (study, participants)."""
    study = study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name=name,
                         base_claims=8, batch_size=6, raters_per_batch=2, seed=3,
                         status=Study.Status.OPEN)
    Study.objects.filter(pk=study.pk).update(time_limit_minutes=time_limit_minutes)
    study.refresh_from_db()
    participants = [participant_consent(participant=participant_enter(
        study=study, external_id=f"{name}-{n}")) for n in range(16)]
    with pytest.raises(StudyUnavailable, match="full"):
        participant_consent(participant=participant_enter(study=study, external_id=f"{name}-late"))
    return study, participants


def idle_for(participants, minutes):
    Participant.objects.filter(pk__in=[p.pk for p in participants]).update(
        last_seen_at=timezone.now() - timedelta(minutes=minutes))


def statuses(participants):
    found = dict(Participant.objects.filter(pk__in=[p.pk for p in participants])
                 .values_list("pk", "status"))
    return [found[p.pk] for p in participants]


def check_counters(study):
    for batch in Batch.objects.filter(study=study):
        assert batch.active_count == batch.participants.filter(status="active").count()


def setup_two_studies():
    """Two full studies; in each, three sessions idle for 10 minutes and one for 90.

    The short study's limit is 5 minutes, the long one's 60: the task must time out the
    short study's four idle sessions and only the long study's one idle past an hour."""
    call_command("load_demo", no_user=True)
    short, short_people = full_study("short", time_limit_minutes=5)
    long, long_people = full_study("long", time_limit_minutes=60)
    idle_for(short_people[:3] + long_people[:3], 10)
    idle_for(short_people[3:4] + long_people[3:4], 90)
    expected_short = ["timed_out"] * 4 + ["active"] * 12
    expected_long = ["active"] * 3 + ["timed_out"] + ["active"] * 12
    return (short, short_people, expected_short), (long, long_people, expected_long)


def check_after_the_task(studies):
    for study, people, expected in studies:
        assert statuses(people) == expected, study.name
        timed_out = [p for p, status in zip(people, expected) if status == "timed_out"]
        assert all(p.status_note.startswith("idle for more than") for p in
                   Participant.objects.filter(pk__in=[p.pk for p in timed_out]))
        check_counters(study)
        # Each freed slot takes one newcomer; then the study is full again.
        for n in range(len(timed_out)):
            newcomer = participant_consent(participant=participant_enter(
                study=study, external_id=f"{study.name}-new-{n}"))
            assert newcomer.status == "active"
        with pytest.raises(StudyUnavailable, match="full"):
            participant_consent(participant=participant_enter(
                study=study, external_id=f"{study.name}-one-too-many"))
        check_counters(study)


def test_the_worker_times_out_idle_sessions_and_frees_their_slots(celery_worker_process):
    from annotation.tasks import reclaim_expired_sessions

    studies = setup_two_studies()

    reclaimed = reclaim_expired_sessions.delay().get(timeout=60)

    assert reclaimed == 5
    check_after_the_task(studies)
    # Run again: nothing more is idle, nothing changes.
    assert reclaim_expired_sessions.delay().get(timeout=60) == 0


@pytest.fixture
def celery_beat_process(celery_worker_process, settings, tmp_path):
    """celery beat with the platform's schedule, the reclaim task due every second."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'platform'}:{ROOT}",
           "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "DATABASE_URL": database_url_of_live_connection(),
           "MEDIA_ROOT": str(settings.MEDIA_ROOT), "RECLAIM_SESSIONS_EVERY_SECONDS": "1"}
    log = open(tmp_path / "beat.log", "w")
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "--app", "config", "beat", "--loglevel", "INFO",
         "--schedule", str(tmp_path / "beat-schedule"), "--max-interval", "1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield beat
    finally:
        beat.send_signal(signal.SIGTERM)
        try:
            beat.wait(timeout=20)
        except subprocess.TimeoutExpired:
            beat.kill()
        log.close()
        print((tmp_path / "beat.log").read_text()[-3000:])


@pytest.mark.slow
def test_beat_schedules_the_time_out_of_idle_sessions(celery_beat_process):
    """The schedule in the settings names a task the worker runs: with beat running, idle
    sessions time out without anyone asking. Slow (about 20 s: a worker and beat start);
    the test above guards the slots in the default run."""
    studies = setup_two_studies()
    every = [p for _, people, _ in studies for p in people]
    deadline = time.monotonic() + 90
    while Participant.objects.filter(pk__in=[p.pk for p in every], status="timed_out").count() < 5:
        assert celery_beat_process.poll() is None, "celery beat exited"
        assert time.monotonic() < deadline, "beat's reclaim task did not run within 90 s"
        time.sleep(0.5)
    check_after_the_task(studies)
