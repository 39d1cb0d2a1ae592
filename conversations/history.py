"""Conversation history with a sliding TTL, isolated per admin: the admin's id is part of every key.

Two stores behind one interface, chosen by HISTORY_BACKEND:
- `CacheHistoryStore` (locmem, the default): Django's "history" cache alias, in this process only.
- `RedisHistoryStore` (redis): the REDIS_URL database through django-redis's connection, shared by every worker
  and instance; each turn is appended atomically by a Lua script, and a Redis lock serialises the turns of one
  session across instances.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from django.conf import settings
from django.core.cache import caches
from django_redis import get_redis_connection
from redis.exceptions import LockError

from chatbot_project.exceptions import ServiceError
from chatbot_project.redis_store import decoded

# A conversation keeps at most this many messages; older ones fall off (only the newest go upstream anyway).
MAX_STORED_MESSAGES = 200


class SessionBusy(ServiceError):
    status_code = 409
    code = "session_busy"


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

    def session_lock(self, admin_id: str, session_id: str) -> AbstractContextManager[None]: ...
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


class CacheHistoryStore:
    """History in a Django cache alias. The per-admin index lives in this process, like the cache itself."""

    backend = "locmem"

    def __init__(self, alias: str = "history") -> None:
        self._cache = caches[alias]
        self._locks = _KeyedLocks()
        self._index_guard = threading.Lock()
        self._index: dict[str, dict[str, float]] = {}

    @staticmethod
    def _key(admin_id: str, session_id: str) -> str:
        return f"conv:{admin_id}:{session_id}"

    def session_lock(self, admin_id: str, session_id: str):
        return self._locks.hold(self._key(admin_id, session_id), settings.CHAT_SESSION_WAIT_SECONDS)

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
        self._cache.set(self._key(admin_id, session_id), conversation.__dict__, settings.MEMORY_TTL_SECONDS)
        with self._index_guard:
            self._index.setdefault(admin_id, {})[session_id] = time.time()
        return dict(conversation.usage)

    def delete(self, admin_id: str, session_id: str) -> bool:
        with self._index_guard:
            self._index.get(admin_id, {}).pop(session_id, None)
        return bool(self._cache.delete(self._key(admin_id, session_id)))

    def list(self, admin_id: str) -> list[ConversationSummary]:
        with self._index_guard:
            session_ids = list(self._index.get(admin_id, {}))
        found = self._cache.get_many([self._key(admin_id, s) for s in session_ids])
        live = [Conversation(**data) for data in found.values()]
        with self._index_guard:
            # Forget what expired or was culled from the cache.
            index = self._index.get(admin_id, {})
            for session_id in set(session_ids) - {c.session_id for c in live}:
                index.pop(session_id, None)
        return sorted((_summary(c) for c in live), key=lambda s: s.last_activity, reverse=True)

    def count(self) -> int:
        with self._index_guard:
            admin_ids = list(self._index)
        return sum(len(self.list(admin_id)) for admin_id in admin_ids)


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


class RedisHistoryStore:
    """History in Redis. Keys (under REDIS_KEY_PREFIX):
    conv:{<admin>:<session>}:messages  list of JSON messages
    conv:{<admin>:<session>}:meta      hash created_at, last_activity and usage counters
    conv-index:<admin>                 sorted set of the admin's session ids by last activity
    conv-all                           sorted set of every "<admin>:<session>", to enforce MAX_CACHE_SIZE
    """

    backend = "redis"

    def __init__(self) -> None:
        self._redis = get_redis_connection("default")
        self._append = self._redis.register_script(_APPEND_SCRIPT)

    @staticmethod
    def _keys(admin_id: str, session_id: str) -> tuple[str, str]:
        # The hash tag keeps both keys of a session in one Redis Cluster slot, as the Lua script needs.
        base = f"{settings.REDIS_KEY_PREFIX}:conv:{{{admin_id}:{session_id}}}"
        return f"{base}:messages", f"{base}:meta"

    @staticmethod
    def _index_key(admin_id: str) -> str:
        return f"{settings.REDIS_KEY_PREFIX}:conv-index:{admin_id}"

    @staticmethod
    def _all_key() -> str:
        return f"{settings.REDIS_KEY_PREFIX}:conv-all"

    @contextmanager
    def session_lock(self, admin_id: str, session_id: str) -> Iterator[None]:
        lock = self._redis.lock(
            f"{settings.REDIS_KEY_PREFIX}:conv-lock:{admin_id}:{session_id}",
            timeout=settings.LLM_TIMEOUT_SECONDS + 30,
            blocking_timeout=settings.CHAT_SESSION_WAIT_SECONDS,
            sleep=0.02,
            # A streamed turn takes the lock in the request thread and releases it in the stream's thread.
            thread_local=False,
        )
        if not lock.acquire():
            raise SessionBusy("Another message to this session is still being answered; retry shortly.")
        try:
            yield
        finally:
            # LockError: it expired, the turn outlived the lock's safety timeout.
            with suppress(LockError):
                lock.release()

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
        now = time.time()
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(self._index_key(admin_id), {session_id: now})
        pipe.expire(self._index_key(admin_id), ttl)
        pipe.zadd(self._all_key(), {f"{admin_id}:{session_id}": now})
        pipe.zremrangebyscore(self._all_key(), "-inf", now - ttl)
        pipe.zcard(self._all_key())
        *_, stored = pipe.execute()
        if stored > settings.MAX_CACHE_SIZE:
            self._evict(stored - settings.MAX_CACHE_SIZE)
        return {name: int(value or 0) for name, value in zip(USAGE_FIELDS, totals, strict=True)}

    def _evict(self, how_many: int) -> None:
        """Drops the least recently used sessions, as locmem's MAX_ENTRIES does."""
        for member, _ in self._redis.zpopmin(self._all_key(), how_many):
            admin_id, session_id = member.decode().split(":", 1)
            self._remove(admin_id, session_id)

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
        pipe.zremrangebyscore(self._all_key(), "-inf", time.time() - settings.MEMORY_TTL_SECONDS)
        pipe.zcard(self._all_key())
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


def conversation_payload(conversation: Conversation) -> dict[str, Any]:
    return {
        "session_id": conversation.session_id,
        "created_at": conversation.created_at,
        "last_activity": conversation.last_activity,
        "message_count": len(conversation.messages),
        "usage": {name: conversation.usage.get(name, 0) for name in USAGE_FIELDS},
        "messages": conversation.messages,
    }
