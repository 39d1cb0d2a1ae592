"""What both history stores share: the stored shapes, the interface, the policy they are given (the admin's chat
slot, its usage totals) and the errors a turn can meet."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from redis.client import Pipeline

from core.exceptions import ServiceError
from core.leases import Lease
from core.redis_store import PipelineWrites, RepliesHandler
from core.timestamps import utcnow_iso

# cost_micros: the cost in micro-dollars of the calls whose model has a price; unpriced_requests: calls to a model
# without one (a total's cost is then unknown). See llm_provider/pricing.py.
USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens", "requests", "cost_micros", "unpriced_requests")

# A conversation keeps at most this many messages; older ones fall off (only the newest go upstream anyway).
MAX_STORED_MESSAGES = 200
# Where the usage counters a turn adds to (a session's, and on the Redis store its admin's) stop instead of growing:
# far below what a Redis counter holds (2**63 - 1) and within what a Lua number counts exactly (2**53), so that a
# turn never fails on a counter.
MAX_USAGE_COUNTER = 10**15


class SessionNotFound(ServiceError):
    """No such session of the asking admin."""

    status_code = 404
    code = "not_found"


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
class SessionListItem:
    """A session as `/chat/sessions` lists it."""

    session_id: str
    message_count: int
    created_at: str
    last_activity: str
    usage: dict[str, int] = field(default_factory=dict)
    first_words: str = ""  # the start of the first stored message, for a list a person reads (the console's)


FIRST_WORDS_CHARS = 80


def first_words(first_message: dict[str, Any] | None) -> str:
    content = (first_message or {}).get("content")
    return " ".join(content.split())[:FIRST_WORDS_CHARS] if isinstance(content, str) else ""


def now_iso() -> str:
    """Conversation timestamps carry milliseconds: two turns often fall within one second."""
    return utcnow_iso(timespec="milliseconds")


# What a stored message may carry besides its time: an assistant's tool calls, a tool result's call id.
MESSAGE_FIELDS = ("role", "content", "tool_calls", "tool_call_id", "name")


def message(role: str, content: str, *, item_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """A message as stored: `extra` is any of MESSAGE_FIELDS, given only when it has a value. `item_id`, kept only
    by the store like the time, names a reply that a later turn may continue from (a Responses output item)."""
    return {
        "role": role,
        "content": content,
        **{k: v for k, v in extra.items() if v and k in MESSAGE_FIELDS},
        **({"id": item_id} if item_id else {}),
        "at": now_iso(),
    }


@dataclass(frozen=True)
class UsageDay:
    """What a turn adds to its admin's usage of the day (conversations.usage_history): the day's hash, its field
    increments, and when the hash expires (Unix time)."""

    key: str
    increments: dict[str, int]
    expire_at: int


@dataclass(frozen=True)
class StoreOptions:
    replace_last: int = 0  # stored messages the new ones replace (a regenerated or edited exchange)
    created_at: str | None = None  # an imported session's own creation time
    admin_usage: bool = True  # add the usage to the admin's totals too (not for an import)
    drop_first: int = 0  # stored messages folded into `summary`, removed from the start
    summary: str | None = None  # the session's new summary (None: unchanged)
    usage_day: UsageDay | None = None  # what the turn adds to its admin's usage of the day, in the same write
    # A named record written with the turn beside the session (a stored response): kept, like every record of the
    # session, for as long as the session (its TTL slides with each turn) and removed with it.
    record: tuple[str, str] | None = None
    # With `record`: the session keeps at most this many records written with a cap, the oldest dropped in the same
    # write (stored responses: MAX_STORED_RESPONSES); 0, the record is not counted and never dropped for another.
    records_kept: int = 0


NEW_EXCHANGE = StoreOptions()  # the turn's messages follow the stored ones


class ChatSlot(Protocol):
    """A turn's place among its admin's chats (conversations.limits.AdminSlot). The store takes it with the turn's
    first write and gives it back with its last."""

    admin_id: str
    member: str
    started: float  # when the turn began
    requests: int  # once taken: the admin's requests this minute, this one included (0: not counted)

    @property
    def limited(self) -> bool: ...
    @property
    def active_key(self) -> str: ...
    def keys(self) -> list[str]: ...
    def args(self) -> Any:
        """Its ARGV after keys(): a dataclass whose fields are named as SlotPolicy.take_slot_lua's parameters."""
        ...

    def refusal(self, limit: str) -> ServiceError: ...
    def lease(self) -> Lease: ...
    def take(self) -> bool: ...
    def release_into(self, pipe: Pipeline) -> None: ...
    def give_back(self) -> None: ...


class SlotPolicy(Protocol):
    """The per-admin chat limits a store is given (conversations.limits.ChatLimits)."""

    # Defines the Lua function take_slot(rate_key, active_key, <ChatSlot.args()'s fields>), which returns nil when
    # the slot is taken, else the limit that refused it.
    take_slot_lua: str

    def slot(self, admin_id: str, requests_per_minute: int | None = None) -> ChatSlot: ...


class UsagePolicy(Protocol):
    """An admin's usage totals, which a store is given (conversations.usage.UsageTotals)."""

    def key(self, admin_id: str) -> str: ...
    def record(
        self,
        admin_id: str,
        usage: Mapping[str, int],
        *,
        with_writes: PipelineWrites | None = None,
        day: UsageDay | None = None,
    ) -> None: ...


class SessionTurn(Protocol):
    """A turn's hold on its session, from `HistoryStore.session_turn`."""

    conversation: Conversation | None  # the session's history when the turn began; None for a new session
    slot: ChatSlot  # the admin's place among its chats
    # What the turn holds in Redis (its admin's slot, the session's lock, a new session's place), for it to keep
    # while it runs; an in-process lock is held by the turn itself.
    leases: list[Lease]
    record: str | None  # the record named by session_turn's `record`, read with the history; None when there is none

    def finish(
        self,
        messages: list[dict[str, Any]],
        usage: dict[str, int],
        options: StoreOptions = NEW_EXCHANGE,
        *,
        with_writes: PipelineWrites | None = None,
    ) -> dict[str, int]:
        """Stores the turn and adds its usage to the session's and the admin's totals, then gives back the lock and
        the admin's slot; returns the session's usage totals, this turn included. `options`: a turn that redoes
        the last exchange replaces its messages; an import sets `created_at` and leaves the admin's totals
        alone. Raises LeaseLost, storing nothing, when the turn no longer holds the session's lock. `with_writes`
        queues further writes of keys in the admin's slot (a budget's settling) to send in the same round trip."""
        ...


class HistoryStore(Protocol):
    backend: str

    def session_turn(
        self,
        admin_id: str,
        session_id: str,
        *,
        hold_seconds: float,
        record: str | None = None,
        requests_per_minute: int | None = None,
    ) -> AbstractContextManager[SessionTurn]:
        """Begins a turn: takes a chat slot of the admin (ChatLimited), the session's lock, waiting up to
        CHAT_SESSION_WAIT_SECONDS for it (SessionBusy), admits a session that is not stored yet before its turn
        asks the model (HistoryFull when the store is full and the admin is below its own cap), and reads the
        history (and the session's record named `record`, in the same round trip). What it holds in Redis lasts
        `hold_seconds` unless the turn renews it (SessionTurn.leases). Leaving without `finish` (a failed turn)
        stores nothing and gives back all it holds. `requests_per_minute`: the admin's own, if it has one (else
        CHAT_REQUESTS_PER_MINUTE)."""
        ...

    def get(self, admin_id: str, session_id: str) -> Conversation | None: ...
    def delete(self, admin_id: str, session_id: str) -> bool:
        """Removes the session with its records."""
        ...

    # The records kept beside a session (StoreOptions.record), outside a turn: they live as long as the session
    # (MEMORY_TTL_SECONDS since its last turn or since a record was put, whichever is later).
    def record(self, admin_id: str, session_id: str, name: str) -> str | None: ...
    def record_put(self, admin_id: str, session_id: str, name: str, value: str) -> None: ...
    def record_delete(self, admin_id: str, session_id: str, name: str) -> bool: ...

    def list(self, admin_id: str, *, offset: int = 0, limit: int | None = None) -> list[SessionListItem]:
        """The admin's sessions, most recently used first; `offset` and `limit` take a page of them, read
        without reading the others."""
        ...

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


def list_item_of(conversation: Conversation) -> SessionListItem:
    return SessionListItem(
        conversation.session_id,
        len(conversation.messages),
        conversation.created_at,
        conversation.last_activity,
        {name: conversation.usage.get(name, 0) for name in USAGE_FIELDS},
        first_words(conversation.messages[0] if conversation.messages else None),
    )


def writes_together(*queues: PipelineWrites | None) -> PipelineWrites | None:
    """One function that queues the writes of each of `queues` (None: none) on a pipeline, and hands the replies to
    each that wants them."""
    present = [queue for queue in queues if queue is not None]
    if len(present) < 2:
        return present[0] if present else None

    def queue_all(pipe: Pipeline) -> RepliesHandler | None:
        wanting = [on_replies for queue in present if (on_replies := queue(pipe)) is not None]
        if not wanting:
            return None

        def replied(replies: list[Any]) -> None:
            for on_replies in wanting:
                on_replies(replies)

        return replied

    return queue_all
