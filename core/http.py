"""HTTP helpers every app shares."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse


def client_ip(request: HttpRequest) -> str:
    """The client's address: the socket's peer, or the header a trusted proxy sets (CLIENT_IP_HEADER).

    With X-Forwarded-For the last entry is the one our proxy appended; earlier ones are the client's word."""
    header = settings.CLIENT_IP_HEADER
    if header:
        value = request.headers.get(header, "")
        forwarded = [part.strip() for part in value.split(",") if part.strip()]
        if forwarded:
            return forwarded[-1][:64]
    return request.META.get("REMOTE_ADDR", "unknown")


def refusal_response(body: dict[str, Any], *, status: int, retry_after: int) -> HttpResponse:
    """A refusal answered before Django's stack runs (no DRF, no renderer): the error body as JSON, with when to
    retry, never cached."""
    response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
    response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"
    return response
