"""Response headers (issue 12, finding 10): participant pages are never stored by a browser or
proxy; every response carries a Content-Security-Policy that allows no inline code, and the
pages need none; the production settings send HSTS and pass `check --deploy` silently."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse

from annotation import urls as annotation_urls
from annotation.models import Dataset, Participant, Study
from annotation.studies.services import study_create

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_DIRS = [ROOT / "platform" / "templates", *ROOT.glob("*/templates")]
STRONG = "k7Qm2vX9pL4tR8wZ1nB6cF3hJ5yD0sG-aE_uK2xV9qM4oT7rW1iN8bC3fH6jL0pS"


def directives(response) -> dict[str, str]:
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


@pytest.fixture
def study(db):
    call_command("load_demo", no_user=True)
    return study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name="headers",
                        base_claims=8, batch_size=6, raters_per_batch=2, seed=7,
                        status=Study.Status.OPEN, completion_code="DONE", completion_url="")


def test_every_participant_page_says_no_store(client, study):
    seen = {}
    entry = client.get(f"/s/{study.pk}/", {"PROLIFIC_PID": "P1", "STUDY_ID": "S", "SESSION_ID": "X"})
    seen["study-entry"] = entry
    participant = Participant.objects.get(study=study, external_id="P1")
    kwargs = {"study_id": study.pk, "token": participant.token}
    seen["participant-home"] = client.get(reverse("annotation:participant-home", kwargs=kwargs))
    seen["participant-consent"] = client.get(reverse("annotation:participant-consent", kwargs=kwargs))
    consented = client.post(reverse("annotation:participant-consent", kwargs=kwargs), {"consent": "yes"})
    assert "no-store" in consented["Cache-Control"]
    seen["participant-instructions"] = client.get(
        reverse("annotation:participant-instructions", kwargs=kwargs))
    item_url = reverse("annotation:participant-item", kwargs={**kwargs, "position": 1})
    seen["participant-item"] = client.get(item_url)
    assert seen["participant-item"].status_code == 200
    seen["participant-done"] = client.get(reverse("annotation:participant-done", kwargs=kwargs))
    seen["ask-id"] = client.get(f"/s/{study.pk}/")  # the page that asks for an id
    for name, response in seen.items():
        assert "no-store" in response.get("Cache-Control", ""), (name, response.headers)
        assert "private" in response["Cache-Control"], name

    # Every participant route is covered above: a new one must be added (and wrapped).
    participant_routes = {p.name for p in annotation_urls.urlpatterns if str(p.pattern).startswith("s/")}
    assert participant_routes <= set(seen), participant_routes - set(seen)


def test_researcher_pages_api_and_participant_pages_carry_the_policy(client, study, django_user_model):
    study.owner = django_user_model.objects.create_user("rita", password="a-long-pass-phrase")
    study.save()
    client.login(username="rita", password="a-long-pass-phrase")
    for url in ["/accounts/login/", reverse("annotation:dataset-list"), reverse("annotation:study-list"),
                reverse("annotation:study-detail", args=[study.pk]), "/api/datasets/", "/api/docs/",
                "/method/", "/healthz", f"/s/{study.pk}/", "/admin/login/"]:
        response = client.get(url)
        assert response.status_code == 200, url
        policy = directives(response)
        assert policy["default-src"] == "default-src 'self'", url
        assert policy["script-src"] == "script-src 'self'", url
        assert policy["style-src"] == "style-src 'self'", url
        assert policy["frame-ancestors"] == "frame-ancestors 'none'", url
        assert "unsafe" not in response["Content-Security-Policy"], url


def test_svg_responses_get_their_own_policy_and_views_may_set_theirs():
    from core.security_headers import SVG_POLICY, ContentSecurityPolicyMiddleware

    request = RequestFactory().get("/x.svg")
    svg = ContentSecurityPolicyMiddleware(lambda r: HttpResponse(b"<svg/>", content_type="image/svg+xml"))
    assert svg(request)["Content-Security-Policy"] == SVG_POLICY
    assert "sandbox" in SVG_POLICY and "script" not in SVG_POLICY

    def own(request):
        response = HttpResponse("x")
        response["Content-Security-Policy"] = "default-src 'none'"
        return response

    assert ContentSecurityPolicyMiddleware(own)(request)["Content-Security-Policy"] == "default-src 'none'"


def test_report_only_mode_and_switching_off(settings):
    from core.security_headers import ContentSecurityPolicyMiddleware

    request = RequestFactory().get("/")
    middleware = ContentSecurityPolicyMiddleware(lambda r: HttpResponse("x"))
    settings.FRAMELAB_CSP_REPORT_ONLY = True
    response = middleware(request)
    assert "Content-Security-Policy" not in response
    assert "script-src 'self'" in response["Content-Security-Policy-Report-Only"]
    settings.FRAMELAB_CONTENT_SECURITY_POLICY = ""
    assert "Content-Security-Policy-Report-Only" not in middleware(request)


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/(?:ld\+)?json\")[^>]*>", re.I), "inline <script>"),
    (re.compile(r"<style[\s>]", re.I), "<style> element"),
    (re.compile(r"\sstyle=", re.I), "style attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "event handler attribute"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
]


def test_no_template_has_inline_script_or_style():
    found = []
    for folder in TEMPLATE_DIRS:
        for template in folder.rglob("*.html"):
            text = template.read_text()
            text = re.sub(r"{% comment %}.*?{% endcomment %}", "", text, flags=re.S)
            for pattern, what in INLINE:
                for match in pattern.finditer(text):
                    found.append(f"{template.relative_to(ROOT)}: {what}: {match.group(0)!r}")
    assert found == []


def test_swagger_ui_loads_its_start_up_script_and_styles_from_files(client, db):
    page = client.get("/api/docs/")
    html = page.content.decode()
    assert "<style" not in html
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", html))
    script_url = re.search(r'<script src="([^"]*script=[^"]*)"', html).group(1).replace("&amp;", "&")
    script = client.get(script_url)
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()
    assert "validatorUrl" in script.content.decode()  # no badge from swagger.io
    assert client.get("/static/swagger-ui-page.css").status_code == 200


CHECK = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({"hsts": settings.SECURE_HSTS_SECONDS, "sub": settings.SECURE_HSTS_INCLUDE_SUBDOMAINS,
                  "redirect": settings.SECURE_SSL_REDIRECT}))
"""


def production(code_or_args, tmp_path, **env_overrides):
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "DJANGO_SECRET_KEY", "FRAMELAB_VAR_DIR", "DJANGO_SETTINGS_MODULE",
                        "DJANGO_HSTS_SECONDS", "DJANGO_SSL_REDIRECT", "CACHE_URL"}}
    env.update(PYTHONPATH=f"{ROOT / 'platform'}:{ROOT}", DJANGO_SETTINGS_MODULE="config.settings.production",
               DJANGO_SECRET_KEY=STRONG, FRAMELAB_VAR_DIR=str(tmp_path), **env_overrides)
    command = [sys.executable, "-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_production_sends_hsts_for_a_year_by_default_and_it_can_be_changed(tmp_path):
    import json

    default = production(CHECK, tmp_path)
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout) == {"hsts": 31_536_000, "sub": True, "redirect": True}
    changed = production(CHECK, tmp_path, DJANGO_HSTS_SECONDS="300",
                         DJANGO_HSTS_INCLUDE_SUBDOMAINS="false", DJANGO_SSL_REDIRECT="false")
    assert json.loads(changed.stdout) == {"hsts": 300, "sub": False, "redirect": False}


def test_check_deploy_reports_nothing_with_production_settings_and_a_strong_key(tmp_path):
    result = production([sys.executable, "manage.py", "check", "--deploy"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout, result.stdout + result.stderr
    assert "WARNING" not in result.stderr + result.stdout
