"""The API's answers match its OpenAPI schema, and its edges answer like the API (issue 12,
finding 10).

Bugs guarded against: null `full_claim_id` on attention-check judgments and null
`download_url` were not marked nullable in the schema; API paths containing `%0A` got Django's
HTML 404 (the catch-all's `.` does not match a newline); a form-encoded PATCH with an empty
`consent_text` answered 200 (silently ignoring it) despite the schema's minLength; and the
participants' pages must keep `Cache-Control: no-store` (their URL carries the session token).
"""
from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator

from annotation.models import DataExport, Participant
from annotation.studies.assignment import participant_enter

from .conftest import results, take_part

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _allows_null(schema: dict, node: dict) -> bool:
    node = _resolve(schema, node)
    if node.get("nullable"):
        return True
    return any(_allows_null(schema, option) for option in node.get("oneOf", []) + node.get("anyOf", []))


def nulls_not_in_schema(schema: dict, value, node: dict, where: str = "$") -> list[str]:
    """Every place in `value` that is null where `node` (an OpenAPI 3.0 schema) does not allow it."""
    node = _resolve(schema, node)
    if value is None:
        return [] if _allows_null(schema, node) else [where]
    for part in node.get("allOf", []):
        found = nulls_not_in_schema(schema, value, part, where)
        if found:
            return found
    problems = []
    if isinstance(value, dict):
        properties = node.get("properties", {})
        for key, item in value.items():
            if key in properties:
                problems += nulls_not_in_schema(schema, item, properties[key], f"{where}.{key}")
    elif isinstance(value, list) and "items" in node:
        for index, item in enumerate(value):
            problems += nulls_not_in_schema(schema, item, node["items"], f"{where}[{index}]")
    return problems


def response_schema(schema: dict, path: str, method: str = "get", code: str = "200") -> dict:
    return schema["paths"][path][method]["responses"][code]["content"]["application/json"]["schema"]


def test_attention_check_judgments_match_the_schema(api, study, schema):
    take_part(study, "p1")
    response = api.get("/api/judgments/", {"study": study.pk, "include_attention_checks": "true"})
    rows = results(response)
    checks = [row for row in rows if row["attention_check"]]
    assert checks and checks[0]["full_claim_id"] is None and checks[0]["framing"] is None
    assert nulls_not_in_schema(schema, response.json(), response_schema(schema, "/api/judgments/")) == []
    detail = api.get(f"/api/judgments/{checks[0]['id']}/").json()
    assert nulls_not_in_schema(schema, detail, response_schema(schema, "/api/judgments/{id}/")) == []


def test_an_unfinished_export_matches_the_schema(api, study, schema):
    job = DataExport.objects.create(study=study, format="csv")
    body = api.get(f"/api/exports/{job.pk}/").json()
    assert body["download_url"] is None
    assert nulls_not_in_schema(schema, body, response_schema(schema, "/api/exports/{id}/")) == []
    listing = api.get(f"/api/studies/{study.pk}/exports/").json()
    assert nulls_not_in_schema(
        schema, listing, response_schema(schema, "/api/studies/{id}/exports/")) == []


def test_participants_and_studies_match_the_schema(api, study, schema):
    participant_enter(study=study, external_id="consenting")  # no batch yet: nulls
    take_part(study, "p2", answers=1)
    listing = api.get(f"/api/studies/{study.pk}/participants/").json()
    assert any(p["batch_index"] is None for p in listing["results"])
    assert nulls_not_in_schema(
        schema, listing, response_schema(schema, "/api/studies/{id}/participants/")) == []
    studies = api.get("/api/studies/").json()
    assert nulls_not_in_schema(schema, studies, response_schema(schema, "/api/studies/")) == []


def test_the_null_checker_finds_a_null_the_schema_does_not_allow(schema):
    """The check above can fail: a null where the schema has a plain string is reported."""
    node = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string",
                                                                           "nullable": True}}}
    assert nulls_not_in_schema(schema, {"a": None, "b": None}, node) == ["$.a"]


@pytest.mark.parametrize("path", [
    "/api/nothing%0A", "/api/%0A", "/api/studies/1%0A/", "/api/studies/%0D%0A/",
    "/api/judgments/%0A/", "/api/schema/%0A", "/api/a%0Ab/c/",
])
@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_api_paths_with_line_breaks_get_a_json_404(api, path, method):
    response = getattr(api, method)(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    assert "detail" in response.json()


@pytest.mark.parametrize("value", ["", "   ", "\n"])
@pytest.mark.parametrize("encoding", ["json", "multipart", "form"])
def test_patch_refuses_an_empty_consent_text(api, study, value, encoding):
    """In JSON a 400 naming the field; as a form (whose empty fields DRF skipped in a partial
    update, answering 200) a 415: the API's bodies are JSON."""
    url = f"/api/studies/{study.pk}/"
    before = study.consent_text
    if encoding == "form":
        from urllib.parse import urlencode

        response = api.patch(url, urlencode({"consent_text": value}),
                             content_type="application/x-www-form-urlencoded")
    else:
        response = api.patch(url, {"consent_text": value}, format=encoding)
    if encoding == "json":
        assert response.status_code == 400, response.content
        assert "consent_text" in response.json()
    else:
        assert response.status_code == 415, response.content
    study.refresh_from_db()
    assert study.consent_text == before


def test_patch_still_clears_fields_that_may_be_blank(api, study):
    response = api.patch(f"/api/studies/{study.pk}/", {"completion_url": ""}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["completion_url"] == ""


@pytest.mark.parametrize("body, field", [
    ({"name": 0}, "name"), ({"name": "ok", "seed": "7"}, "seed"),
    ({"name": "ok", "status": True}, "status"), ({"name": "ok", "framings": "original"}, "framings"),
    ({"name": "ok", "attention_checks": [{"text": "x", "expected_accept": "yes", "position": 2}]},
     "attention_checks"),
])
def test_json_bodies_must_have_the_schemas_types(api, demo_dataset, body, field):
    """DRF took `0` for a name and `"yes"` for a boolean; the schema says string and boolean."""
    response = api.post("/api/studies/", {"dataset": demo_dataset.pk, "base_claims": 8,
                                          "batch_size": 6, **body}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_query_booleans_are_true_or_false(api, study):
    assert api.get("/api/judgments/", {"include_excluded": "FALSE"}).status_code == 200
    response = api.get("/api/judgments/", {"include_excluded": "1"})
    assert response.status_code == 400 and "include_excluded" in response.json()


def _no_store(response) -> bool:
    return "no-store" in response.get("Cache-Control", "")


def test_every_participant_page_says_no_store(study):
    client = Client()
    entry = client.get(f"/s/{study.pk}/", {"participant": "lab-1"})
    assert entry.status_code == 302 and _no_store(entry)
    assert _no_store(client.get(f"/s/{study.pk}/"))  # the page asking for an id
    assert _no_store(client.get(f"/s/{study.pk}/", {"participant": "=1"}))  # a bad id
    participant = Participant.objects.get(external_id="lab-1")
    kwargs = {"study_id": study.pk, "token": participant.token}
    for name in ("participant-home", "participant-consent"):
        assert _no_store(client.get(reverse(f"annotation:{name}", kwargs=kwargs)))
    client.post(reverse("annotation:participant-consent", kwargs=kwargs), {"consent": "yes"})
    assert _no_store(client.get(reverse("annotation:participant-instructions", kwargs=kwargs)))
    item = client.get(reverse("annotation:participant-item", kwargs={**kwargs, "position": 1}))
    assert item.status_code == 200 and _no_store(item)
    refused = client.post(reverse("annotation:participant-item", kwargs={**kwargs, "position": 1}),
                          {"ticket": "forged"})
    assert refused.status_code == 400 and _no_store(refused)
    assert _no_store(client.get(reverse("annotation:participant-done", kwargs=kwargs)))
