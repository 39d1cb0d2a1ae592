"""Shared pieces of the OpenAPI description."""

from __future__ import annotations

import inspect
from typing import Any

from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.schemas.inspectors import DefaultSchema


class ErrorSerializer(serializers.Serializer):
    """Every error: `{"detail", "code"}`, plus `errors` per field for validation errors."""

    detail = serializers.CharField()
    code = serializers.CharField()
    errors = serializers.DictField(required=False, help_text="Per-field messages, for validation errors.")


_DESCRIPTIONS = {
    400: "Invalid input; nothing was changed.",
    401: "Missing, invalid, expired or revoked token.",
    404: "Not found.",
    406: "The Accept header asks for a format this operation cannot produce.",
    409: "Conflict.",
    413: "Request body too large.",
    415: "Unsupported Content-Type.",
    429: "Too many requests; see Retry-After.",
    502: "The upstream LLM answered with an error or a malformed body.",
    503: "A dependency (Redis or the upstream LLM) is unavailable; see Retry-After.",
    504: "The upstream LLM did not answer in time.",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    return {status: OpenApiResponse(ErrorSerializer, description=_DESCRIPTIONS[status]) for status in statuses}


def document_paths_without_optional_slash(endpoints: list[tuple]) -> list[tuple]:
    """Paths routed as `^admin/login/?$` answer with and without the slash; document them as the
    README and docs/api.md write them, without it."""
    return [
        (path.rstrip("/") if regex.endswith("/?$") else path, regex, method, callback)
        for path, regex, method, callback in endpoints
    ]


def _error_response(status: int) -> dict[str, object]:
    return {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def add_common_error_responses(result: dict, generator: object, request: object, public: bool) -> dict:
    """Documents the errors any operation can answer with, so each view lists only its own: 400/413/415 for
    a body, 401 where a token is needed, 406 for an Accept we cannot serve, 503 when Redis is down."""
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            statuses = {406}
            if "requestBody" in operation:
                statuses |= {400, 413, 415}
            if {} not in operation.get("security", [{}]):
                statuses |= {401}
            if path != "/health/live":
                statuses |= {503}
            for status in statuses:
                operation["responses"].setdefault(str(status), _error_response(status))
    return result


class ViewOwnSchemaGenerator(SchemaGenerator):
    """Gives every view instance it describes a schema inspector of its own.

    A view class's `schema` is one inspector shared by every instance (drf-spectacular's `@extend_schema` puts one
    on each class it decorates), and reading it sets that shared inspector's `view`, from the class to None: two
    generations at once, in two threads, would describe one thread's view with another's, or fail."""

    def create_view(self, callback: Any, method: str, request: Any = None) -> Any:
        view = super().create_view(callback, method, request)
        # The class's inspector, not what reading `view.schema` gives (which would set its `view`).
        shared = inspect.getattr_static(view, "schema")
        # DefaultSchema makes a new inspector on every read already.
        if not isinstance(shared, DefaultSchema) and view not in shared.instance_schemas:
            self._set_schema_to_view(view, type(shared)())
        return view
