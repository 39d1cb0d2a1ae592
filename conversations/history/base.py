"""What both history stores share: the stored shapes, the interface, and the errors a turn can meet."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings

from conversations.limits import AdminSlot
from conversations.usage import USAGE_FIELDS
from core.exceptions import ServiceError
from core.leases import Lease
from core.timestamps import utcnow_iso

# A conversation keeps at most this many messages; older ones fall off (only the newest go upstream anyway).
MAX_STORED_MESSAGES = 200
# Where the usage counters a turn adds to (a session's, and on the Redis store its admin's) stop instead of growing:
# far below what a Redis counter holds (2**63 - 1) and within what a Lua number counts exactly (2**53), so that a
# turn never fails on a counter.
MAX_USAGE_COUNTER = 10**15


class SessionBusy(ServiceError):
    status_code = 409
    code = "session_busy"


class HistoryFull(ServiceError):
    # 503, not 429: the service is out of room for everyone, this admin did not go over a limit of its own.
    status_code = 503
    code = "history_full"


@dataclass
class Conversation:
    session_id: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = ""
    last_activity: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    summary: str = ""  # with HISTORY_SUMMARY: the fold of the turns before `messages`


@dataclass(frozen=True)
class ConversationSummary:
    session_id: str
    message_count: int
    created_at: str
    last_activity: str
    usage: dict[str, int] = field(default_factory=dict)


def now_iso() -> str:
    """Conversation timestamps carry milliseconds: two turns often fall within one second."""
    return utcnow_iso(timespec="milliseconds")


# What a stored message may carry besides its time: an assistant's tool calls, a tool result's call id.
MESSAGE_FIELDS = ("role", "content", "tool_calls", "tool_call_id", "name")


def message(role: str, content: str, **extra: Any) -> dict[str, Any]:
    """A message as stored: `extra` is any of MESSAGE_FIELDS, given only when it has a value."""
    return {
        "role": role,
        "content": content,
        **{k: v for k, v in extra.items() if v and k in MESSAGE_FIELDS},
        "at": now_iso(),
    }


@dataclass(frozen=True)
class StoreOptions:
    replace_last: int = 0  # stored messages the new ones replace (a regenerated or edited exchange)
    created_at: str | None = None  # an imported session's own creation time
    admin_usage: bool = True  # add the usage to the admin's totals too (not for an import)
    drop_first: int = 0  # stored messages folded into `summary`, removed from the start
    summary: str | None = None  # the session's new summary (None: unchanged)


AS_A_TURN = StoreOptions()


class SessionTurn(Protocol):
    """A turn's hold on its session, from `HistoryStore.session_turn`."""

    conversation: Conversation | None  # the session's history when the turn began; None for a new session
    # What the turn holds in Redis besides its admin's slot (the session's lock, a new session's place), for it to
    # keep while it runs; an in-process lock is held by the turn itself.
    leases: list[Lease]

    def finish(
        self, messages: list[dict[str, Any]], usage: dict[str, int], options: StoreOptions = AS_A_TURN
    ) -> dict[str, int]:
        """Stores the turn and adds its usage to the session's and the admin's totals, then gives back the lock and
        the admin's slot; returns the session's usage totals, this turn included. `options`: a turn that redoes
        the last exchange replaces its messages; an import sets `created_at` and leaves the admin's totals
        alone. Raises LeaseLost, storing nothing, when the turn no longer holds the session's lock."""
        ...


class HistoryStore(Protocol):
    backend: str

    def session_turn(
        self, slot: AdminSlot, session_id: str, *, hold_seconds: float
    ) -> AbstractContextManager[SessionTurn]:
        """Begins a turn: takes the admin's chat slot (ChatLimited), the session's lock, waiting up to
        CHAT_SESSION_WAIT_SECONDS for it (SessionBusy), admits a session that is not stored yet before its turn
        asks the model (HistoryFull when the store is full and the admin is below its own cap), and reads the
        history. What it holds in Redis lasts `hold_seconds` unless the turn renews it (SessionTurn.leases).
        Leaving without `finish` (a failed turn) stores nothing and gives back all it holds."""
        ...

    def get(self, admin_id: str, session_id: str) -> Conversation | None: ...
    def append(
        self, admin_id: str, session_id: str, messages: list[dict[str, Any]], usage: dict[str, int]
    ) -> dict[str, int]:
        """Adds messages and usage to a session outside a turn (no lock, no admin totals); returns its totals."""
        ...

    def delete(self, admin_id: str, session_id: str) -> bool: ...
    def list(self, admin_id: str) -> list[ConversationSummary]: ...
    def count(self) -> int: ...


def history_full(oldest_activity: float | None, now: float) -> HistoryFull:
    return HistoryFull(
        f"The conversation store is full ({settings.MAX_SESSIONS} sessions): continue an existing session, "
        "or retry when the least recently used session expires.",
        retry_after=None if oldest_activity is None else oldest_activity + settings.MEMORY_TTL_SECONDS - now,
    )


def usage_added(counter: int, tokens: int) -> int:
    """A usage counter after a turn adds `tokens` to it (none, for an upstream's negative count): it stops at
    MAX_USAGE_COUNTER."""
    return min(counter + max(tokens, 0), MAX_USAGE_COUNTER)


def summary_of(conversation: Conversation) -> ConversationSummary:
    return ConversationSummary(
        conversation.session_id,
        len(conversation.messages),
        conversation.created_at,
        conversation.last_activity,
        {name: conversation.usage.get(name, 0) for name in USAGE_FIELDS},
    )
