"""One rule for a reference by id or name (core.lookup): an exact name wins, `#N` or `id:N`
forces the id, bare digits fall back to the id; every look-up of a persona, study or
dataset follows it, so a persona named "3" is the same persona everywhere."""
import pytest

from annotation.models import Dataset, Study
from annotation.studies.services import study_lookup
from core.lookup import known_names, lookup_by_id_or_name
from modeling.models import Persona
from modeling.score_services import ScoreServiceError, persona_lookup
from simulation.agent_builders import AgentSpecError, agent_specs_resolve
from simulation.selectors import pool_claims

pytestmark = pytest.mark.django_db


@pytest.fixture
def shadowed():
    """A persona, and another one whose name is the first one's id."""
    first = Persona.objects.create(name="first")
    named_like_an_id = Persona.objects.create(name=str(first.pk))
    return first, named_like_an_id


def test_an_exact_name_wins_over_an_id(shadowed):
    first, named = shadowed
    assert lookup_by_id_or_name(Persona.objects, str(first.pk), kind="persona") == named
    assert lookup_by_id_or_name(Persona.objects, f" {first.pk} ", kind="persona") == named


@pytest.mark.parametrize("form", ["#{}", "id:{}", "ID: {}", "# {}"])
def test_hash_or_id_prefix_forces_the_id(shadowed, form):
    first, _ = shadowed
    assert lookup_by_id_or_name(Persona.objects, form.format(first.pk), kind="persona") == first


def test_an_int_is_an_id_and_digits_fall_back_to_the_id(shadowed):
    first, named = shadowed
    assert lookup_by_id_or_name(Persona.objects, first.pk, kind="persona") == first
    assert lookup_by_id_or_name(Persona.objects, str(named.pk), kind="persona") == named
    assert lookup_by_id_or_name(Persona.objects, "first", kind="persona") == first


def test_the_error_lists_what_exists(shadowed):
    first, _ = shadowed
    with pytest.raises(Persona.DoesNotExist,
                       match=rf"no persona with the id or name 'nobody' \(personas: {first.pk}, first\)"):
        lookup_by_id_or_name(Persona.objects, " nobody ", kind="persona")
    with pytest.raises(Persona.DoesNotExist) as missing:
        lookup_by_id_or_name(Persona.objects.filter(name="first"), f"#{first.pk + 100}", kind="persona")
    assert missing.value.reference == f"#{first.pk + 100}" and missing.value.known == "first"
    with pytest.raises(Study.DoesNotExist, match=r"no study with the id or name '#1' \(studies: none yet\)"):
        lookup_by_id_or_name(Study.objects, "#1", kind="study")


def test_known_names_are_sorted_and_capped():
    for i in range(25):
        Dataset.objects.create(name=f"d{i:02d}")
    listed = known_names(Dataset.objects)
    assert listed.startswith("d00, d01,") and listed.endswith("d19, ...")


def test_the_3_case_resolves_alike_in_modeling_simulation_and_studies(shadowed):
    """The persona named "3" (here: named after the other's id) is one persona for the
    scoring services and for a simulation's agent spec; `#3` is the other one for both."""
    first, named = shadowed
    assert persona_lookup(str(first.pk)) == named
    assert persona_lookup(f"#{first.pk}") == first
    with pytest.raises(ScoreServiceError, match="no persona with id or name 'nobody'; known: "):
        persona_lookup("nobody")

    dataset = Dataset.objects.create(name="empty")
    pool = pool_claims(dataset=dataset, split="test")
    for reference, persona in ((str(first.pk), named), (f"#{first.pk}", first)):
        # Resolution gets past the look-up and stops at the missing score table, naming
        # the persona it found.
        with pytest.raises(AgentSpecError, match=f"persona '{persona.name}' has no finished score table"):
            agent_specs_resolve([{"kind": "persona", "persona": reference}], dataset=dataset,
                                split="test", pool=pool)


def test_studies_follow_the_same_rule():
    dataset = Dataset.objects.create(name="d")
    first = Study.objects.create(dataset=dataset, name="first", base_claim_count=1, batch_size=1,
                                 raters_per_batch=1)
    named = Study.objects.create(dataset=dataset, name=str(first.pk), base_claim_count=1,
                                 batch_size=1, raters_per_batch=1)
    assert study_lookup(str(first.pk)) == named
    assert study_lookup(f"#{first.pk}") == first
    with pytest.raises(Study.DoesNotExist, match=rf"no study with the id or name 'x' \(studies: {first.pk}, first\)"):
        study_lookup("x")
