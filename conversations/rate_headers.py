"""The `x-ratelimit-*` headers of a chat answer, as OpenAI and Groq send them, for the caller's own limits."""

from __future__ import annotations

from accounts.models import AdminUser

KINDS = ("requests", "tokens")
HEADERS = tuple(f"x-ratelimit-{what}-{kind}" for kind in KINDS for what in ("limit", "remaining", "reset"))
# The operations whose answers carry them: every chat.
CHAT_PATHS = (
    "/chat",
    "/chat/sessions/{session_id}/regenerate",
    "/chat/sessions/{session_id}/edit",
    "/v1/chat/completions",
    "/v1/responses",
)


def rate_limit_headers(admin: AdminUser) -> dict[str, str]:
    """The headers for the tightest of the caller's limits of each kind (a reset in seconds, `1.5s`), once its
    turn was let through (conversations.turns sets `admin.rate_limits`): with a JSON answer, or a stream's first
    piece read. A kind without a limit sends none."""
    limits = admin.rate_limits
    if limits is None:
        return {}
    headers = {}
    for kind, status in zip(KINDS, (limits.requests, limits.tokens), strict=True):
        if status is not None:
            headers[f"x-ratelimit-limit-{kind}"] = str(status.limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(status.remaining)
            headers[f"x-ratelimit-reset-{kind}"] = f"{max(status.reset_seconds, 0):.3g}s"
    return headers


_DESCRIPTIONS = {
    "limit": "The caller's {kind} per minute (the tightest of its admin's and its API key's), when it has a limit.",
    "remaining": "What is left of it this minute once this request was let through.",
    "reset": "When the minute ends, in seconds (`12.3s`).",
}


def document_rate_limit_headers(result: dict, generator: object, request: object, public: bool) -> dict:
    """drf-spectacular hook: a chat's successful answers carry the x-ratelimit-* headers."""
    for path in CHAT_PATHS:
        operation = result.get("paths", {}).get(path, {}).get("post")
        if operation is None:
            continue
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                for kind in KINDS:
                    for what, description in _DESCRIPTIONS.items():
                        response.setdefault("headers", {})[f"x-ratelimit-{what}-{kind}"] = {
                            "description": description.format(kind=kind),
                            "schema": {"type": "string"},
                        }
    return result
