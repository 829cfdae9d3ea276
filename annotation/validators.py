"""Validators shared by the models, the services and the API (no model imports here)."""
from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

COMPLETION_URL_SCHEMES = ("http", "https")
_url = URLValidator(schemes=list(COMPLETION_URL_SCHEMES))


def completion_url_problem(value: str) -> str | None:
    """Why `value` cannot be a study's completion URL, or None when it can (empty included).

    Participants are sent there by a link and a refresh tag on the done page, so it must be an
    absolute http(s) URL: `javascript:`, `data:`, `ftp:` and scheme-relative URLs are refused."""
    if not value:
        return None
    shown = value if len(value) <= 80 else value[:77] + "..."
    scheme = urlsplit(value).scheme.lower() if ":" in value else ""
    if scheme not in COMPLETION_URL_SCHEMES:
        return (f"completion URL {shown!r} must start with http:// or https:// "
                f"(e.g. https://app.prolific.com/submissions/complete?cc=CODE)")
    try:
        _url(value)
    except ValidationError:
        return f"completion URL {shown!r} is not a valid http(s) URL"
    if len(value) > 200:
        return f"completion URL is {len(value)} characters long; at most 200 are kept"
    return None


def validate_completion_url(value: str) -> None:
    problem = completion_url_problem(value)
    if problem:
        raise ValidationError(problem, code="invalid_completion_url")
