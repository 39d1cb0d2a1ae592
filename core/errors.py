"""One place that turns every error into the same JSON shape: `{"detail": str, "code": str}` (+ `errors` for
validation). Views contain no try/except ladders; they raise, and this answers."""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

import redis
from django.http import HttpRequest, JsonResponse
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ExecAbortError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.exceptions import DependencyUnavailable, ServiceError, StorageError

logger = logging.getLogger(__name__)

REDIS_RETRY_AFTER_SECONDS = 5
# Errors Redis answers with while it cannot take writes for a while (a failover, a cluster slot moving, memory
# full): an outage, unlike any other error reply.
_OUTAGE_REPLIES = (AskError, ClusterDownError, ExecAbortError, OutOfMemoryError, ReadOnlyError, TryAgainError)


def as_service_error(exc: BaseException) -> ServiceError | None:
    """Our own error, or a Redis failure as the 503 (Redis unreachable or refusing writes for a while) or 500 (a
    command or script that failed in a Redis that works) it answers with; None for anything else."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, ResponseError) and not isinstance(exc, _OUTAGE_REPLIES):
        # Redis answered: retrying will fail the same way. The reply names the command or script line, no data.
        logger.error("redis command failed: %s: %s", type(exc).__name__, exc)
        return StorageError("A storage command failed; this request was not completed.")
    # A slot no Redis Cluster node serves (a primary failing over) is an outage too; other RedisClusterExceptions
    # (keys of one command in several slots) are bugs, and stay 500s.
    if isinstance(exc, redis.RedisError | SlotNotCoveredError):
        logger.error("redis error: %s", type(exc).__name__)
        return DependencyUnavailable(
            "Redis is unavailable; try again shortly.", retry_after=REDIS_RETRY_AFTER_SECONDS, code="redis_unavailable"
        )
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    error = as_service_error(exc)
    if error is not None:
        return _service_error_response(error)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    response.data = _error_body(exc, response.data)
    if isinstance(exc, exceptions.NotAuthenticated):
        hint = _authorization_header_problem(context.get("request"))
        if hint:
            response.data["detail"] = hint
    return response


def _authorization_header_problem(request: Any) -> str | None:
    """Why an Authorization header that was sent authenticated nothing, when its form is the reason: DRF would
    say that no credentials were provided."""
    header = getattr(request, "META", {}).get("HTTP_AUTHORIZATION", "").strip()
    if not header:
        return None
    parts = header.split()
    expected = "send `Authorization: Bearer <token>` (an access token from POST /admin/login, or an API key)"
    if len(parts) == 1:
        return f"The Authorization header has no `Bearer` prefix: {expected}."
    if parts[0] == "Bearer":
        return None
    if parts[0].lower() == "bearer":
        return f"The Authorization header's scheme must be written `Bearer`, not `{parts[0]}`: {expected}."
    scheme = parts[0] if len(parts[0]) <= 20 and parts[0].isalnum() else "another"
    return f"The Authorization header uses the `{scheme}` scheme, which this API does not take: {expected}."


def _retry_after_headers(exc: ServiceError) -> dict[str, str]:
    if exc.retry_after is None:
        return {}
    return {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}


def _service_error_response(exc: ServiceError) -> Response:
    return Response({"detail": exc.detail, "code": exc.code}, status=exc.status_code, headers=_retry_after_headers(exc))


def _error_body(exc: Exception, data: Any) -> dict[str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        return {"detail": _first_message(data) or "Invalid input.", "code": "invalid", "errors": data}
    if isinstance(data, dict) and "detail" in data:
        # SimpleJWT puts the code beside the detail and adds a `messages` list we do not repeat.
        code = data.get("code") or _code_of(exc)
        return {"detail": str(data["detail"]), "code": str(code)}
    return {"detail": str(data), "code": _code_of(exc)}


def _code_of(exc: Exception) -> str:
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        if isinstance(codes, str):
            return codes
    return "error"


def _first_message(data: Any) -> str | None:
    """The first human-readable message in a nested validation error, prefixed with its field."""
    if isinstance(data, dict):
        for field, value in data.items():
            message = _first_message(value)
            if message:
                return message if field == "non_field_errors" else f"{field}: {message}"
    elif isinstance(data, list):
        for value in data:
            message = _first_message(value)
            if message:
                return message
    elif data:
        return str(data)
    return None


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=status.HTTP_404_NOT_FOUND)


def json_server_error(request: HttpRequest) -> JsonResponse:
    """Django's last resort, for errors raised outside DRF views (the browser login form, the session
    middleware): our own errors keep their status, and a Redis outage is still a 503."""
    error = as_service_error(sys.exc_info()[1])
    if error is not None:
        body = {"detail": error.detail, "code": error.code}
        return JsonResponse(body, status=error.status_code, headers=_retry_after_headers(error))
    return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)


def json_bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": "Bad request.", "code": "bad_request"}, status=400)


def json_permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": "Permission denied.", "code": "permission_denied"}, status=403)


def json_csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    return JsonResponse({"detail": "CSRF verification failed.", "code": "csrf_failed"}, status=403)
