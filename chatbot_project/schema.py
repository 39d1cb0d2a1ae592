"""Shared pieces of the OpenAPI description."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()
    errors = serializers.DictField(required=False, help_text="Per-field messages, for validation errors.")


_DESCRIPTIONS = {
    400: "Invalid input; nothing was changed.",
    401: "Missing, invalid, expired or revoked token.",
    404: "Not found.",
    409: "Conflict.",
    413: "Request body too large.",
    429: "Too many requests; see Retry-After.",
    502: "The upstream LLM answered with an error or a malformed body.",
    503: "A dependency (Redis or the upstream LLM) is unavailable; see Retry-After.",
    504: "The upstream LLM did not answer in time.",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    return {status: OpenApiResponse(ErrorSerializer, description=_DESCRIPTIONS[status]) for status in statuses}


def document_paths_without_optional_slash(endpoints: list[tuple]) -> list[tuple]:
    """Paths routed as `^admin/login/?$` answer with and without the slash; document them as the seed
    writes them, without it."""
    return [
        (path.rstrip("/") if regex.endswith("/?$") else path, regex, method, callback)
        for path, regex, method, callback in endpoints
    ]
