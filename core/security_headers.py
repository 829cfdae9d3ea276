"""A Content-Security-Policy on every response (Django 5.2 has none built in).

The policy (`FRAMELAB_CONTENT_SECURITY_POLICY` in the base settings, env `FRAMELAB_CSP`) allows scripts, styles,
fonts, images and fetches from the platform's own origin only, and no inline script or style:
the pages keep their scripts and styles in static files (platform/static/), Swagger UI included
(platform/templates/api/swagger_ui.html), and Django's admin needs nothing inline either.
`data:` images are allowed for the icons in Swagger UI's style sheet. A page cannot be framed
(`frame-ancestors 'none'`, as X-Frame-Options: DENY says for older browsers) and forms post only
to the platform.

SVG files are documents of their own when opened directly, and matplotlib's carry an inline
<style>: they get `SVG_POLICY`, which allows that style but runs no script (sandbox).

A view that sets its own Content-Security-Policy keeps it. With
`FRAMELAB_CSP_REPORT_ONLY` the header is sent as Content-Security-Policy-Report-Only, so that a
deployment can try a stricter or looser policy without breaking pages.
"""
from __future__ import annotations

from django.conf import settings

SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
HEADERS = ("Content-Security-Policy", "Content-Security-Policy-Report-Only")


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.FRAMELAB_CONTENT_SECURITY_POLICY
        if not policy or any(header in response for header in HEADERS):
            return response
        if response.get("Content-Type", "").startswith("image/svg+xml"):
            policy = SVG_POLICY
        header = HEADERS[1] if settings.FRAMELAB_CSP_REPORT_ONLY else HEADERS[0]
        response[header] = policy
        return response
