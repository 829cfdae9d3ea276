"""The participant ticket (annotation/studies/participant_views.py): the signed note of
which participant was shown which item when, read back when the answer arrives."""
import uuid
from datetime import timedelta
from types import SimpleNamespace

from django.core import signing
from django.utils import timezone

from annotation.studies.participant_views import TICKET_SALT, _new_ticket, _read_ticket

PARTICIPANT = SimpleNamespace(pk=11)
ITEM = SimpleNamespace(pk=205)


def test_a_ticket_reads_back_as_when_it_was_shown_and_its_submission_key():
    before = timezone.now()
    ticket = _new_ticket(PARTICIPANT, ITEM)
    shown_at, key = _read_ticket(ticket, PARTICIPANT, ITEM)
    assert before <= shown_at <= timezone.now() + timedelta(seconds=1)
    assert shown_at.tzinfo is not None
    assert isinstance(key, uuid.UUID) and key.version == 4


def test_each_showing_gets_its_own_submission_key():
    """Guards against a fixed key: two showings of one item would be taken for one submission."""
    keys = {_read_ticket(_new_ticket(PARTICIPANT, ITEM), PARTICIPANT, ITEM)[1] for _ in range(3)}
    assert len(keys) == 3


def test_a_ticket_for_another_item_is_refused():
    """Guards against the ticket's item not being checked against the item answered: a
    ticket for item k replayed on item j would store an answer on the wrong claim."""
    ticket = _new_ticket(PARTICIPANT, ITEM)
    assert _read_ticket(ticket, PARTICIPANT, SimpleNamespace(pk=206)) is None


def test_a_ticket_for_another_participant_is_refused():
    """Guards against the participant not being checked: one rater's page answered as another."""
    ticket = _new_ticket(PARTICIPANT, ITEM)
    assert _read_ticket(ticket, SimpleNamespace(pk=12), ITEM) is None


def test_altered_foreign_and_malformed_tickets_are_refused():
    """Guards against a tampered ticket, one signed for another purpose, or a signed value of
    the wrong shape raising instead of being refused (the view answers 400 on None)."""
    ticket = _new_ticket(PARTICIPANT, ITEM)
    assert _read_ticket(ticket[:-2] + ("A" if ticket[-1] != "A" else "B") + ticket[-1], PARTICIPANT, ITEM) is None
    assert _read_ticket("", PARTICIPANT, ITEM) is None
    stamp = timezone.now().isoformat()
    other_salt = signing.dumps([11, 205, stamp, uuid.uuid4().hex], salt="another.purpose")
    assert _read_ticket(other_salt, PARTICIPANT, ITEM) is None
    unsalted = signing.dumps([11, 205, stamp, uuid.uuid4().hex])
    assert _read_ticket(unsalted, PARTICIPANT, ITEM) is None
    short = signing.dumps([11, 205, stamp], salt=TICKET_SALT)
    assert _read_ticket(short, PARTICIPANT, ITEM) is None


def test_the_ticket_is_signed_with_the_ticket_salt():
    """Guards against the salt (or the signed fields) changing: tickets issued by one server
    must be read by every other serving the same study."""
    value = signing.loads(_new_ticket(PARTICIPANT, ITEM), salt=TICKET_SALT)
    assert value[:2] == [11, 205] and len(value) == 4
    stamp = timezone.now().isoformat()
    key = uuid.uuid4().hex
    made_elsewhere = signing.dumps([11, 205, stamp, key], salt=TICKET_SALT, compress=False)
    assert _read_ticket(made_elsewhere, PARTICIPANT, ITEM) == (
        timezone.datetime.fromisoformat(stamp), uuid.UUID(key))


def test_the_ticket_is_signed_uncompressed():
    """Guards against the ticket's format changing to a compressed payload (signing marks one
    with a leading '.'): the ticket stays plain signed JSON, as _new_ticket asks."""
    for _ in range(20):
        ticket = _new_ticket(PARTICIPANT, ITEM)
        assert not ticket.startswith(".")
        assert signing.loads(ticket, salt=TICKET_SALT)[:2] == [11, 205]
