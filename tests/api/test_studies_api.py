"""Studies: create through the design service, edit what may change, open/pause/close, progress."""
import pytest

from annotation.models import Batch, BatchItem, Study

from .conftest import results, take_part

pytestmark = pytest.mark.django_db


def create(api, source, **fields):
    body = {"dataset": source.pk, "name": "replication", "base_claims": 8, "batch_size": 6,
            "raters_per_batch": 3, "seed": 11, **fields}
    return api.post("/api/studies/", body, format="json")


def test_create_designs_a_balanced_study_owned_by_the_caller(api, owner, demo_dataset):
    response = create(api, demo_dataset, framings=["original", "consensus", "emotional"],
                      attention_checks=[{"text": "Fire is cold.", "expected_accept": False,
                                         "position": 2}])
    assert response.status_code == 201, response.content
    body = response.json()
    study = Study.objects.get(pk=body["id"])
    assert response["Location"] == body["url"] and body["url"].endswith(f"/api/studies/{study.pk}/")
    assert study.owner == owner and body["owner"] == {"id": owner.pk, "username": "olivia"}
    assert (body["status"], body["base_claim_count"], body["framings"]) == (
        "draft", 8, ["original", "consensus", "emotional"])
    # 8 claims x 3 framings = 24 items in batches of 6: 4 batches, each with the check at 2.
    assert body["batch_count"] == Batch.objects.filter(study=study).count() == 4
    assert body["attention_checks"] == [{"text": "Fire is cold.", "expected_accept": False, "position": 2}]
    assert BatchItem.objects.filter(batch__study=study, attention_check__isnull=False,
                                    position=2).count() == 4
    assert body["entry_url"].endswith(f"/s/{study.pk}/")
    assert len(body["completion_code"]) > 4  # a random one, since none was given
    assert [s["id"] for s in results(api.get("/api/studies/"))] == [study.pk]


def test_create_refuses_bad_designs_with_a_reason(api, demo_dataset, study):
    infeasible = create(api, demo_dataset, base_claims=1000)
    assert infeasible.status_code == 400
    assert "1000" in infeasible.json()["non_field_errors"][0]
    duplicate = create(api, demo_dataset, name="pilot")
    assert duplicate.status_code == 400 and "already exists" in duplicate.json()["name"][0]
    bad = create(api, demo_dataset, framings=["dramatic"], batch_size=0, dataset=999999)
    assert bad.status_code == 400 and {"framings", "batch_size", "dataset"} <= set(bad.json())
    assert not Study.objects.filter(name="replication").exists()


def test_list_filters(api, study, demo_dataset):
    assert [s["id"] for s in results(api.get("/api/studies/", {"status": "open"}))] == [study.pk]
    assert results(api.get("/api/studies/", {"status": "closed"})) == []
    assert results(api.get("/api/studies/", {"dataset": demo_dataset.pk + 1})) == []
    bad = api.get("/api/studies/", {"status": "finished"})
    assert bad.status_code == 400 and "finished" in bad.json()["status"][0]


def test_update_changes_editable_fields_only(api, study):
    response = api.patch(f"/api/studies/{study.pk}/", {
        "name": "pilot 2", "completion_code": "C0DE", "time_limit_minutes": 45,
        "instructions": "Read carefully.", "batch_size": 99, "seed": 1}, format="json")
    assert response.status_code == 200, response.content
    study.refresh_from_db()
    assert (study.name, study.completion_code, study.time_limit_minutes, study.instructions) == (
        "pilot 2", "C0DE", 45, "Read carefully.")
    assert (study.batch_size, study.seed) == (6, 7)  # the design never changes
    assert api.patch(f"/api/studies/{study.pk}/", {"time_limit_minutes": 0},
                     format="json").status_code == 400
    assert api.put(f"/api/studies/{study.pk}/", {}, format="json").status_code == 405


def test_what_participants_read_is_fixed_once_someone_entered(api, study):
    take_part(study, "P1", answers=1)
    refused = api.patch(f"/api/studies/{study.pk}/", {"question_accurate": "True?",
                                                      "completion_url": "https://example.org/done"},
                        format="json")
    assert refused.status_code == 400
    assert "participants have already seen this text" in refused.json()["question_accurate"][0]
    study.refresh_from_db()
    assert study.question_accurate == "Is this accurate?" and study.completion_url == ""
    # Sending the same text back is fine.
    assert api.patch(f"/api/studies/{study.pk}/", {"question_accurate": "Is this accurate?"},
                     format="json").status_code == 200


def test_open_pause_close(api, study):
    url = f"/api/studies/{study.pk}/"
    assert api.post(url + "pause/").json()["status"] == "paused"
    assert api.post(url + "pause/").json()["status"] == "paused"  # again: no change, no error
    assert api.post(url + "open/").json()["status"] == "open"
    assert api.post(url + "close/").json()["status"] == "closed"
    conflict = api.post(url + "pause/")
    assert conflict.status_code == 409 and "closed study cannot be paused" in conflict.json()["detail"]
    study.refresh_from_db()
    assert study.status == "closed"
    assert api.post(url + "open/").json()["status"] == "open"


def test_progress_counts_batches_and_participants(api, study):
    take_part(study, "P1")  # completes all 7 items (6 claims and the check)
    take_part(study, "P2", answers=2)
    progress = api.get(f"/api/studies/{study.pk}/progress/").json()
    assert progress["status"] == "open"
    assert (progress["slots"], progress["completed"], progress["active"]) == (16, 1, 1)
    assert progress["judgments"] == 9
    assert progress["median_seconds_per_item"] > 0
    assert progress["participants_by_status"]["completed"] == 1
    assert progress["participants_by_status"]["active"] == 1
    assert progress["participants_by_status"]["returned"] == 0
    assert len(progress["batches"]) == 8
    assert sum(b["completed_count"] for b in progress["batches"]) == 1
