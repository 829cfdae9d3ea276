"""Who reaches what: anonymous clients and participants nothing, another researcher none of
a study's data (404, as if it did not exist), a collaborator everything but sharing."""
import pytest
from django.test import Client

from annotation.models import Participant, Study

from .conftest import make_user, results, take_part, token_client

pytestmark = pytest.mark.django_db


def study_urls(study, participant):
    base = f"/api/studies/{study.pk}/"
    return [
        ("get", base, None),
        ("patch", base, {"completion_code": "NEW"}),
        ("post", base + "open/", None),
        ("post", base + "pause/", None),
        ("post", base + "close/", None),
        ("get", base + "progress/", None),
        ("get", base + "collaborators/", None),
        ("post", base + "collaborators/", {"username": "oscar"}),
        ("delete", base + "collaborators/carla/", None),
        ("get", base + "participants/", None),
        ("get", base + f"participants/{participant.pk}/", None),
        ("post", base + f"participants/{participant.pk}/mark/", {"status": "returned"}),
        ("post", base + "participants/mark/", {"status": "returned", "external_ids": ["P1"]}),
        ("get", f"/api/judgments/{participant.judgments.first().pk}/", None),
    ]


def call(client, method, url, body):
    return getattr(client, method)(url, body, format="json") if body else getattr(client, method)(url)


def test_anonymous_clients_get_401_everywhere(anonymous, study):
    participant = take_part(study, "P1", answers=2)
    urls = study_urls(study, participant) + [
        ("get", "/api/datasets/", None), ("get", f"/api/datasets/{study.dataset_id}/", None),
        ("get", "/api/imports/", None), ("get", "/api/studies/", None),
        ("post", "/api/studies/", {"name": "x"}), ("get", "/api/judgments/", None),
        ("delete", "/api/auth/token/", None),
    ]
    for method, url, body in urls:
        response = call(anonymous, method, url, body)
        assert response.status_code == 401, (method, url, response.status_code)
        assert response["WWW-Authenticate"] == "Token"
    participant.refresh_from_db()
    assert participant.status == Participant.Status.ACTIVE  # nothing was marked


def test_a_participant_session_does_not_reach_the_api(client: Client, study):
    # The rater pages set a session for the participant; it is no login.
    response = client.get(f"/s/{study.pk}/", {"PROLIFIC_PID": "P9", "STUDY_ID": "S", "SESSION_ID": "X"})
    assert response.status_code == 302
    client.get(response["Location"], follow=True)
    assert client.get("/api/studies/").status_code in (401, 403)
    assert client.get(f"/api/studies/{study.pk}/participants/").status_code in (401, 403)


def test_another_researcher_gets_404_for_everything_in_the_study(other_api, study):
    participant = take_part(study, "P1", answers=2)
    for method, url, body in study_urls(study, participant):
        response = call(other_api, method, url, body)
        assert response.status_code == 404, (method, url, response.status_code, response.content)
    study.refresh_from_db()
    assert study.status == Study.Status.OPEN and study.completion_code != "NEW"
    assert list(study.collaborators.values_list("username", flat=True)) == ["carla"]
    participant.refresh_from_db()
    assert participant.status == Participant.Status.ACTIVE
    # Nor does it show up in any list.
    assert results(other_api.get("/api/studies/")) == []
    assert results(other_api.get("/api/judgments/")) == []
    assert other_api.get("/api/judgments/", {"study": study.pk}).status_code == 404


def test_a_collaborator_reads_and_manages_but_does_not_share(collaborator_api, study, other):
    take_part(study, "P1", answers=2)
    assert [s["id"] for s in results(collaborator_api.get("/api/studies/"))] == [study.pk]
    assert collaborator_api.get(f"/api/studies/{study.pk}/progress/").status_code == 200
    assert len(results(collaborator_api.get("/api/judgments/", {"study": study.pk}))) == 2
    assert collaborator_api.post(f"/api/studies/{study.pk}/pause/").json()["status"] == "paused"
    marked = collaborator_api.post(f"/api/studies/{study.pk}/participants/mark/",
                                   {"status": "returned", "external_ids": ["P1"]}, format="json")
    assert marked.status_code == 200 and marked.json()["marked"] == 1
    # Sharing is the owner's.
    refused = collaborator_api.post(f"/api/studies/{study.pk}/collaborators/", {"username": "oscar"},
                                    format="json")
    assert refused.status_code == 403
    assert collaborator_api.delete(f"/api/studies/{study.pk}/collaborators/carla/").status_code == 403
    assert set(study.collaborators.values_list("username", flat=True)) == {"carla"}


def test_the_owner_shares_and_unshares(api, other_api, study, other):
    response = api.post(f"/api/studies/{study.pk}/collaborators/", {"username": "oscar"}, format="json")
    assert response.status_code == 200
    assert [u["username"] for u in response.json()] == ["carla", "oscar"]
    assert other_api.get(f"/api/studies/{study.pk}/").status_code == 200
    assert api.delete(f"/api/studies/{study.pk}/collaborators/oscar/").status_code == 200
    assert other_api.get(f"/api/studies/{study.pk}/").status_code == 404
    # Errors say what is wrong.
    assert api.delete(f"/api/studies/{study.pk}/collaborators/oscar/").status_code == 404
    unknown = api.post(f"/api/studies/{study.pk}/collaborators/", {"username": "nobody"}, format="json")
    assert unknown.status_code == 400 and "no active user named 'nobody'" in unknown.json()["username"][0]
    itself = api.post(f"/api/studies/{study.pk}/collaborators/", {"username": "olivia"}, format="json")
    assert itself.status_code == 400 and "owns this study" in itself.json()["username"][0]


def test_a_superuser_sees_and_shares_every_study(study):
    admin = token_client(make_user("root", is_superuser=True))
    assert [s["id"] for s in results(admin.get("/api/studies/"))] == [study.pk]
    assert admin.post(f"/api/studies/{study.pk}/collaborators/", {"username": "carla"},
                      format="json").status_code == 200


def test_an_inactive_researcher_is_refused(study, owner):
    client = token_client(owner)
    owner.is_active = False
    owner.save()
    assert client.get("/api/studies/").status_code == 401


def test_session_login_works_like_a_token(client: Client, study, owner):
    client.force_login(owner)
    assert client.get("/api/studies/").json()["count"] == 1
    # Writes from a session need the CSRF token, as every form of the site does.
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(owner)
    assert csrf_client.post(f"/api/studies/{study.pk}/pause/").status_code == 403
