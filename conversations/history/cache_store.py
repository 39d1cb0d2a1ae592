"""History in this process (HISTORY_BACKEND=locmem), in Django's "history" cache alias."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import caches

from conversations.history.base import (
    MAX_STORED_MESSAGES,
    NEW_EXCHANGE,
    USAGE_FIELDS,
    ChatSlot,
    Conversation,
    SessionBusy,
    SessionListItem,
    SessionTurn,
    SlotPolicy,
    StoreOptions,
    UsagePolicy,
    history_full,
    list_item_of,
    now_iso,
    usage_added,
    writes_together,
)
from core.leases import Lease
from core.redis_store import PipelineWrites


class _KeyedLocks:
    """One lock per key, created on demand and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextmanager
    def hold(self, key: str, timeout: float) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.setdefault(key, (threading.Lock(), [0]))
            users[0] += 1
        try:
            if not lock.acquire(timeout=timeout):
                raise SessionBusy("Another message to this session is still being answered; retry shortly.")
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._guard:
                users[0] -= 1
                if users[0] == 0:
                    del self._locks[key]


@dataclass
class _SessionRecords:
    """The records kept beside a session (StoreOptions.record), in one cache entry with it."""

    named: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # the names written with a cap (records_kept), oldest first

    def put(self, name: str, value: str, kept: int) -> None:
        """Adds the record; with a cap (`kept` > 0) it counts, and the oldest counted past the cap go."""
        self.named[name] = value
        if kept > 0:
            self.order.append(name)
            while len(self.order) > kept:
                self.named.pop(self.order.pop(0), None)

    def delete(self, name: str) -> bool:
        if self.named.pop(name, None) is None:
            return False
        if name in self.order:
            self.order.remove(name)
        return True


@dataclass
class _CacheTurn:
    """A turn's hold: the admin's slot in Redis, the session's lock and a new session's place in this process."""

    store: CacheHistoryStore
    slot: ChatSlot
    slot_held: bool
    session_id: str
    conversation: Conversation | None = None
    record: str | None = None
    # The lock and a new session's place are held for as long as the turn runs: only the slot is renewed.
    leases: list[Lease] = field(default_factory=list)

    def finish(
        self,
        messages: list[dict[str, Any]],
        usage: dict[str, int],
        options: StoreOptions = NEW_EXCHANGE,
        *,
        with_writes: PipelineWrites | None = None,
    ) -> dict[str, int]:
        admin_id = self.slot.admin_id
        totals = self.store.write_turn(admin_id, self.session_id, messages, usage, options)
        # The admin's usage and the slot given back, in one round trip.
        release = self.slot.release_into if self.slot_held else None
        together = writes_together(release, with_writes)
        if options.admin_usage:
            self.store.usage.record(admin_id, usage, with_writes=together, day=options.usage_day)
        else:
            self.store.usage.record(admin_id, {}, with_writes=together)
        self.slot_held = False
        return totals

    def give_back(self) -> None:
        if self.slot_held:
            self.slot_held = False
            self.slot.give_back()


class CacheHistoryStore:
    """History in a Django cache alias. Which sessions exist is kept in this process, like the cache itself, and
    the caps are enforced here: the cache's own cull (MAX_ENTRIES) would drop any admin's entries. `limits` and
    `usage`: the admin's chat slot a turn takes and the totals it adds to, in Redis."""

    backend = "locmem"

    def __init__(self, *, limits: SlotPolicy, usage: UsagePolicy, alias: str = "history") -> None:
        self.limits, self.usage = limits, usage
        self._cache = caches[alias]
        self._locks = _KeyedLocks()
        self._guard = threading.Lock()
        # Last activity of every stored session, least recently used first: in all, and per admin.
        self._all: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._by_admin: dict[str, OrderedDict[str, float]] = {}
        self._reserved: set[tuple[str, str]] = set()

    @staticmethod
    def _key(admin_id: str, session_id: str) -> str:
        return f"conv:{admin_id}:{session_id}"

    @staticmethod
    def _records_key(admin_id: str, session_id: str) -> str:
        return f"conv-records:{admin_id}:{session_id}"

    @contextmanager
    def session_turn(
        self,
        admin_id: str,
        session_id: str,
        *,
        hold_seconds: float,
        record: str | None = None,
        requests_per_minute: int | None = None,
    ) -> Iterator[SessionTurn]:
        # The admin's slot is in Redis (one round trip to take it; it lasts unrenewed as long as its own policy says);
        # the lock, the admission and the history are here, held until the turn ends, so `hold_seconds` has no use.
        slot = self.limits.slot(admin_id, requests_per_minute)
        turn = _CacheTurn(self, slot, slot.take(), session_id)
        if turn.slot_held:
            turn.leases.append(slot.lease())
        try:
            lock = self._locks.hold(self._key(admin_id, session_id), settings.CHAT_SESSION_WAIT_SECONDS)
            with lock, self._admitted(admin_id, session_id):
                turn.conversation = self.get(admin_id, session_id)
                turn.record = self.record(admin_id, session_id, record) if record else None
                yield turn
        finally:
            turn.give_back()

    @contextmanager
    def _admitted(self, admin_id: str, session_id: str) -> Iterator[None]:
        reserved = self._reserve(admin_id, session_id)
        try:
            yield
        finally:
            if reserved:
                with self._guard:
                    self._reserved.discard((admin_id, session_id))

    def _reserve(self, admin_id: str, session_id: str) -> bool:
        """Returns whether a place was reserved for a new session, held until its first turn is stored or fails."""
        now = time.time()
        with self._guard:
            self._prune(now)
            sessions = self._by_admin.get(admin_id, {})
            # An admin at its cap replaces its own least recently used session, so the store does not grow.
            if session_id in sessions or len(sessions) >= settings.MAX_SESSIONS_PER_ADMIN:
                return False
            if len(self._all) + len(self._reserved) >= settings.MAX_SESSIONS:
                raise history_full(next(iter(self._all.values()), None), now)
            self._reserved.add((admin_id, session_id))
            return True

    def get(self, admin_id: str, session_id: str) -> Conversation | None:
        data = self._cache.get(self._key(admin_id, session_id))
        return Conversation(**data) if data else None

    def write_turn(
        self,
        admin_id: str,
        session_id: str,
        messages: list[dict[str, Any]],
        usage: dict[str, int],
        options: StoreOptions = NEW_EXCHANGE,
    ) -> dict[str, int]:
        """Writes a turn to the session (not the admin's totals); returns the session's usage totals. The caller (a
        turn of this store) holds the session's lock, so this read-modify-write cannot lose a turn."""
        conversation = self.get(admin_id, session_id) or Conversation(
            session_id=session_id, created_at=options.created_at or now_iso()
        )
        kept = conversation.messages[options.drop_first : len(conversation.messages) - options.replace_last]
        conversation.messages = (kept + messages)[-MAX_STORED_MESSAGES:]
        if options.summary is not None:
            conversation.summary = options.summary
        conversation.last_activity = now_iso()
        for name in USAGE_FIELDS:
            conversation.usage[name] = usage_added(conversation.usage.get(name, 0), usage.get(name, 0))
        # Taken before the cache entry is written, so the bookkeeping never outlives the entry.
        now = time.time()
        with self._guard:
            self._prune(now)
            self._cache.set(self._key(admin_id, session_id), conversation.__dict__, settings.MEMORY_TTL_SECONDS)
            self._records_write(admin_id, session_id, options.record, options.records_kept)
            self._record(admin_id, session_id, now)
        return dict(conversation.usage)

    def _records(self, admin_id: str, session_id: str) -> _SessionRecords:
        return self._cache.get(self._records_key(admin_id, session_id)) or _SessionRecords()

    def _records_write(self, admin_id: str, session_id: str, record: tuple[str, str] | None, kept: int = 0) -> None:
        """The session's records, with `record` added (counted in a cap of `kept`, if any), kept for
        MEMORY_TTL_SECONDS from now (under the guard)."""
        records = self._records(admin_id, session_id)
        if record is None and not records.named:
            return
        if record is not None:
            records.put(*record, kept)
        self._cache.set(self._records_key(admin_id, session_id), records, settings.MEMORY_TTL_SECONDS)

    def record(self, admin_id: str, session_id: str, name: str) -> str | None:
        return self._records(admin_id, session_id).named.get(name)

    def record_put(self, admin_id: str, session_id: str, name: str, value: str) -> None:
        with self._guard:
            self._records_write(admin_id, session_id, (name, value))

    def record_delete(self, admin_id: str, session_id: str, name: str) -> bool:
        with self._guard:
            records = self._records(admin_id, session_id)
            if not records.delete(name):
                return False
            self._cache.set(self._records_key(admin_id, session_id), records, settings.MEMORY_TTL_SECONDS)
            return True

    def _record(self, admin_id: str, session_id: str, now: float) -> None:
        self._reserved.discard((admin_id, session_id))
        self._all[(admin_id, session_id)] = now
        self._all.move_to_end((admin_id, session_id))
        sessions = self._by_admin.setdefault(admin_id, OrderedDict())
        sessions[session_id] = now
        sessions.move_to_end(session_id)
        while len(sessions) > settings.MAX_SESSIONS_PER_ADMIN:
            self._drop(admin_id, next(iter(sessions)))

    def _prune(self, now: float) -> None:
        """Forgets expired sessions, and removes them from the cache, which keeps them until they are read."""
        cutoff = now - settings.MEMORY_TTL_SECONDS
        while self._all:
            (admin_id, session_id), last_activity = next(iter(self._all.items()))
            if last_activity > cutoff:
                return
            self._drop(admin_id, session_id)

    def _drop(self, admin_id: str, session_id: str) -> bool:
        self._all.pop((admin_id, session_id), None)
        sessions = self._by_admin.get(admin_id, {})
        sessions.pop(session_id, None)
        if not sessions:
            self._by_admin.pop(admin_id, None)
        records = self._cache.delete(self._records_key(admin_id, session_id))
        return bool(self._cache.delete(self._key(admin_id, session_id))) or bool(records)

    def delete(self, admin_id: str, session_id: str) -> bool:
        with self._guard:
            return self._drop(admin_id, session_id)

    def list(self, admin_id: str, *, offset: int = 0, limit: int | None = None) -> list[SessionListItem]:
        with self._guard:
            self._prune(time.time())
            newest_first = list(reversed(self._by_admin.get(admin_id, {})))
            session_ids = newest_first[offset : None if limit is None else offset + limit]
        found = self._cache.get_many([self._key(admin_id, s) for s in session_ids])
        live = [Conversation(**data) for data in found.values()]
        return sorted((list_item_of(c) for c in live), key=lambda s: s.last_activity, reverse=True)

    def count(self) -> int:
        with self._guard:
            self._prune(time.time())
            return len(self._all)
