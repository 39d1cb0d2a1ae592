"""History in Redis (HISTORY_BACKEND=redis), shared by every worker and instance."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from redis.exceptions import RedisClusterException

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
    usage_added,
)
from conversations.history.redis_scripts import CLUSTER, RESERVE_SCRIPT, SINGLE
from conversations.limits import AdminSlot, chat_active_key, slot_release
from conversations.usage import usage_key
from core.leases import Lease, LeaseLost
from core.redis_store import (
    NotReplicated,
    decoded,
    redis_admin_key,
    redis_client,
    redis_give_back,
    redis_script,
    redis_script_replicated,
    redis_tagged_key,
)

_LOCK_RETRY_SECONDS = 0.02


def index_refresh_seconds() -> int:
    """On Redis Cluster, how stale a session's place in the store-wide index may be: a turn refreshes it (one more
    round trip) only when its last refresh is older than this. A tenth of MEMORY_TTL_SECONDS, at most a minute."""
    return max(1, min(60, settings.MEMORY_TTL_SECONDS // 10))


@dataclass
class _RedisTurn:
    store: RedisHistoryStore
    slot: AdminSlot
    session_id: str
    lock_token: str
    conversation: Conversation | None
    leases: list[Lease]
    reserved_at: float | None = None
    finished: bool = False

    def finish(
        self, messages: list[dict[str, Any]], usage: dict[str, int], options: StoreOptions = AS_A_TURN
    ) -> dict[str, int]:
        try:
            totals = self.store._store_turn(
                self.slot.admin_id,
                self.session_id,
                messages,
                usage,
                options,
                slot=self.slot,
                lock_token=self.lock_token,
                reserved_at=self.reserved_at,
            )
        except NotReplicated:
            self.finished = True  # stored, and the lock and slot given back, but not confirmed by a replica
            raise
        self.finished = True
        return totals


class RedisHistoryStore:
    """History in Redis. Keys (under REDIS_KEY_PREFIX), all of one admin in its Redis Cluster slot {a:<admin>}
    but the store-wide index:
    {a:<admin>}:conv:<session>:messages  list of JSON messages
    {a:<admin>}:conv:<session>:meta      hash created_at, last_activity, usage counters, summary (and on Redis
                                         Cluster indexed_at, when the session's place in {conv-index}:all was
                                         refreshed)
    {a:<admin>}:conv-index               sorted set of the admin's session ids by last activity
    {a:<admin>}:conv-lock:<session>      the session's lock: a random token per turn, expiring unless its turn
                                         renews it (SessionTurn.leases)
    {conv-index}:all                     sorted set of every "<admin>:<session>" by last activity, and (on a single
                                         Redis) of the places reserved for new sessions, scored minus the time they
                                         were reserved (so each kind expires on its own clock, and stored sessions
                                         are counted apart)
    A turn with a session costs two round trips: the begin script (the admin's chat slot, the lock, the admission
    of a new session, the history read) and the finish script (the messages, the session's and the admin's usage,
    the indexes, and the lock and slot given back); a failed turn ends with the release script instead.

    Redis Cluster: each script's keys are in the admin's slot, so the store-wide index, in a slot of its own, is
    kept apart from the turn scripts (redis_scripts.CLUSTER). A new session costs one more round trip, to reserve
    its place (RESERVE_SCRIPT); a session's place is scored by its last activity as of its last refresh, which a
    turn makes (one more round trip) only when it is older than index_refresh_seconds(), and a place is kept that
    much longer than MEMORY_TTL_SECONDS. So the index never counts fewer sessions than are stored, and MAX_SESSIONS
    holds; an expired session may keep its place up to index_refresh_seconds() longer than it lives, refusing a
    new session that much early.
    """

    backend = "redis"

    def __init__(self) -> None:
        self._redis = redis_client()
        self._scripts = CLUSTER if settings.REDIS_CLUSTER else SINGLE
        self._begin = redis_script(self._scripts.begin)
        self._finish = redis_script(self._scripts.finish)
        self._release = redis_script(self._scripts.release)

    @staticmethod
    def _keys(admin_id: str, session_id: str) -> tuple[str, str]:
        return redis_admin_key(admin_id, "conv", session_id, "messages"), redis_admin_key(
            admin_id, "conv", session_id, "meta"
        )

    @staticmethod
    def _index_key(admin_id: str) -> str:
        return redis_admin_key(admin_id, "conv-index")

    @staticmethod
    def _all_key() -> str:
        return redis_tagged_key("conv-index", "all")

    @staticmethod
    def _lock_key(admin_id: str, session_id: str) -> str:
        return redis_admin_key(admin_id, "conv-lock", session_id)

    def _store_wide(self) -> list[str]:
        """The store-wide index, as the last key of the turn scripts that use it (not on Redis Cluster)."""
        return [self._all_key()] if self._scripts.store_wide else []

    def begin_keys(self, slot: AdminSlot, session_id: str) -> list[str]:
        admin_id = slot.admin_id
        return [
            *slot.keys(),
            self._lock_key(admin_id, session_id),
            self._index_key(admin_id),
            *self._keys(admin_id, session_id),
            *self._store_wide(),
        ]

    def finish_keys(self, admin_id: str, session_id: str) -> list[str]:
        return [
            *self._keys(admin_id, session_id),
            self._index_key(admin_id),
            usage_key(admin_id),
            self._lock_key(admin_id, session_id),
            chat_active_key(admin_id),
            *self._store_wide(),
        ]

    def release_keys(self, admin_id: str, session_id: str) -> list[str]:
        return [
            self._lock_key(admin_id, session_id),
            chat_active_key(admin_id),
            self._keys(admin_id, session_id)[1],
            *self._store_wide(),
        ]

    @contextmanager
    def session_turn(self, slot: AdminSlot, session_id: str, *, hold_seconds: float) -> Iterator[SessionTurn]:
        """One round trip (the begin script) takes the admin's slot, the session's lock, a new session's place and
        reads the history; while another turn holds the session, the script is retried (without taking the slot
        again) every 20 ms for up to CHAT_SESSION_WAIT_SECONDS. On Redis Cluster a new session's place takes one
        more round trip."""
        admin_id = slot.admin_id
        member = f"{admin_id}:{session_id}"
        token = secrets.token_hex(16)
        keys = self.begin_keys(slot, session_id)
        give_up_at = time.monotonic() + settings.CHAT_SESSION_WAIT_SECONDS
        take_slot = slot.limited
        while True:
            now = time.time()
            try:
                outcome, *found = self._begin(
                    keys=keys,
                    args=[
                        *slot.args(),
                        int(take_slot),
                        token,
                        int(hold_seconds * 1000),
                        now,
                        settings.MEMORY_TTL_SECONDS,
                        hold_seconds,
                        settings.MAX_SESSIONS,
                        settings.MAX_SESSIONS_PER_ADMIN,
                        session_id,
                        member,
                    ],
                )
            except (redis.RedisError, RedisClusterException):
                # It may have run, its answer lost: what it may have taken is given back once Redis answers.
                slot_member = slot.member if slot.limited and not slot.released else ""
                slot.released = True
                with suppress(redis.RedisError, RedisClusterException):
                    self._give_back(admin_id, session_id, token, slot_member, reserved=False, within=hold_seconds)
                raise
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
        lock = Lease("token", self._lock_key(admin_id, session_id), token, hold_seconds, "the session's lock")
        conversation = self._conversation(session_id, raw_messages, meta)
        turn = _RedisTurn(self, slot, session_id, token, conversation, [lock])
        try:
            if outcome == b"new":
                outcome = self._reserve(member, now, hold_seconds)
                turn.reserved_at = now if outcome == b"reserved" else None
            elif outcome == b"reserved":  # on a single Redis: scored minus when it was reserved, until it is stored
                place = Lease("reserved-member", self._all_key(), member, hold_seconds, "the new session's place")
                turn.leases.append(place)
            yield turn
        finally:
            if not turn.finished:
                member_held = "" if slot.released else slot.member
                slot.released = True
                reserved = outcome == b"reserved"
                self._give_back(admin_id, session_id, token, member_held, reserved=reserved, within=hold_seconds)

    def _give_back(
        self, admin_id: str, session_id: str, token: str, slot_member: str, *, reserved: bool, within: float
    ) -> None:
        """The release script: a failed turn's lock, slot and new session's place given back. When Redis cannot be
        reached (a failover) it is retried in the background, so that the session is not locked for as long as
        its lock lives once Redis is back."""
        member = f"{admin_id}:{session_id}"
        keys, args = self.release_keys(admin_id, session_id), [token, slot_member, member, int(reserved)]
        release, all_key, client = self._release, self._all_key(), self._redis
        cluster = not self._scripts.store_wide

        def give_back() -> None:
            stored = release(keys=keys, args=args)
            if reserved and cluster and not stored:
                client.zrem(all_key, member)

        redis_give_back(give_back, within=within)

    def _reserve(self, member: str, now: float, hold_seconds: float) -> bytes:
        """Redis Cluster: a place in the store-wide index for a new session, in a round trip to that index's slot.
        Returns the admission (b"reserved", or b"admitted" when it had one); raises HistoryFull. The place is
        scored as a stored session is, so it lasts MEMORY_TTL_SECONDS without renewal."""
        placed = redis_script(RESERVE_SCRIPT)(
            keys=[self._all_key()],
            args=[
                now,
                settings.MEMORY_TTL_SECONDS,
                hold_seconds,
                index_refresh_seconds(),
                settings.MAX_SESSIONS,
                member,
            ],
        )
        if isinstance(placed, list):
            oldest = placed[1] if len(placed) > 1 else None
            raise history_full(float(oldest) if oldest else None, now)
        return b"reserved" if placed == 1 else b"admitted"

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
        reserved_at: float | None = None,
    ) -> dict[str, int]:
        """The finish script (acknowledged once a replica has it, where REDIS_WAIT_REPLICAS asks), then, only when
        the admin went over MAX_SESSIONS_PER_ADMIN or (Redis Cluster) the session's place in the store-wide index
        is due for a refresh, one more round trip: the evicted sessions' keys are named only once the script has
        chosen them."""
        ttl = settings.MEMORY_TTL_SECONDS
        counted = {name: usage_added(0, int(usage[name])) for name in USAGE_FIELDS if name in usage}
        now = time.time()
        outcome = redis_script_replicated(
            self._finish,
            keys=self.finish_keys(admin_id, session_id),
            args=[
                ttl,
                now_iso(),
                MAX_STORED_MESSAGES,
                json.dumps(counted),
                now,
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
                "" if reserved_at is None else reserved_at,
                index_refresh_seconds(),
                *(json.dumps(m) for m in messages),
            ],
        )
        if outcome == [b"lost"]:
            raise LeaseLost("the session's lock")
        totals, evicted, refresh = outcome
        if slot is not None:
            slot.released = True
        if evicted or refresh:
            pipe = self._redis.pipeline(transaction=False)
            for old_session in evicted:
                for key in self._keys(admin_id, old_session.decode()):
                    pipe.delete(key)  # one key per DEL: a cluster pipeline takes no other
            if not self._scripts.store_wide:
                if evicted:
                    pipe.zrem(self._all_key(), *(f"{admin_id}:{old.decode()}" for old in evicted))
                if refresh:
                    pipe.zadd(self._all_key(), {f"{admin_id}:{session_id}": now})
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
        for key in self._keys(admin_id, session_id):
            pipe.delete(key)
        pipe.zrem(self._index_key(admin_id), session_id)
        pipe.zrem(self._all_key(), f"{admin_id}:{session_id}")
        deleted_messages, deleted_meta, *_ = pipe.execute()
        return deleted_messages + deleted_meta

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
        """Sessions stored in all (on Redis Cluster, as the store-wide index counts them: see the class)."""
        grace = 0 if self._scripts.store_wide else index_refresh_seconds()
        pipe = self._redis.pipeline(transaction=False)
        pipe.zremrangebyscore(self._all_key(), 0, time.time() - settings.MEMORY_TTL_SECONDS - grace)
        pipe.zcount(self._all_key(), "(0", "+inf")
        return pipe.execute()[1]
