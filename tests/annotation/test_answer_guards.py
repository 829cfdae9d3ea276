"""Guards for the bugs that would store a rater's answer on the wrong claim, after their
session ended, or flip it when they go back.

Each test names the injected bug it was checked against (issue 20): the bug was put into
the code, the test failed, the bug was taken out, the test passed.
"""
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from annotation.models import (
    Batch,
    Judgment,
    JudgmentRevision,
    Participant,
)
from annotation.studies.assignment import (
    MARKABLE,
    participant_consent,
    participant_enter,
    participant_mark,
    sessions_reclaim_expired,
)
from annotation.studies.judgments import Answer, JudgmentRefused, judgment_record
from annotation.studies.selectors import batch_items
from tests.annotation.test_participant_flow import (
    answer,
    checked_radios,
    item_url,
    start,
    ticket_of,
)

pytestmark = pytest.mark.django_db


def stored(participant):
    return {position: (accept, confidence) for position, accept, confidence in Judgment.objects.filter(
        participant=participant).values_list("position", "accept", "confidence")}


def a_new_answer(accept=True):
    return Answer(accept=accept, confidence=3, familiarity=3, shown_at=timezone.now(),
                  submission_key=uuid.uuid4())


# --- (d) the ticket's item ----------------------------------------------------------------

def test_a_ticket_for_one_item_is_refused_on_another(client, study):
    """Guards against: the participant ticket's item not being checked against the item
    answered, so that a ticket for item k replayed on item j stores an answer on the wrong
    claim (or replaces the answer to j)."""
    participant = start(client, study)
    answer(client, participant, 1, accurate="yes", confidence=2)
    ticket_for_2 = ticket_of(client.get(item_url(participant, 2)))
    # Item 2's ticket on item 1 (answered): no revision of item 1.
    replayed = answer(client, participant, 1, accurate="no", confidence=5, ticket=ticket_for_2)
    assert replayed.status_code == 400 and b"out of date or altered" in replayed.content
    # Item 1's ticket on item 2 (the open one): no answer on item 2.
    ticket_for_1 = ticket_of(client.get(item_url(participant, 1)))
    replayed = answer(client, participant, 2, accurate="no", confidence=5, ticket=ticket_for_1)
    assert replayed.status_code == 400
    assert stored(participant) == {1: (True, 2)}
    assert not JudgmentRevision.objects.exists()
    # Each ticket still works where it belongs.
    assert answer(client, participant, 2, accurate="no", ticket=ticket_for_2).status_code == 302
    assert stored(participant) == {1: (True, 2), 2: (False, 4)}


# --- (e) answers from a participant who is no longer active ----------------------------------

@pytest.mark.parametrize("status", MARKABLE)
def test_a_closed_session_stores_no_answer(client, study, status):
    """Guards against: the judgment service accepting answers from a participant who is no
    longer active (timed out, returned, rejected, excluded).

    The page refuses such a participant before it calls the service, so the service is
    called directly, as the page would call it when the session closes between the page
    loading the participant and the answer being stored.
    """
    participant = start(client, study)
    answer(client, participant, 1)
    loaded_while_active = Participant.objects.get(pk=participant.pk)
    participant_mark(participant=participant, status=status)
    item = batch_items(participant.batch_id)[2]
    with pytest.raises(JudgmentRefused):
        judgment_record(participant=loaded_while_active, item=item, answer=a_new_answer())
    assert list(stored(participant)) == [1]
    assert Participant.objects.get(pk=participant.pk).status == status
    # Going back to change an earlier answer is refused too.
    with pytest.raises(JudgmentRefused):
        judgment_record(participant=loaded_while_active, item=batch_items(participant.batch_id)[1],
                        answer=a_new_answer(accept=False))
    assert stored(participant)[1][0] is True and not JudgmentRevision.objects.exists()


def _idle(participant, minutes):
    Participant.objects.filter(pk=participant.pk).update(
        last_seen_at=timezone.now() - timedelta(minutes=minutes))


def test_reclaim_then_answer_times_out_and_stores_nothing(client, study):
    """Guards against: answers after a time-out being stored. The session is reclaimed
    after the page loaded the participant and before the answer is recorded: the answer is
    refused, so the participant is timed out and has no answer, never both."""
    participant = start(client, study)
    _idle(participant, study.time_limit_minutes + 1)
    loaded_while_active = Participant.objects.get(pk=participant.pk)
    assert sessions_reclaim_expired(study=study) == 1
    with pytest.raises(JudgmentRefused, match="timed out"):
        judgment_record(participant=loaded_while_active, item=batch_items(participant.batch_id)[1],
                        answer=a_new_answer())
    participant.refresh_from_db()
    assert participant.status == Participant.Status.TIMED_OUT and stored(participant) == {}
    assert Batch.objects.get(pk=participant.batch_id).active_count == 0


def test_answer_then_reclaim_keeps_the_session(client, study):
    """The other order of the same race: an answer that lands first (the session was idle
    up to then) renews the session, so the reclaim that follows leaves it alone: the answer
    is stored and the participant stays active, never both stored and timed out."""
    participant = start(client, study)
    _idle(participant, study.time_limit_minutes + 1)
    judgment_record(participant=participant, item=batch_items(participant.batch_id)[1],
                    answer=a_new_answer())
    assert sessions_reclaim_expired(study=study) == 0
    participant.refresh_from_db()
    assert participant.status == Participant.Status.ACTIVE and list(stored(participant)) == [1]
    assert Batch.objects.get(pk=participant.batch_id).active_count == 1


@pytest.mark.django_db(transaction=True)
def test_reclaim_racing_answers_never_both_times_out_and_stores(study):
    """The reclaim-vs-answer race run for real: idle participants answer from threads (one
    database connection each) while another thread reclaims idle sessions. Whatever the
    interleaving, every participant ends either timed out with no answer, or active with
    their answer; a refused answer means timed out; the batches count only the active."""
    participants = []
    for n in range(8):
        entered = participant_enter(study=study, external_id=f"racer-{n}")
        participants.append(participant_consent(participant=entered))
    for participant in participants:
        _idle(participant, study.time_limit_minutes + 1)
    loaded = [Participant.objects.get(pk=p.pk) for p in participants]
    outcomes, errors = {}, []
    gate = threading.Barrier(len(loaded) + 1)

    def answer_in_thread(participant):
        try:
            gate.wait()
            judgment_record(participant=participant, item=batch_items(participant.batch_id)[1],
                            answer=a_new_answer())
            outcomes[participant.pk] = "stored"
        except JudgmentRefused:
            outcomes[participant.pk] = "refused"
        except Exception as error:  # noqa: BLE001  (reported below with the participant)
            errors.append(f"participant {participant.pk}: {error!r}")
        finally:
            connection.close()

    def reclaim_in_thread():
        try:
            gate.wait()
            sessions_reclaim_expired(study=study)
        except Exception as error:  # noqa: BLE001
            errors.append(f"reclaim: {error!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=answer_in_thread, args=(p,)) for p in loaded]
    threads.append(threading.Thread(target=reclaim_in_thread))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(outcomes) == len(loaded)
    for participant in participants:
        participant.refresh_from_db()
        answered = list(stored(participant))
        if participant.status == Participant.Status.TIMED_OUT:
            assert answered == [] and outcomes[participant.pk] == "refused", participant.pk
        else:
            assert participant.status == Participant.Status.ACTIVE
            assert answered == [1] and outcomes[participant.pk] == "stored", participant.pk
    for batch in Batch.objects.filter(study=study):
        assert batch.active_count == batch.participants.filter(status="active").count()


# --- (f) "Previous" pre-fills the stored answer -------------------------------------------

@pytest.mark.parametrize("accurate, confidence, familiarity", [("yes", 2, 5), ("no", 5, 1)])
def test_previous_shows_exactly_the_stored_answer(client, study, accurate, confidence, familiarity):
    """Guards against: "Previous" pre-filling the opposite of the stored answer (a rater
    who goes back and forward would silently flip it). The radios checked are exactly the
    stored answer, for both answers, and going forward again without touching them stores
    the same answer."""
    participant = start(client, study)
    answer(client, participant, 1, accurate=accurate, confidence=confidence,
           familiarity=familiarity)
    answer(client, participant, 2)
    back = client.get(item_url(participant, 1))
    shown = checked_radios(back)
    assert shown == {"accurate": accurate, "confidence": str(confidence),
                     "familiarity": str(familiarity)}
    # Submitting the page as shown (what a browser sends) keeps the answer.
    client.post(item_url(participant, 1), {**shown, "ticket": ticket_of(back)})
    judgment = Judgment.objects.get(participant=participant, position=1)
    assert (judgment.accept, judgment.confidence, judgment.familiarity) == (
        accurate == "yes", confidence, familiarity)
