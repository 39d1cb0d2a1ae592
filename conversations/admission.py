"""The first middleware: whether this worker takes a new chat at all, decided before Django's stack (sessions,
authentication, DRF, the turn's Redis round trips) runs for it. A new chat is refused with a canned 503
`server_busy` and Retry-After when the worker's event loop runs late by CHAT_ADMIT_MAX_LOOP_LAG_MS or more
(core/loop_lag.py: its cores are spent, and what it took would only slow every chat and probe it holds), or when
it answers MAX_CHATS_IN_FLIGHT chats already (its memory is spent; the turn checks that cap again, conversations/
limits.py). Chats already running go on, and every other request (health probes, logins, history) is served."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from conversations.limits import process_chats
from conversations.openai.wire import openai_error
from core.http import refusal_response
from core.loop_lag import loop_lag

# The paths whose POST starts a turn (conversations/urls.py, openai_urls.py, console/urls.py).
NEW_CHAT = re.compile(
    r"/(?:chat|admin/test-chat|(?:openai/)?v1/chat/completions|chat/sessions/[^/]+/(?:regenerate|edit))/?"
    r"|/console/api/chat(?:/[^/]+/(?:regenerate|edit))?"
)
OPENAI_SHAPED = re.compile(r"/(?:openai/)?v1/")
# A worker at its memory cap frees a slot as soon as any chat ends; one whose cores are spent recovers as its
# streams end, seconds later, and a client retrying sooner would only spend more of them on its refusal.
FULL_RETRY_AFTER_SECONDS = 1
LATE_RETRY_AFTER_SECONDS = 5


def busy_response(path: str, detail: str, retry_after: int) -> HttpResponse:
    """The view's 503 `server_busy`, in the path's error shape (OpenAI's under /v1/)."""
    if OPENAI_SHAPED.match(path):
        body = openai_error(detail, status=503, code="server_busy")
    else:
        body = {"detail": detail, "code": "server_busy"}
    return refusal_response(body, status=503, retry_after=retry_after)


class ChatAdmissionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and NEW_CHAT.fullmatch(request.path):
            refusal = self.refusal()
            if refusal:
                return busy_response(request.path, *refusal)
        return self.get_response(request)

    @staticmethod
    def refusal() -> tuple[str, int] | None:
        """Why a new chat is refused now, and when to retry; None when it is taken."""
        limit = settings.MAX_CHATS_IN_FLIGHT
        if process_chats.count >= limit:
            detail = f"This server process is answering MAX_CHATS_IN_FLIGHT ({limit}) chats already; try again shortly."
            return detail, FULL_RETRY_AFTER_SECONDS
        max_lag_ms = settings.CHAT_ADMIT_MAX_LOOP_LAG_MS
        lag_ms = loop_lag.seconds() * 1000
        if lag_ms >= max_lag_ms:
            detail = (
                f"This server process is running {lag_ms:.0f} ms late (CHAT_ADMIT_MAX_LOOP_LAG_MS {max_lag_ms}): "
                "it takes no new chat; try again shortly."
            )
            return detail, LATE_RETRY_AFTER_SECONDS
        return None
