"""The OpenAPI schema generates without a warning and validates; the docs pages are served;
rate limits answer 429."""
import pytest
import yaml
from django.core.management import call_command

from .conftest import token_client

pytestmark = pytest.mark.django_db


def test_the_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    # --fail-on-warn turns every warning of drf-spectacular (an untyped field, a name
    # collision, a view it cannot introspect) into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    paths = schema["paths"]
    for path in ("/api/datasets/", "/api/imports/", "/api/studies/", "/api/studies/{id}/open/",
                 "/api/studies/{id}/participants/", "/api/judgments/",
                 "/api/studies/{id}/judgments/export/", "/api/studies/{id}/exports/",
                 "/api/exports/{id}/download/", "/api/studies/{id}/analysis/", "/api/auth/token/"):
        assert path in paths, path
    operations = [op for methods in paths.values() for op in methods.values()]
    assert all(op.get("tags") and op.get("summary") for op in operations)
    judgment_parameters = {p["name"] for p in paths["/api/judgments/"]["get"]["parameters"]}
    assert {"study", "framing", "truth", "participant_status", "include_excluded",
            "page", "page_size"} <= judgment_parameters
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])


def test_schema_and_swagger_ui_are_served(anonymous):
    schema = anonymous.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200 and schema.json()["info"]["title"] == "FrameLab API"
    docs = anonymous.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
    # Swagger UI comes from the platform's own static files: it works offline.
    assert b"/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs.content
    assert b"cdn.jsdelivr" not in docs.content
    script = anonymous.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert script.status_code == 200


def test_unknown_api_paths_answer_json(api, anonymous):
    for client in (api, anonymous):
        response = client.get("/api/studies/not-a-number/")
        assert response.status_code == 404 and "/api/docs/" in response.json()["detail"]


def test_password_attempts_are_limited(anonymous, owner, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "token": "3/minute"}}
    wrong = [anonymous.post("/api/auth/token/", {"username": "olivia", "password": "guess"}).status_code
             for _ in range(3)]
    assert wrong == [400, 400, 400]
    blocked = anonymous.post("/api/auth/token/", {"username": "olivia", "password": "pw-olivia"})
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0


def test_a_token_from_the_api_and_from_the_command(anonymous, owner, capsys):
    response = anonymous.post("/api/auth/token/", {"username": "olivia", "password": "pw-olivia"})
    assert response.status_code == 200
    key = response.json()["token"]
    call_command("drf_create_token", "olivia")
    assert key in capsys.readouterr().out  # the same token: the command shows it
    anonymous.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert anonymous.get("/api/studies/").status_code == 200
    assert anonymous.delete("/api/auth/token/").status_code == 204
    assert anonymous.get("/api/studies/").status_code == 401


def test_researchers_are_limited_per_user(owner, other, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "5/minute"}}
    client = token_client(owner)
    codes = [client.get("/api/datasets/").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    assert token_client(other).get("/api/datasets/").status_code == 200  # counted apart
