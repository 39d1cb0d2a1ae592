"""Whether a worker takes a new chat: the requests that start one, and the decision, with hysteresis, from its
chats in flight (MAX_CHATS_IN_FLIGHT, which follows memory) and its event loop's lag (CHAT_ADMIT_MAX_LOOP_LAG_MS,
which follows its cores); a new stream, also by a cap of its own that follows the lag more closely (StreamCap).
gunicorn's worker (server/worker.py) decides it on the request as read, before gunicorn's parser or Django run; the
first middleware (conversations/admission.py) decides it again, without the streams' cap, under any other server.

Hysteresis: a worker that started refusing for a reason goes on refusing until that reason has eased off below
its limit (a tenth of the cap's slots free, the lag back under three quarters of its limit), so that a worker at
its limit does not alternate a refusal with a burst of admissions that takes it straight back over."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

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


# A stream holds its share of the worker's core for as long as its reply lasts (seconds to minutes): a worker that
# takes new streams until its loop runs CHAT_ADMIT_MAX_LOOP_LAG_MS late holds more than its core serves, and every
# stream, refusal and health probe in it waits on that loop. So new streams have a cap of their own, which follows
# the lag (StreamCap): cut to just under the streams held while the loop runs STREAM_CAP_LAG_MS late, raised a step
# at a time while it keeps up (additive increase, multiplicative decrease, as TCP's congestion window).
STREAM_CAP_LAG_MS = 35
STREAM_CAP_CUT = 0.9
# ... and raised only while the loop is nearly free: rising while it ran up to half the cut's lag late kept the cap
# see-sawing just under the cut, and refusals and health probes waiting on a late loop (docs/performance.md).
STREAM_CAP_RISE_LAG_MS = 10
# The cap rises by this share of MAX_CHATS_IN_FLIGHT at most every STREAM_CAP_ADJUST_SECONDS: slowly, since the
# streams it lets in load the loop for as long as they last, long after the lag that let them in was read.
STREAM_CAP_RISE_SHARE = 0.02
STREAM_CAP_ADJUST_SECONDS = 0.5
# Requests that ask for a streamed reply: `"stream": true` as a key of the body (a nested object's key reads as one
# too, which costs only a stricter admission; in a JSON string, a quote is escaped and cannot match).
STREAM_REQUESTED = re.compile(rb'"stream"\s*:\s*true')


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


@dataclass
class StreamCap:
    """How many streams one process takes at most now (STREAM_CAP_LAG_MS above), within MAX_CHATS_IN_FLIGHT."""

    ceiling: int
    limit: float = field(init=False)
    adjusted: float = float("-inf")

    def __post_init__(self) -> None:
        self.limit = self.ceiling

    def refusal(self, streams: int, lag_seconds: float, now: float) -> Refusal | None:
        """Why a new stream is refused now (None: taken), given the process's streams in flight and its loop's lag."""
        if now - self.adjusted >= STREAM_CAP_ADJUST_SECONDS:
            self._adjust(streams, lag_seconds * 1000)
            self.adjusted = now
        if streams < self.limit:
            return None
        return Refusal(
            f"This server process holds {streams} streams, as many as its event loop keeps up with; try again shortly.",
            LATE_RETRY_AFTER_SECONDS,
        )

    def _adjust(self, streams: int, lag_ms: float) -> None:
        if lag_ms >= STREAM_CAP_LAG_MS:
            # Cut once the streams held are down to the last cut: until then, the lag still reads the streams it let in.
            if streams <= self.limit:
                self.limit = max(1.0, streams * STREAM_CAP_CUT)
        elif lag_ms < STREAM_CAP_RISE_LAG_MS and streams >= self.limit * STREAM_CAP_CUT:
            self.limit = min(float(self.ceiling), self.limit + max(1.0, self.ceiling * STREAM_CAP_RISE_SHARE))


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
