"""History in Redis (HISTORY_BACKEND=redis), shared by every worker and instance."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from conversations.history.base import (
    AS_A_TURN,
    MAX_STORED_MESSAGES,
    USAGE_FIELDS,
    Conversation,
    ConversationSummary,
    SessionBusy,
    SessionTurn,
    StoreOptions,
    history_full,
    now_iso,
    turn_seconds,
)
from conversations.history.redis_scripts import BEGIN_SCRIPT, FINISH_SCRIPT, RELEASE_SCRIPT
from conversations.limits import AdminSlot, chat_active_key, slot_release
from conversations.usage import usage_key
from core.redis_store import decoded, redis_client, redis_script

_LOCK_RETRY_SECONDS = 0.02


@dataclass
class _RedisTurn:
    store: RedisHistoryStore
    slot: AdminSlot
    session_id: str
    lock_token: str
    conversation: Conversation | None
    finished: bool = False

    def finish(self, messages: list[dict[str, Any]], usage: dict[str, int], **how: Any) -> dict[str, int]:
        totals = self.store._store_turn(
            self.slot.admin_id,
            self.session_id,
            messages,
            usage,
            StoreOptions(**how),
            slot=self.slot,
            lock_token=self.lock_token,
        )
        self.finished = True
        return totals


class RedisHistoryStore:
    """History in Redis. Keys (under REDIS_KEY_PREFIX):
    conv:{<admin>:<session>}:messages  list of JSON messages
    conv:{<admin>:<session>}:meta      hash created_at, last_activity, usage counters and summary
    {conv-index}:<admin>               sorted set of the admin's session ids by last activity
    {conv-index}:all                   sorted set of every "<admin>:<session>" by last activity, and of the places
                                       reserved for new sessions, scored minus the time they were reserved (so each
                                       kind expires on its own clock, and stored sessions are counted apart)
    conv-lock:<admin>:<session>        the session's lock: a random token per turn, expiring after turn_seconds()
    A turn with a session costs two round trips: the begin script (the admin's chat slot, the lock, the admission
    of a new session, the history read) and the finish script (the messages, the session's and the admin's usage,
    the indexes, and the lock and slot given back); a failed turn ends with the release script instead.

    Redis Cluster: every key a script uses is declared in its KEYS, but those keys are not in one slot yet. The
    index keys share the {conv-index} tag, a session's two keys share theirs, while the lock, the admin's
    limit:chat-rate/limit:chat-active and usage keys have none. One slot for all of them would need a common hash
    tag, and with {conv-index}:all in every turn that tag would put every turn's keys on one node: the store-wide
    count would first have to leave the per-turn scripts (or the scripts split per slot, at a round trip each).
    """

    backend = "redis"

    def __init__(self) -> None:
        self._redis = redis_client()
        self._begin = redis_script(BEGIN_SCRIPT)
        self._finish = redis_script(FINISH_SCRIPT)
        self._release = redis_script(RELEASE_SCRIPT)

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

    @staticmethod
    def _lock_key(admin_id: str, session_id: str) -> str:
        # The name redis-py's Lock used, so that instances of either version exclude each other.
        return f"{settings.REDIS_KEY_PREFIX}:conv-lock:{admin_id}:{session_id}"

    @contextmanager
    def session_turn(self, slot: AdminSlot, session_id: str) -> Iterator[SessionTurn]:
        """One round trip (the begin script) takes the admin's slot, the session's lock, a new session's place and
        reads the history; while another turn holds the session, the script is retried (without taking the slot
        again) every 20 ms for up to CHAT_SESSION_WAIT_SECONDS."""
        admin_id = slot.admin_id
        lock_key, member = self._lock_key(admin_id, session_id), f"{admin_id}:{session_id}"
        token = secrets.token_hex(16)
        keys = [*slot.keys(), lock_key, self._all_key(), self._index_key(admin_id), *self._keys(admin_id, session_id)]
        give_up_at = time.monotonic() + settings.CHAT_SESSION_WAIT_SECONDS
        take_slot = slot.limited
        while True:
            now = time.time()
            outcome, *found = self._begin(
                keys=keys,
                args=[
                    *slot.args(),
                    int(take_slot),
                    token,
                    int(turn_seconds() * 1000),
                    now,
                    settings.MEMORY_TTL_SECONDS,
                    turn_seconds(),
                    settings.MAX_SESSIONS,
                    settings.MAX_SESSIONS_PER_ADMIN,
                    session_id,
                    member,
                ],
            )
            if outcome != b"busy":
                break
            take_slot = False  # taken by the first try, if the limits are on
            if time.monotonic() + _LOCK_RETRY_SECONDS > give_up_at:
                slot_release(slot)
                raise SessionBusy("Another message to this session is still being answered; retry shortly.")
            time.sleep(_LOCK_RETRY_SECONDS)
        if outcome in (b"rate", b"concurrent"):
            slot.released = True  # never taken
            raise slot.refusal(outcome.decode())
        if outcome == b"full":
            slot.released = True  # given back by the script, with the lock
            raise history_full(float(found[0]) if found else None, now)
        raw_messages, meta = found
        turn = _RedisTurn(self, slot, session_id, token, self._conversation(session_id, raw_messages, meta))
        try:
            yield turn
        finally:
            if not turn.finished:
                self._release(
                    keys=[self._all_key(), lock_key, slot.active_key],
                    args=[member, token, "" if slot.released else slot.member, int(outcome == b"reserved")],
                )
                slot.released = True

    def _store_turn(
        self,
        admin_id: str,
        session_id: str,
        messages: list[dict[str, Any]],
        usage: dict[str, int],
        options: StoreOptions = AS_A_TURN,
        *,
        slot: AdminSlot | None = None,
        lock_token: str = "",
    ) -> dict[str, int]:
        """The finish script, then (only when the admin went over MAX_SESSIONS_PER_ADMIN) the evicted sessions'
        keys deleted: their names are known only once the script has chosen them."""
        ttl = settings.MEMORY_TTL_SECONDS
        counted = {name: usage[name] for name in USAGE_FIELDS if name in usage}
        totals, evicted = self._finish(
            keys=[
                *self._keys(admin_id, session_id),
                self._all_key(),
                self._index_key(admin_id),
                usage_key(admin_id),
                self._lock_key(admin_id, session_id),
                chat_active_key(admin_id),
            ],
            args=[
                ttl,
                now_iso(),
                MAX_STORED_MESSAGES,
                json.dumps(counted),
                time.time(),
                settings.MAX_SESSIONS_PER_ADMIN,
                session_id,
                admin_id,
                int(slot is not None and options.admin_usage),
                lock_token,
                "" if slot is None or slot.released else slot.member,
                options.replace_last,
                options.created_at or "",
                options.drop_first,
                int(options.summary is not None),
                options.summary or "",
                *(json.dumps(m) for m in messages),
            ],
        )
        if slot is not None:
            slot.released = True
        if evicted:
            pipe = self._redis.pipeline(transaction=False)
            for old_session in evicted:
                pipe.delete(*self._keys(admin_id, old_session.decode()))
            pipe.execute()
        return {name: int(value or 0) for name, value in zip(USAGE_FIELDS, totals, strict=True)}

    def append(
        self, admin_id: str, session_id: str, messages: list[dict[str, Any]], usage: dict[str, int]
    ) -> dict[str, int]:
        return self._store_turn(admin_id, session_id, messages, usage)

    def get(self, admin_id: str, session_id: str) -> Conversation | None:
        messages_key, meta_key = self._keys(admin_id, session_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.lrange(messages_key, 0, -1)
        pipe.hgetall(meta_key)
        return self._conversation(session_id, *pipe.execute())

    @staticmethod
    def _conversation(
        session_id: str, raw_messages: list[bytes], meta: dict[bytes, bytes] | list[bytes]
    ) -> Conversation | None:
        if not meta:
            return None
        if isinstance(meta, list):  # HGETALL from a script: a flat list of fields and values
            meta = dict(zip(meta[::2], meta[1::2], strict=True))
        fields = decoded(meta)
        return Conversation(
            session_id=session_id,
            messages=[json.loads(m) for m in raw_messages],
            created_at=fields.get("created_at", ""),
            last_activity=fields.get("last_activity", ""),
            usage={name: int(fields.get(name, 0)) for name in USAGE_FIELDS},
            summary=fields.get("summary", ""),
        )

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
