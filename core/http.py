"""HTTP helpers every app shares."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


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
