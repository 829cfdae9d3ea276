"""The human profile: hand-made tables, storage round trip, bad input, and a real study."""
import math
import uuid

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from django.utils import timezone

from annotation.analysis.human_profile import (
    HumanProfile,
    HumanProfileError,
    Rate,
    base_claim_id,
    confidence_level,
    confidence_probability,
    human_profile,
    profiles_pooled,
    study_human_profile,
)
from annotation.models import Dataset, Participant, Study
from annotation.studies.assignment import (
    participant_consent,
    participant_enter,
    participant_mark,
)
from annotation.studies.judgments import Answer, judgment_record
from annotation.studies.services import study_create

COLUMNS = ["Annotator_ID", "full_claim_id", "framing_type", "true_label",
           "accurate_response", "confidence_response", "familiarity_response"]


def hand_table() -> pd.DataFrame:
    rows = [
        # rater, item, framing, truth, response, confidence, familiarity
        ("r1", "c1:original", "original", "REFUTES", "SUPPORTS", 4, 2),
        ("r2", "c1:original", "original", "REFUTES", "REFUTES", 5, 3),
        ("r3", "c1:original", "original", "REFUTES", "REFUTES", 3, 3),
        ("r1", "c2:authoritative", "authoritative", "REFUTES", "SUPPORTS", 2, 1),
        ("r2", "c2:authoritative", "authoritative", "REFUTES", "SUPPORTS", 5, 1),
        ("r1", "c3:authoritative", "authoritative", "SUPPORTS", "SUPPORTS", 1, 5),
        ("r3", "c3:authoritative", "authoritative", "SUPPORTS", "REFUTES", 1, 5),
        ("r3", "c4:original", "original", "SUPPORTS", "SUPPORTS", 5, 4),
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def test_confidence_mapping_is_linear_from_a_guess_to_certainty():
    assert [confidence_probability(k) for k in range(1, 6)] == [0.5, 0.625, 0.75, 0.875, 1.0]
    assert list(confidence_level(np.array([0.5, 0.6, 0.7, 0.9, 1.0, 0.2]))) == [1, 2, 3, 4, 5, 1]
    for k in range(1, 6):
        assert confidence_level(confidence_probability(k)) == k
    with pytest.raises(ValueError, match="1..5"):
        confidence_probability(6)


def test_profile_of_a_hand_made_table():
    profile = human_profile(hand_table())
    assert profile.n_raters == 3 and profile.n_judgments == 8
    assert profile.rate("original", "REFUTES") == Rate(3, 1)
    assert profile.false_acceptance_rate("original") == pytest.approx(1 / 3)
    assert profile.false_acceptance_rate("authoritative") == 1.0
    assert profile.false_rejection_rate("authoritative") == pytest.approx(0.5)
    assert profile.false_rejection_rate("original") == 0.0
    assert math.isnan(profile.acceptance_rate("emotional", "REFUTES"))
    assert profile.framings == ["original", "authoritative"]
    # Familiarity: original false claims judged at level 3 by r2 and r3, both rejecting.
    assert profile.rate("original", "REFUTES", familiarity=3) == Rate(2, 0)
    assert profile.rate("original", "REFUTES", familiarity=2) == Rate(1, 1)
    # Confidence counts split by decision.
    assert list(profile.confidence_counts("authoritative", "REFUTES", accepted=True)) == [0, 1, 0, 0, 1]
    assert list(profile.confidence_counts(accepted=False)) == [1, 0, 1, 0, 1]
    assert list(profile.confidence_counts()) == [2, 1, 1, 1, 3]
    assert profile.confidence_distribution("original", "REFUTES", accepted=True) == pytest.approx(
        [0, 0, 0, 1, 0])
    # A cell nobody judged falls back to the pooled distribution.
    assert profile.confidence_distribution("emotional") == pytest.approx(np.array([2, 1, 1, 1, 3]) / 8)
    assert profile.mean_confidence_probability("authoritative") == pytest.approx(
        (0.5 + 0.5 + 0.625 + 1.0) / 4)
    items = profile.item_acceptance().set_index("claim_id")
    assert items.loc["c1:original", "n"] == 3
    assert items.loc["c1:original", "acceptance_rate"] == pytest.approx(1 / 3)
    assert items.loc["c2:authoritative", "acceptance_rate"] == 1.0
    table = profile.table().set_index("framing")
    assert table.loc["authoritative", "false_acceptance_rate"] == 1.0
    low, high = Rate(2, 2).wilson_interval()
    assert table.loc["authoritative", "false_acceptance_low"] == pytest.approx(low)
    assert 0.3 < low < 0.4 and high == 1.0


def test_profile_round_trips_through_json():
    import json

    profile = human_profile(hand_table(), source={"study": "x"})
    restored = HumanProfile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert restored.cells == profile.cells
    assert restored.familiarity == profile.familiarity
    assert restored.items == profile.items
    assert restored.source == {"study": "x"}
    for key, counts in profile.confidence.items():
        assert list(restored.confidence[key]) == list(counts)
    assert {k: list(v) for k, v in restored.base_familiarity.items()} == {
        k: list(v) for k, v in profile.base_familiarity.items()}
    assert {k: list(v) for k, v in restored.confidence_by_familiarity.items()} == {
        k: list(v) for k, v in profile.confidence_by_familiarity.items()}
    # A profile stored before these tables existed still loads, without them.
    old = profile.to_dict()
    del old["base_familiarity"], old["confidence_by_familiarity"]
    assert HumanProfile.from_dict(old).base_familiarity == {}


def test_profile_keeps_familiarity_per_base_claim_and_confidence_per_familiarity():
    """Guards the familiarity-aware agent's inputs: the familiarity levels reported for each
    base claim (pooled over its framings), and confidence counts split by familiarity level."""
    table = hand_table()
    table.loc[len(table)] = ("r4", "c1:authoritative", "authoritative", "REFUTES", "REFUTES", 5, 4)
    profile = human_profile(table)
    assert {k: list(v) for k, v in profile.base_familiarity.items()} == {
        "c1": [0, 1, 2, 1, 0], "c2": [2, 0, 0, 0, 0], "c3": [0, 0, 0, 0, 2], "c4": [0, 0, 0, 1, 0]}
    assert list(profile.confidence_by_familiarity[("original", "REFUTES", "rejected", 3)]) == [0, 0, 1, 0, 1]
    assert list(profile.confidence_by_familiarity[("original", "REFUTES", "accepted", 2)]) == [0, 0, 0, 1, 0]
    assert ("original", "REFUTES", "accepted", 3) not in profile.confidence_by_familiarity
    pooled = profiles_pooled([profile, profile])
    assert list(pooled.base_familiarity["c1"]) == [0, 2, 4, 2, 0]
    assert list(pooled.confidence_by_familiarity[("authoritative", "REFUTES", "accepted", 1)]) == [0, 2, 0, 0, 2]
    assert base_claim_id("fever-7:emotional") == "fever-7" and base_claim_id("x") == "x"


@pytest.mark.parametrize("column,value,message", [
    ("framing_type", "neutral", "row 3: field 'framing_type': value 'neutral'"),
    ("accurate_response", "Yes", "row 3: field 'accurate_response': value 'Yes'"),
    ("confidence_response", 7, "row 3: field 'confidence_response': value 7"),
    ("familiarity_response", "high", "row 3: field 'familiarity_response': value 'high'"),
])
def test_bad_values_are_named_by_row_field_and_value(column, value, message):
    table = hand_table()
    table[column] = table[column].astype(object)
    table.loc[2, column] = value
    with pytest.raises(HumanProfileError, match=message.replace("(", r"\(")):
        human_profile(table)


def test_missing_column_and_inconsistent_item_are_refused():
    with pytest.raises(HumanProfileError, match="missing column.*familiarity_response"):
        human_profile(hand_table().drop(columns=["familiarity_response"]))
    table = hand_table()
    table.loc[1, "true_label"] = "SUPPORTS"
    with pytest.raises(HumanProfileError, match="'c1:original'"):
        human_profile(table)


# --- a study in the database ---------------------------------------------------------------

def fill_study(study: Study, participants: int, decide) -> list[Participant]:
    """Runs `participants` raters through the study; decide(framed_claim) -> (accept, conf, fam).

    Each answer takes 4 s (a person reading): the profile applies the analysis's "fast" rule,
    which leaves out raters whose median time per item is under 2 s."""
    people = []
    for i in range(participants):
        participant = participant_consent(
            participant=participant_enter(study=study, external_id=f"P{i}"))
        for item in participant.batch.items.select_related("framed_claim__base_claim"):
            accept, confidence, familiarity = decide(item.framed_claim)
            judgment_record(participant=participant, item=item, answer=Answer(
                accept=accept, confidence=confidence, familiarity=familiarity,
                shown_at=timezone.now(), submission_key=uuid.uuid4(), response_time_ms=4000))
        people.append(participant)
    return people


@pytest.mark.django_db
def test_study_profile_counts_judgments_and_leaves_out_returned_participants():
    call_command("load_demo", no_user=True)
    study = study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name="profile",
                         base_claims=6, batch_size=6, raters_per_batch=2, seed=3,
                         status=Study.Status.OPEN)

    def credulous_on_authority(claim):
        accept = claim.base_claim.true_label == "SUPPORTS" or claim.framing == "authoritative"
        return accept, 4 if accept else 2, 3

    people = fill_study(study, 4, credulous_on_authority)
    profile = study_human_profile(study=study)
    assert profile.n_judgments == 4 * 6 and profile.n_raters == 4
    assert profile.false_acceptance_rate("authoritative") == 1.0
    assert profile.false_acceptance_rate("original") == 0.0
    assert profile.false_rejection_rate("consensus") == 0.0
    assert profile.source["study_id"] == study.pk
    # Batches fill evenly: four raters take four different batches of six items.
    assert len(profile.items) == 24 and all(item.n == 1 for item in profile.items.values())

    participant_mark(participant=people[0], status=Participant.Status.RETURNED)
    after = study_human_profile(study=study)
    assert after.n_raters == 3 and after.n_judgments == 18
    assert study_human_profile(study=study, apply_exclusions=False).n_judgments == 24
