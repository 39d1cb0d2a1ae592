"""Conversation history with a sliding TTL, isolated per admin: the admin's id is part of every key.

Two stores behind one interface, chosen by HISTORY_BACKEND:
- `CacheHistoryStore` (locmem, the default): Django's "history" cache alias, in this process only.
- `RedisHistoryStore` (redis): the REDIS_URL database through django-redis's connection, shared by every worker
  and instance; each turn is appended atomically by a Lua script, and a Redis lock serialises the turns of one
  session across instances.

Both keep at most MAX_SESSIONS_PER_ADMIN sessions per admin, dropping that admin's least recently used ones, and
at most MAX_CACHE_SIZE in all by refusing new sessions when full: one admin's activity never drops another's session.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol

from django.conf import settings
from django.core.cache import caches
from django_redis import get_redis_connection
from redis.exceptions import LockError

from core.exceptions import ServiceError
from core.redis_store import decoded

# A conversation keeps at most this many messages; older ones fall off (only the newest go upstream anyway).
MAX_STORED_MESSAGES = 200


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
    messages: list[dict[str, str]] = field(default_factory=list)
    created_at: str = ""
    last_activity: str = ""
    usage: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ConversationSummary:
    session_id: str
    message_count: int
    created_at: str
    last_activity: str
    usage: dict[str, int] = field(default_factory=dict)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def message(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content, "at": now_iso()}


USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens", "requests")


class HistoryStore(Protocol):
    backend: str

    def session_lock(self, admin_id: str, session_id: str) -> AbstractContextManager[None]:
        """Serialises the turns of one session, and admits a session that is not stored yet before its first
        turn asks the model: raises HistoryFull when the store is full and the admin is below its own cap."""
        ...

    def get(self, admin_id: str, session_id: str) -> Conversation | None: ...
    def append(
        self, admin_id: str, session_id: str, messages: list[dict[str, str]], usage: dict[str, int]
    ) -> dict[str, int]:
        """Adds a turn and its usage; returns the session's usage totals, this turn included."""
        ...

    def delete(self, admin_id: str, session_id: str) -> bool: ...
    def list(self, admin_id: str) -> list[ConversationSummary]: ...
    def count(self) -> int: ...


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


def _turn_seconds() -> int:
    """How long one turn may hold its session: the session lock (and a new session's reserved place) lasts this."""
    return settings.LLM_TIMEOUT_SECONDS + 30


def _history_full(oldest_activity: float | None, now: float) -> HistoryFull:
    return HistoryFull(
        f"The conversation store is full ({settings.MAX_CACHE_SIZE} sessions): continue an existing session, "
        "or retry when the least recently used session expires.",
        retry_after=None if oldest_activity is None else oldest_activity + settings.MEMORY_TTL_SECONDS - now,
    )


class CacheHistoryStore:
    """History in a Django cache alias. Which sessions exist is kept in this process, like the cache itself, and
    the caps are enforced here: the cache's own cull (MAX_ENTRIES) would drop any admin's entries."""

    backend = "locmem"

    def __init__(self, alias: str = "history") -> None:
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

    @contextmanager
    def session_lock(self, admin_id: str, session_id: str) -> Iterator[None]:
        lock = self._locks.hold(self._key(admin_id, session_id), settings.CHAT_SESSION_WAIT_SECONDS)
        with lock, self._admitted(admin_id, session_id):
            yield

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
            if len(self._all) + len(self._reserved) >= settings.MAX_CACHE_SIZE:
                raise _history_full(next(iter(self._all.values()), None), now)
            self._reserved.add((admin_id, session_id))
            return True

    def get(self, admin_id: str, session_id: str) -> Conversation | None:
        data = self._cache.get(self._key(admin_id, session_id))
        return Conversation(**data) if data else None

    def append(
        self, admin_id: str, session_id: str, messages: list[dict[str, str]], usage: dict[str, int]
    ) -> dict[str, int]:
        # Callers hold the session lock, so this read-modify-write cannot lose a turn.
        conversation = self.get(admin_id, session_id) or Conversation(session_id=session_id, created_at=now_iso())
        conversation.messages = (conversation.messages + messages)[-MAX_STORED_MESSAGES:]
        conversation.last_activity = now_iso()
        for name in USAGE_FIELDS:
            conversation.usage[name] = conversation.usage.get(name, 0) + usage.get(name, 0)
        # Taken before the cache entry is written, so the bookkeeping never outlives the entry.
        now = time.time()
        with self._guard:
            self._prune(now)
            self._cache.set(self._key(admin_id, session_id), conversation.__dict__, settings.MEMORY_TTL_SECONDS)
            self._record(admin_id, session_id, now)
        return dict(conversation.usage)

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
        return bool(self._cache.delete(self._key(admin_id, session_id)))

    def delete(self, admin_id: str, session_id: str) -> bool:
        with self._guard:
            return self._drop(admin_id, session_id)

    def list(self, admin_id: str) -> list[ConversationSummary]:
        with self._guard:
            self._prune(time.time())
            session_ids = list(self._by_admin.get(admin_id, {}))
        found = self._cache.get_many([self._key(admin_id, s) for s in session_ids])
        live = [Conversation(**data) for data in found.values()]
        return sorted((_summary(c) for c in live), key=lambda s: s.last_activity, reverse=True)

    def count(self) -> int:
        with self._guard:
            self._prune(time.time())
            return len(self._all)


_APPEND_SCRIPT = f"""
for i = 5, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
redis.call('HSETNX', KEYS[2], 'created_at', ARGV[2])
redis.call('HSET', KEYS[2], 'last_activity', ARGV[2])
local usage = cjson.decode(ARGV[4])
for name, value in pairs(usage) do redis.call('HINCRBY', KEYS[2], name, value) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return redis.call('HMGET', KEYS[2], {", ".join(f"'{name}'" for name in USAGE_FIELDS)})
"""

# KEYS: all, the admin's index. ARGV: now, ttl, turn seconds, MAX_CACHE_SIZE, MAX_SESSIONS_PER_ADMIN, session, member.
_ADMIT_SCRIPT = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now - tonumber(ARGV[2]))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '(' .. (tonumber(ARGV[3]) - now), '(0')
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[2]))
if redis.call('ZSCORE', KEYS[2], ARGV[6]) or redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then
  return {'admitted'}
end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[1], -now, ARGV[7])
  return {'reserved'}
end
return {'full', redis.call('ZRANGEBYSCORE', KEYS[1], '(0', '+inf', 'WITHSCORES', 'LIMIT', 0, 1)[2]}
"""

# KEYS: all, the admin's index. ARGV: now, ttl, MAX_SESSIONS_PER_ADMIN, session, admin. Returns the evicted sessions.
_RECORD_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[5] .. ':' .. ARGV[4])
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
local evicted = {}
if excess <= 0 then return evicted end
-- Never the session just stored, even if another instance's clock gave an older one a later score.
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, excess)) do
  if id ~= ARGV[4] and #evicted < excess then evicted[#evicted + 1] = id end
end
redis.call('ZREM', KEYS[2], unpack(evicted))
for _, id in ipairs(evicted) do redis.call('ZREM', KEYS[1], ARGV[5] .. ':' .. id) end
return evicted
"""

# KEYS: all. ARGV: member. Frees a reserved place that its turn did not turn into a stored session.
_RELEASE_SCRIPT = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) < 0 then redis.call('ZREM', KEYS[1], ARGV[1]) end
"""


class RedisHistoryStore:
    """History in Redis. Keys (under REDIS_KEY_PREFIX):
    conv:{<admin>:<session>}:messages  list of JSON messages
    conv:{<admin>:<session>}:meta      hash created_at, last_activity and usage counters
    {conv-index}:<admin>               sorted set of the admin's session ids by last activity
    {conv-index}:all                   sorted set of every "<admin>:<session>" by last activity, and of the places
                                       reserved for new sessions, scored minus the time they were reserved (so each
                                       kind expires on its own clock, and stored sessions are counted apart)
    The index keys share a hash tag, so that admitting and recording a session are one script each.
    """

    backend = "redis"

    def __init__(self) -> None:
        self._redis = get_redis_connection("default")
        self._append = self._redis.register_script(_APPEND_SCRIPT)
        self._admit = self._redis.register_script(_ADMIT_SCRIPT)
        self._record = self._redis.register_script(_RECORD_SCRIPT)
        self._release = self._redis.register_script(_RELEASE_SCRIPT)

    @staticmethod
    def _keys(admin_id: str, session_id: str) -> tuple[str, str]:
        # The hash tag keeps both keys of a session in one Redis Cluster slot, as the Lua script needs.
        base = f"{settings.REDIS_KEY_PREFIX}:conv:{{{admin_id}:{session_id}}}"
        return f"{base}:messages", f"{base}:meta"

    @staticmethod
    def _index_key(admin_id: str) -> str:
        return f"{settings.REDIS_KEY_PREFIX}:{{conv-index}}:{admin_id}"

    @staticmethod
    def _all_key() -> str:
        return f"{settings.REDIS_KEY_PREFIX}:{{conv-index}}:all"

    @contextmanager
    def session_lock(self, admin_id: str, session_id: str) -> Iterator[None]:
        lock = self._redis.lock(
            f"{settings.REDIS_KEY_PREFIX}:conv-lock:{admin_id}:{session_id}",
            timeout=_turn_seconds(),
            blocking_timeout=settings.CHAT_SESSION_WAIT_SECONDS,
            sleep=0.02,
            # A streamed turn takes the lock in the request thread and releases it in the stream's thread.
            thread_local=False,
        )
        if not lock.acquire():
            raise SessionBusy("Another message to this session is still being answered; retry shortly.")
        try:
            with self._admitted(admin_id, session_id):
                yield
        finally:
            # LockError: it expired, the turn outlived the lock's safety timeout.
            with suppress(LockError):
                lock.release()

    @contextmanager
    def _admitted(self, admin_id: str, session_id: str) -> Iterator[None]:
        now = time.time()
        member = f"{admin_id}:{session_id}"
        outcome, *oldest = self._admit(
            keys=[self._all_key(), self._index_key(admin_id)],
            args=[
                now,
                settings.MEMORY_TTL_SECONDS,
                _turn_seconds(),
                settings.MAX_CACHE_SIZE,
                settings.MAX_SESSIONS_PER_ADMIN,
                session_id,
                member,
            ],
        )
        if outcome == b"full":
            raise _history_full(float(oldest[0]) if oldest else None, now)
        try:
            yield
        finally:
            if outcome == b"reserved":
                self._release(keys=[self._all_key()], args=[member])

    def get(self, admin_id: str, session_id: str) -> Conversation | None:
        messages_key, meta_key = self._keys(admin_id, session_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.lrange(messages_key, 0, -1)
        pipe.hgetall(meta_key)
        raw_messages, meta = pipe.execute()
        if not meta:
            return None
        meta = decoded(meta)
        return Conversation(
            session_id=session_id,
            messages=[json.loads(m) for m in raw_messages],
            created_at=meta.get("created_at", ""),
            last_activity=meta.get("last_activity", ""),
            usage={name: int(meta.get(name, 0)) for name in USAGE_FIELDS},
        )

    def append(
        self, admin_id: str, session_id: str, messages: list[dict[str, str]], usage: dict[str, int]
    ) -> dict[str, int]:
        ttl = settings.MEMORY_TTL_SECONDS
        totals = self._append(
            keys=self._keys(admin_id, session_id),
            args=[ttl, now_iso(), MAX_STORED_MESSAGES, json.dumps(usage), *(json.dumps(m) for m in messages)],
        )
        evicted = self._record(
            keys=[self._all_key(), self._index_key(admin_id)],
            args=[time.time(), ttl, settings.MAX_SESSIONS_PER_ADMIN, session_id, admin_id],
        )
        if evicted:
            pipe = self._redis.pipeline(transaction=False)
            for old_session in evicted:
                pipe.delete(*self._keys(admin_id, old_session.decode()))
            pipe.execute()
        return {name: int(value or 0) for name, value in zip(USAGE_FIELDS, totals, strict=True)}

    def _remove(self, admin_id: str, session_id: str) -> int:
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(*self._keys(admin_id, session_id))
        pipe.zrem(self._index_key(admin_id), session_id)
        pipe.zrem(self._all_key(), f"{admin_id}:{session_id}")
        return pipe.execute()[0]

    def delete(self, admin_id: str, session_id: str) -> bool:
        return self._remove(admin_id, session_id) > 0

    def list(self, admin_id: str) -> list[ConversationSummary]:
        index = self._index_key(admin_id)
        self._redis.zremrangebyscore(index, "-inf", time.time() - settings.MEMORY_TTL_SECONDS)
        session_ids = [s.decode() for s in self._redis.zrevrange(index, 0, -1)]
        pipe = self._redis.pipeline(transaction=False)
        for session_id in session_ids:
            messages_key, meta_key = self._keys(admin_id, session_id)
            pipe.llen(messages_key)
            pipe.hgetall(meta_key)
        results = pipe.execute()
        summaries = []
        for session_id, count, meta in zip(session_ids, results[::2], results[1::2], strict=True):
            if meta:
                meta = decoded(meta)
                usage = {name: int(meta.get(name, 0)) for name in USAGE_FIELDS}
                summaries.append(
                    ConversationSummary(session_id, count, meta["created_at"], meta["last_activity"], usage)
                )
        return summaries

    def count(self) -> int:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zremrangebyscore(self._all_key(), 0, time.time() - settings.MEMORY_TTL_SECONDS)
        pipe.zcount(self._all_key(), "(0", "+inf")
        return pipe.execute()[1]


def _summary(conversation: Conversation) -> ConversationSummary:
    return ConversationSummary(
        conversation.session_id,
        len(conversation.messages),
        conversation.created_at,
        conversation.last_activity,
        {name: conversation.usage.get(name, 0) for name in USAGE_FIELDS},
    )


@lru_cache(maxsize=1)
def _locmem_store() -> CacheHistoryStore:
    return CacheHistoryStore()


def history_store() -> HistoryStore:
    # The Redis store holds no state of its own (it shares django-redis's pool), so it is cheap to make.
    return RedisHistoryStore() if settings.HISTORY_BACKEND == "redis" else _locmem_store()
