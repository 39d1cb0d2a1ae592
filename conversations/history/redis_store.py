"""History in Redis (HISTORY_BACKEND=redis), shared by every worker and instance."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from django.conf import settings
from django_redis import get_redis_connection
from redis.exceptions import LockError

from conversations.history.base import (
    MAX_STORED_MESSAGES,
    USAGE_FIELDS,
    Conversation,
    ConversationSummary,
    SessionBusy,
    history_full,
    now_iso,
    turn_seconds,
)
from core.redis_store import decoded

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

# KEYS: all, the admin's index. ARGV: now, ttl, turn seconds, MAX_SESSIONS, MAX_SESSIONS_PER_ADMIN, session, member.
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
            timeout=turn_seconds(),
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
                turn_seconds(),
                settings.MAX_SESSIONS,
                settings.MAX_SESSIONS_PER_ADMIN,
                session_id,
                member,
            ],
        )
        if outcome == b"full":
            raise history_full(float(oldest[0]) if oldest else None, now)
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
