"""Participants: the list and its filters, marking one or many (all or nothing)."""
import pytest

from annotation.models import Batch, Participant

from .conftest import results, take_part

pytestmark = pytest.mark.django_db


def test_list_with_status_and_answers(api, study):
    done = take_part(study, "P1")
    busy = take_part(study, "P2", answers=2)
    listed = results(api.get(f"/api/studies/{study.pk}/participants/"))
    assert [(p["external_id"], p["status"], p["answered"]) for p in listed] == [
        ("P1", "completed", 7), ("P2", "active", 2)]
    assert listed[0]["batch_index"] == done.batch.index
    only_active = results(api.get(f"/api/studies/{study.pk}/participants/", {"status": "active"}))
    assert [p["id"] for p in only_active] == [busy.pk]
    both = results(api.get(f"/api/studies/{study.pk}/participants/", {"status": "active,completed"}))
    assert len(both) == 2
    assert [p["id"] for p in results(api.get(f"/api/studies/{study.pk}/participants/",
                                             {"external_id": "P1"}))] == [done.pk]
    bad = api.get(f"/api/studies/{study.pk}/participants/", {"status": "gone"})
    assert bad.status_code == 400 and "gone" in str(bad.json()["status"])
    assert api.get(f"/api/studies/{study.pk}/participants/{busy.pk}/").json()["answered"] == 2


def test_marking_returned_reopens_the_slot(api, study):
    participant = take_part(study, "P1", answers=2)
    batch = participant.batch
    response = api.post(f"/api/studies/{study.pk}/participants/{participant.pk}/mark/",
                        {"status": "returned", "note": "returned on Prolific"}, format="json")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["status_note"]) == ("returned", "returned on Prolific")
    batch.refresh_from_db()
    assert batch.active_count == 0
    refused = api.post(f"/api/studies/{study.pk}/participants/{participant.pk}/mark/",
                       {"status": "completed"}, format="json")
    assert refused.status_code == 400 and "completed" in str(refused.json()["status"])


def test_bulk_marking_is_all_or_nothing(api, study):
    take_part(study, "P1")
    take_part(study, "P2")
    missing = api.post(f"/api/studies/{study.pk}/participants/mark/",
                       {"status": "rejected", "external_ids": ["P1", "NOPE", "P2"]}, format="json")
    assert missing.status_code == 400
    assert "has no participant(s) NOPE; nothing was changed" in missing.json()["external_ids"][0]
    assert set(Participant.objects.values_list("status", flat=True)) == {"completed"}
    done = api.post(f"/api/studies/{study.pk}/participants/mark/",
                    {"status": "rejected", "external_ids": ["P1", "P2"]}, format="json").json()
    assert done["marked"] == 2 and {p["status"] for p in done["participants"]} == {"rejected"}
    assert sum(Batch.objects.filter(study=study).values_list("completed_count", flat=True)) == 0


def test_participants_of_another_study_are_not_reachable_through_this_one(api, study, demo_dataset, owner):
    from annotation.studies.services import study_create

    second = study_create(dataset=demo_dataset, name="second", base_claims=4, batch_size=4,
                          raters_per_batch=1, seed=1, owner=owner, status="open")
    stranger = take_part(second, "P1", answers=1)
    assert api.get(f"/api/studies/{study.pk}/participants/{stranger.pk}/").status_code == 404
    assert api.post(f"/api/studies/{study.pk}/participants/{stranger.pk}/mark/",
                    {"status": "returned"}, format="json").status_code == 404
