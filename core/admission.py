"""Whether a worker takes a new chat: the requests that start one, and the decision, with hysteresis, from its
chats in flight (MAX_CHATS_IN_FLIGHT, which follows memory) and its event loop's lag (CHAT_ADMIT_MAX_LOOP_LAG_MS,
which follows its cores). gunicorn's worker (server/worker.py) decides it on the request's head, before gunicorn's
parser or Django run; the first middleware (conversations/admission.py) decides it again under any other server.

Hysteresis: a worker that started refusing for a reason goes on refusing until that reason has eased off below
its limit (a tenth of the cap's slots free, the lag back under three quarters of its limit), so that a worker at
its limit does not alternate a refusal with a burst of admissions that takes it straight back over."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# The paths whose POST starts a turn (conversations/urls.py, openai/urls.py, console/urls.py).
NEW_CHAT_PATH = re.compile(
    r"/(?:chat|admin/test-chat|(?:openai/)?v1/chat/completions|chat/sessions/[^/]+/(?:regenerate|edit))/?"
    r"|/console/api/chat(?:/[^/]+/(?:regenerate|edit))?"
)
# The paths answered in OpenAI's error shape.
OPENAI_PATH = re.compile(r"/(?:openai/)?v1/")
# A worker at its memory cap frees a slot as soon as any chat ends; one whose cores are spent recovers as its
# streams end, seconds later, and a client retrying sooner would only spend more of them on its refusal.
FULL_RETRY_AFTER_SECONDS = 1
LATE_RETRY_AFTER_SECONDS = 5
# The share of the cap that must be free again before a worker that filled it takes new chats.
FULL_RESUME_SHARE = 0.9
# The share of CHAT_ADMIT_MAX_LOOP_LAG_MS the lag must fall under before a late worker takes new chats: lower would
# refuse longer on a machine whose other work keeps the loop late, which refuses chats it could answer.
LATE_RESUME_SHARE = 0.75


@dataclass(frozen=True)
class Refusal:
    detail: str
    retry_after: int


@dataclass
class AdmissionGate:
    """One process's decision whether to take a new chat, holding which limit it is refusing for."""

    full: bool = False
    late: bool = False

    def refusal(self, in_flight: int, limit: int, lag_seconds: float, max_lag_ms: int) -> Refusal | None:
        """Why a new chat is refused now (None: taken), given the process's chats in flight and its loop's lag."""
        self.full = in_flight >= (limit * FULL_RESUME_SHARE if self.full else limit)
        if self.full:
            return Refusal(
                f"This server process is answering MAX_CHATS_IN_FLIGHT ({limit}) chats already; try again shortly.",
                FULL_RETRY_AFTER_SECONDS,
            )
        lag_ms = lag_seconds * 1000
        self.late = lag_ms >= (max_lag_ms * LATE_RESUME_SHARE if self.late else max_lag_ms)
        if self.late:
            return Refusal(
                f"This server process is running {lag_ms:.0f} ms late (CHAT_ADMIT_MAX_LOOP_LAG_MS {max_lag_ms}): "
                "it takes no new chat; try again shortly.",
                LATE_RETRY_AFTER_SECONDS,
            )
        return None


def refusal_body(path: str, refusal: Refusal) -> dict[str, object]:
    """503 `server_busy` in the path's error shape: OpenAI's under /v1/ (as conversations/openai/wire.py builds it),
    the service's elsewhere."""
    if OPENAI_PATH.match(path):
        return {"error": {"message": refusal.detail, "type": "server_error", "code": "server_busy", "param": None}}
    return {"detail": refusal.detail, "code": "server_busy"}


def refusal_bytes(path: str, refusal: Refusal, *, keep_alive: bool) -> bytes:
    """The whole HTTP/1.1 refusal, as the worker sends it from the socket."""
    body = json.dumps(refusal_body(path, refusal)).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: {refusal.retry_after}\r\nCache-Control: no-store\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode() + body
