"""The OpenAPI schema generator every API view uses (settings: DEFAULT_SCHEMA_CLASS).

drf-spectacular's schema, with the answers every endpoint can give written down: 401 where a
login is needed, 429 where a rate limit applies. Both carry the one error body of the API.
"""
from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer: `{"detail": "..."}`."""

    detail = serializers.CharField()


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, with the answers every endpoint can give written down:
    401 where a login is needed, 429 where a rate limit applies."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        extra = {}
        if not any(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            extra["401"] = "Not signed in: no session, or no valid `Authorization: Token <key>`."
        if self.view.get_throttles():
            extra["429"] = "Too many requests; `Retry-After` says how many seconds to wait."
        for code, description in extra.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(ErrorSerializer, description=description), code,
                    media_types=["application/json"], direction=direction)
        return responses
