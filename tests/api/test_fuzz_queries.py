"""A small schema-driven fuzz run inside the test suite: every GET operation of the OpenAPI
schema, called by a researcher with query parameters drawn from the schema (and with
values outside it), must never answer a server error. The full run with schemathesis is
a documented command (README, "Fuzzing the API against its schema")."""
import re

import pytest
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import take_part

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

ANY_TEXT = st.one_of(st.text(max_size=12), st.sampled_from(["", "-1", "0", "1", "true", "none",
                                                              "all", "9" * 30, "1.5", "a,b"]))


def value_strategy(schema: dict):
    """Values the schema allows, mixed with values it does not."""
    item = schema.get("items", schema)
    allowed = []
    if "enum" in item:
        allowed.append(st.sampled_from([v for v in item["enum"] if v is not None]))
    if item.get("type") == "integer":
        allowed.append(st.integers(min_value=-5, max_value=10**6).map(str))
    if item.get("type") == "number":
        allowed.append(st.floats(allow_nan=False, allow_infinity=False, width=32).map(str))
    if item.get("type") == "boolean":
        allowed.append(st.sampled_from(["true", "false"]))
    if schema.get("type") == "array":
        inner = st.one_of(*allowed) if allowed else ANY_TEXT
        allowed.append(st.lists(inner, max_size=3).map(",".join))
    return st.one_of(*allowed, ANY_TEXT) if allowed else ANY_TEXT


def get_operations():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, methods in schema["paths"].items():
        if "get" in methods:
            yield path, [p for p in methods["get"].get("parameters", []) if p["in"] == "query"]


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_no_query_makes_a_server_error(api, study, data):
    if not study.participants.exists():
        take_part(study, "P1", answers=3)
    ids = {"id": study.pk, "participant_pk": study.participants.first().pk}
    for path, parameters in get_operations():
        url = re.sub(r"\{(\w+)\}", lambda m: str(ids.get(m.group(1), 1)), path)
        query = {}
        for parameter in parameters:
            if data.draw(st.booleans()):
                query[parameter["name"]] = data.draw(value_strategy(parameter["schema"]))
        response = api.get(url, query)
        assert response.status_code < 500, (url, query, response.status_code)
        if response.streaming:  # a failure half-way through a file must show too
            b"".join(response.streaming_content)
