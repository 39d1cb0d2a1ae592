"""History in Redis (HISTORY_BACKEND=redis), shared by every worker and instance."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict

import redis
from django.conf import settings
from redis.exceptions import RedisClusterException

from conversations.history.base import (
    USAGE_FIELDS,
    ChatSlot,
    Conversation,
    SessionBusy,
    SessionListItem,
    SessionTurn,
    SlotPolicy,
    UsagePolicy,
    first_words,
    history_full,
)
from conversations.history.redis_keys import (
    admin_index_key,
    every_session_key,
    index_refresh_seconds,
    lock_key,
    record_order_key,
    records_key,
    session_keys,
    store_index_key,
)
from conversations.history.redis_scripts import (
    RESERVE_SCRIPT,
    BeginArgs,
    ReserveArgs,
    turn_scripts,
)
from conversations.history.redis_turn import RedisTurn
from core.leases import Lease
from core.lua_args import lua_argv
from core.redis_store import (
    decoded,
    redis_client,
    redis_script,
)

_LOCK_RETRY_SECONDS = 0.02


class RedisHistoryStore:
    """History in Redis, under the keys redis_keys.py names.
    A turn with a session costs two round trips: the begin script (the admin's chat slot, the lock, the admission
    of a new session, the history read) and the finish script (the messages, the session's and the admin's usage,
    the indexes, and the lock and slot given back); a failed turn ends with the release script instead. The store
    is given the admin's chat limits (`limits`: the slot and the Lua that takes it in the begin script) and usage
    totals (`usage`: the key the finish script adds to).

    Redis Cluster: each script's keys are in the admin's slot, so the store-wide index, in a slot of its own, is
    kept apart from the turn scripts (redis_scripts.turn_scripts). A new session costs one more round trip, to
    reserve its place (RESERVE_SCRIPT); a session's place is scored by its last activity as of its last refresh,
    which a turn makes (one more round trip) only when it is older than index_refresh_seconds(), and a place is kept
    that much longer than MEMORY_TTL_SECONDS. So the index never counts fewer sessions than are stored, and
    MAX_SESSIONS holds; an expired session may keep its place up to index_refresh_seconds() longer than it lives,
    refusing a new session that much early.
    """

    backend = "redis"

    def __init__(self, *, limits: SlotPolicy, usage: UsagePolicy) -> None:
        self.limits, self.usage = limits, usage
        self._redis = redis_client()
        scripts = turn_scripts(limits.take_slot_lua, cluster=settings.REDIS_CLUSTER)
        self.store_wide = scripts.store_wide  # the turn scripts use the store-wide index (their last key)
        self._begin = redis_script(scripts.begin)
        self.finish_script = redis_script(scripts.finish)
        self.release_script = redis_script(scripts.release)

    def _store_wide(self) -> list[str]:
        return [store_index_key()] if self.store_wide else []

    def begin_keys(self, slot: ChatSlot, session_id: str) -> list[str]:
        admin_id = slot.admin_id
        return [
            *slot.keys(),
            lock_key(admin_id, session_id),
            admin_index_key(admin_id),
            *session_keys(admin_id, session_id),
            records_key(admin_id, session_id),
            *self._store_wide(),
        ]

    def finish_keys(self, slot: ChatSlot, session_id: str) -> list[str]:
        admin_id = slot.admin_id
        return [
            *session_keys(admin_id, session_id),
            admin_index_key(admin_id),
            self.usage.key(admin_id),
            lock_key(admin_id, session_id),
            slot.active_key,
            records_key(admin_id, session_id),
            record_order_key(admin_id, session_id),
            *self._store_wide(),
        ]

    def release_keys(self, slot: ChatSlot, session_id: str) -> list[str]:
        admin_id = slot.admin_id
        return [
            lock_key(admin_id, session_id),
            slot.active_key,
            session_keys(admin_id, session_id)[1],
            *self._store_wide(),
        ]

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
        """One round trip (the begin script) takes the admin's slot, the session's lock, a new session's place and
        reads the history; while another turn holds the session, the script is retried (without taking the slot
        again) every 20 ms for up to CHAT_SESSION_WAIT_SECONDS. On Redis Cluster a new session's place takes one
        more round trip."""
        slot = self.limits.slot(admin_id, requests_per_minute)
        turn = RedisTurn(self, slot, slot_held=False, session_id=session_id, lock_token=secrets.token_hex(16))
        keys = self.begin_keys(slot, session_id)
        give_up_at = time.monotonic() + settings.CHAT_SESSION_WAIT_SECONDS
        slot_to_take = slot.limited
        while True:
            now = time.time()
            args = BeginArgs(
                **asdict(slot.args()),
                slot_to_take=slot_to_take,
                lock_token=turn.lock_token,
                lock_ms=int(hold_seconds * 1000),
                now=now,
                ttl=settings.MEMORY_TTL_SECONDS,
                hold_seconds=hold_seconds,
                max_sessions=settings.MAX_SESSIONS,
                max_sessions_per_admin=settings.MAX_SESSIONS_PER_ADMIN,
                session_id=session_id,
                member=turn.member,
                record_name=record or "",
            )
            try:
                outcome, *found = self._begin(keys=keys, args=lua_argv(args))
            except (redis.RedisError, RedisClusterException):
                # It may have run, its answer lost: what it may have taken is given back once Redis answers.
                turn.slot_held = slot.limited
                with suppress(redis.RedisError, RedisClusterException):
                    turn.give_back(within=hold_seconds)
                raise
            if outcome in (b"rate", b"concurrent"):
                raise slot.refusal(outcome.decode())  # never taken
            turn.slot_held = slot.limited
            if outcome != b"busy":
                break
            slot_to_take = False  # taken by the first try, if the limits are on
            if time.monotonic() + _LOCK_RETRY_SECONDS > give_up_at:
                if turn.slot_held:
                    slot.give_back()
                raise SessionBusy("Another message to this session is still being answered; retry shortly.")
            time.sleep(_LOCK_RETRY_SECONDS)
        if outcome == b"full":
            raise history_full(float(found[0]) if found else None, now)  # the script gave the slot and lock back
        raw_messages, meta, found_record, requests = found
        if int(requests):  # counted by the first try
            slot.requests = int(requests)
        turn.conversation = self._conversation(session_id, raw_messages, meta)
        turn.record = found_record.decode() if found_record else None
        if turn.slot_held:
            turn.leases.append(slot.lease())
        turn.leases.append(
            Lease("token", lock_key(admin_id, session_id), turn.lock_token, hold_seconds, "the session's lock")
        )
        try:
            if outcome == b"new":
                turn.reserved = self._reserve(turn.member, now, hold_seconds)
                turn.reserved_at = now if turn.reserved else None
            elif outcome == b"reserved":  # on a single Redis: scored minus when it was reserved, until it is stored
                turn.reserved = True
                what = "the new session's place"
                turn.leases.append(Lease("reserved-member", store_index_key(), turn.member, hold_seconds, what))
            yield turn
        finally:
            if not turn.finished:
                turn.give_back(within=hold_seconds)

    def _reserve(self, member: str, now: float, hold_seconds: float) -> bool:
        """Redis Cluster: a place in the store-wide index for a new session, in a round trip to that index's slot.
        Returns whether it reserved one (not when the session had one); raises HistoryFull. The place is scored as
        a stored session is, so it lasts MEMORY_TTL_SECONDS without renewal."""
        args = ReserveArgs(
            now=now,
            ttl=settings.MEMORY_TTL_SECONDS,
            hold_seconds=hold_seconds,
            grace=index_refresh_seconds(),
            max_sessions=settings.MAX_SESSIONS,
            member=member,
        )
        placed = redis_script(RESERVE_SCRIPT)(keys=[store_index_key()], args=lua_argv(args))
        if isinstance(placed, list):
            oldest = placed[1] if len(placed) > 1 else None
            raise history_full(float(oldest) if oldest else None, now)
        return placed == 1

    def get(self, admin_id: str, session_id: str) -> Conversation | None:
        messages_key, meta_key = session_keys(admin_id, session_id)
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
        keys = every_session_key(admin_id, session_id)
        for key in keys:
            pipe.delete(key)  # one key per DEL: a cluster pipeline takes no other
        pipe.zrem(admin_index_key(admin_id), session_id)
        pipe.zrem(store_index_key(), f"{admin_id}:{session_id}")
        return sum(pipe.execute()[: len(keys)])

    def delete(self, admin_id: str, session_id: str) -> bool:
        return self._remove(admin_id, session_id) > 0

    def record(self, admin_id: str, session_id: str, name: str) -> str | None:
        found = self._redis.hget(records_key(admin_id, session_id), name)
        return found.decode() if found is not None else None

    def record_put(self, admin_id: str, session_id: str, name: str, value: str) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(records_key(admin_id, session_id), name, value)
        for key in (records_key(admin_id, session_id), record_order_key(admin_id, session_id)):
            pipe.expire(key, settings.MEMORY_TTL_SECONDS)
        pipe.execute()

    def record_delete(self, admin_id: str, session_id: str, name: str) -> bool:
        """Removes the record, and its name from the order of those counted (it no longer counts in the cap)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hdel(records_key(admin_id, session_id), name)
        pipe.lrem(record_order_key(admin_id, session_id), 1, name)
        deleted, _ = pipe.execute()
        return bool(deleted)

    def list(self, admin_id: str, *, offset: int = 0, limit: int | None = None) -> list[SessionListItem]:
        index = admin_index_key(admin_id)
        self._redis.zremrangebyscore(index, "-inf", time.time() - settings.MEMORY_TTL_SECONDS)
        last = -1 if limit is None else offset + limit - 1
        session_ids = [s.decode() for s in self._redis.zrevrange(index, offset, last)]
        pipe = self._redis.pipeline(transaction=False)
        for session_id in session_ids:
            messages_key, meta_key = session_keys(admin_id, session_id)
            pipe.llen(messages_key)
            pipe.hgetall(meta_key)
            pipe.lindex(messages_key, 0)
        results = pipe.execute()
        listed = []
        rows = zip(session_ids, results[::3], results[1::3], results[2::3], strict=True)
        for session_id, count, meta, first in rows:
            if meta:
                meta = decoded(meta)
                usage = {name: int(meta.get(name, 0)) for name in USAGE_FIELDS}
                words = first_words(json.loads(first) if first else None)
                listed.append(
                    SessionListItem(session_id, count, meta["created_at"], meta["last_activity"], usage, words)
                )
        return listed

    def count(self) -> int:
        """Sessions stored in all (on Redis Cluster, as the store-wide index counts them: see the class)."""
        grace = 0 if self.store_wide else index_refresh_seconds()
        pipe = self._redis.pipeline(transaction=False)
        pipe.zremrangebyscore(store_index_key(), 0, time.time() - settings.MEMORY_TTL_SECONDS - grace)
        pipe.zcount(store_index_key(), "(0", "+inf")
        return pipe.execute()[1]
