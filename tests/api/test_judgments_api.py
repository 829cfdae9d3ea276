"""Judgments: real answers recorded through the rater services, paged and filtered."""
import pytest

from annotation.models import Judgment

from .conftest import results, take_part

pytestmark = pytest.mark.django_db


def accept_true_claims(item):
    """A rater who accepts exactly the true claims (and answers checks correctly)."""
    if item.attention_check_id:
        return item.attention_check.expected_accept
    return item.framed_claim.base_claim.true_label == "SUPPORTS"


@pytest.fixture
def answered(study):
    """Three raters' full sessions (6 claims and one check each); P3 later returned."""
    from annotation.studies.assignment import participant_mark

    take_part(study, "P1", accept=accept_true_claims)
    take_part(study, "P2", accept=lambda item: True, confidence=2)
    returned = take_part(study, "P3", accept=lambda item: False)
    participant_mark(participant=returned, status="returned")
    return study


def test_judgments_carry_the_item_and_the_answer(api, answered):
    rows = results(api.get("/api/judgments/", {"study": answered.pk, "participant": "P1"}))
    assert [row["position"] for row in rows] == [1, 2, 4, 5, 6, 7]  # claims only, by default
    for row in rows:
        judgment = Judgment.objects.select_related("item__framed_claim__base_claim").get(pk=row["id"])
        framed = judgment.item.framed_claim
        assert row["full_claim_id"] == f"{framed.base_claim.external_id}:{framed.framing}"
        assert (row["framing"], row["true_label"], row["text"]) == (
            framed.framing, framed.base_claim.true_label, framed.text)
        # P1 accepts exactly the true claims.
        assert row["accurate_response"] == row["true_label"]
        assert row["accept"] is (row["true_label"] == "SUPPORTS")
        assert (row["confidence"], row["familiarity"], row["response_time_ms"]) == (4, 2, 4000)
        assert row["participant_status"] == "completed" and row["study"] == answered.pk


def test_pagination_walks_every_judgment_once(api, answered):
    first = api.get("/api/judgments/", {"page_size": 5, "include_attention_checks": "true"}).json()
    assert first["count"] == 21 and len(first["results"]) == 5
    seen, page = [], first
    while True:
        seen += [row["id"] for row in page["results"]]
        if not page["next"]:
            break
        page = api.get(page["next"]).json()
    assert sorted(seen) == sorted(Judgment.objects.values_list("pk", flat=True))
    assert len(seen) == len(set(seen)) == 21
    assert api.get("/api/judgments/", {"page": 99}).status_code == 404
    bad_size = api.get("/api/judgments/", {"page_size": "ten"})
    assert bad_size.status_code == 400 and "'ten' is not a page size" in bad_size.json()["page_size"][0]


def test_filters(api, answered):
    def count(**params):
        return api.get("/api/judgments/", {"study": answered.pk, **params}).json()["count"]

    claims = Judgment.objects.filter(item__framed_claim__isnull=False)
    assert count() == 18
    assert count(include_attention_checks="true") == 21
    for framing in ("original", "consensus"):
        assert count(framing=framing) == claims.filter(item__framed_claim__framing=framing).count()
    assert count(framing="original,consensus") == claims.filter(
        item__framed_claim__framing__in=["original", "consensus"]).count()
    true_claims = claims.filter(item__framed_claim__base_claim__true_label="SUPPORTS").count()
    assert count(truth="SUPPORTS") == count(truth="true") == true_claims
    assert count(truth="false") == 18 - true_claims
    assert count(participant_status="returned") == 6
    assert count(include_excluded="false") == 12
    assert count(participant_status="completed", truth="false", framing="emotional") == claims.filter(
        participant__status="completed", item__framed_claim__base_claim__true_label="REFUTES",
        item__framed_claim__framing="emotional").count()
    bad = api.get("/api/judgments/", {"framing": "dramatic"})
    assert bad.status_code == 400 and "dramatic" in str(bad.json()["framing"])
    assert api.get("/api/judgments/", {"study": "x"}).status_code == 400


def test_a_single_judgment(api, other_api, answered):
    judgment = Judgment.objects.filter(item__attention_check__isnull=False).first()
    row = api.get(f"/api/judgments/{judgment.pk}/").json()
    assert (row["attention_check"], row["framing"], row["full_claim_id"], row["text"]) == (
        True, None, None, "Water is wet.")
    assert other_api.get(f"/api/judgments/{judgment.pk}/").status_code == 404
