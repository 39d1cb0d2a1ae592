"""The first middleware: whether this process takes a new chat at all, decided before Django's stack (sessions,
authentication, DRF, the turn's Redis round trips) runs for it, by core/admission.py's rule: a new chat is refused
with a canned 503 `server_busy` and Retry-After when the process answers MAX_CHATS_IN_FLIGHT chats already (its
memory is spent; the turn checks that cap again, conversations/limits.py) or when its event loop runs late by
CHAT_ADMIT_MAX_LOOP_LAG_MS or more (core/loop_lag.py: its cores are spent). Chats already running go on, and every
other request (health probes, logins, history) is served. Under gunicorn's worker (server/worker.py) the worker's
socket has decided already, on the request's head, and this middleware lets the request by."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from conversations.limits import process_chats
from core.admission import NEW_CHAT_PATH, AdmissionGate, refusal_body
from core.http import refusal_response
from core.loop_lag import loop_lag


class ChatAdmissionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.gate = AdmissionGate()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.method == "POST"
            and NEW_CHAT_PATH.fullmatch(request.path)
            and not getattr(request.META.get("gunicorn.socket"), "chat_admitted", False)
        ):
            refusal = self.gate.refusal(
                process_chats.count,
                settings.MAX_CHATS_IN_FLIGHT,
                loop_lag.seconds(),
                settings.CHAT_ADMIT_MAX_LOOP_LAG_MS,
            )
            if refusal:
                return refusal_response(
                    refusal_body(request.path, refusal), status=503, retry_after=refusal.retry_after
                )
        return self.get_response(request)
