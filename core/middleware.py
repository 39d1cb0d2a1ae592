"""One log line per request: request id, method, path, status, duration, client address. Never the query string
or headers, which may carry credentials."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from core import tracing
from core.http import client_ip

logger = logging.getLogger("chatbot.requests")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        started = time.perf_counter()
        response = self.get_response(request)
        duration_ms = (time.perf_counter() - started) * 1000
        response["X-Request-ID"] = request_id
        trace = ""
        trace_id = tracing.current_trace_id()
        if trace_id is not None:
            match = request.resolver_match
            tracing.request_span_name(request.method or "", match.route if match else None)
            response["X-Trace-Id"] = trace_id
            trace = f" trace_id={trace_id}"
        # For a stream this is the time to the first byte; the stream logs its own end.
        logger.info(
            "request_id=%s%s method=%s path=%s status=%s duration_ms=%.1f client=%s",
            request_id,
            trace,
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            client_ip(request),
        )
        return response


class RequestSizeLimitMiddleware:
    """Refuses a body over MAX_REQUEST_BYTES with 413 before anything reads it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if not declared.isdigit():
            return JsonResponse({"detail": "Invalid Content-Length.", "code": "bad_request"}, status=400)
        if int(declared) > settings.MAX_REQUEST_BYTES:
            return JsonResponse(
                {"detail": f"Request body over {settings.MAX_REQUEST_BYTES} bytes.", "code": "request_too_large"},
                status=413,
            )
        return self.get_response(request)
