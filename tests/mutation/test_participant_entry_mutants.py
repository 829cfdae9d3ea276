"""participant_enter (annotation/studies/assignment.py) at the service level: ids checked
before a new session, resuming only with proof, and new sessions limited per address and
study, each rule at its boundary."""
import pytest
from django.core.cache import cache

from annotation.models import Participant
from annotation.studies.assignment import ResumeRefused, participant_enter
from annotation.studies.participant_ids import (
    BadEntryLink,
    EntryProof,
    TooManyEntries,
    generic_id_problem,
)

from .test_judgments_mutants import make_study

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_entry_counts(settings):
    settings.FRAMELAB_PARTICIPANT_ENTRIES_PER_ADDRESS = 2
    settings.FRAMELAB_PARTICIPANT_ENTRY_WINDOW_SECONDS = 3600
    cache.clear()
    yield
    cache.clear()


def test_resuming_with_a_proof_that_does_not_match_is_refused():
    """Guards against the proof not being passed on when the session exists (anyone who
    knows an id could take over its session)."""
    study = make_study()
    first = participant_enter(study=study, external_id="P1", platform_session_id="S1")
    with pytest.raises(ResumeRefused):
        participant_enter(study=study, external_id="P1", proof=EntryProof(platform_session_id="S2"))
    with pytest.raises(ResumeRefused):
        participant_enter(study=study, external_id="P1", proof=EntryProof(cookie_participant_pk=first.pk + 1000))
    assert participant_enter(study=study, external_id="P1", proof=EntryProof(platform_session_id="S1")).pk == first.pk
    assert participant_enter(study=study, external_id="P1", proof=EntryProof(cookie_participant_pk=first.pk)).pk == first.pk
    assert participant_enter(study=study, external_id="P1").pk == first.pk  # no proof: the platform's own code


@pytest.mark.parametrize("external_id", ["", "   ", "=HYPERLINK()", "x" * 101, "a\tb", " P1"])
def test_an_unsafe_id_is_refused_naming_the_parameter_the_problem_and_the_source(external_id):
    """Guards against the id check being skipped, or the error losing its parameter name,
    its problem in words or the platform it came from."""
    study = make_study()
    with pytest.raises(BadEntryLink) as caught:
        participant_enter(study=study, external_id=external_id, source="prolific")
    problem = generic_id_problem(external_id)
    assert problem is not None
    assert (caught.value.parameter, caught.value.problem, caught.value.platform) == ("participant id", problem, "prolific")
    assert str(caught.value) == f"participant id: {problem}"
    assert Participant.objects.count() == 0


def test_the_longest_safe_id_is_accepted():
    study = make_study()
    assert participant_enter(study=study, external_id="x" * 100).external_id == "x" * 100


def test_new_sessions_are_limited_per_address_and_study():
    """Guards against the entry slot not being claimed (or claimed for no address, or for no
    study: then one study's entries would use up another's)."""
    study, other = make_study(), make_study(name="second")
    participant_enter(study=study, external_id="A1", entry_address="198.51.100.7")
    participant_enter(study=study, external_id="A2", entry_address="198.51.100.7")
    with pytest.raises(TooManyEntries):
        participant_enter(study=study, external_id="A3", entry_address="198.51.100.7")
    assert not Participant.objects.filter(external_id="A3").exists()
    # Resuming does not count; another address and another study have their own entries.
    assert participant_enter(study=study, external_id="A1", entry_address="198.51.100.7").external_id == "A1"
    participant_enter(study=study, external_id="B1", entry_address="198.51.100.8")
    participant_enter(study=other, external_id="A3", entry_address="198.51.100.7")
    participant_enter(study=other, external_id="A4", entry_address="198.51.100.7")
    # Without an address (the platform's own code) nothing is counted.
    for n in range(4):
        participant_enter(study=study, external_id=f"N{n}")
