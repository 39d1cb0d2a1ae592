"""A turn in progress on the Redis history store: what it holds, and the scripts that store it or give it back."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings

from conversations.history.base import (
    MAX_STORED_MESSAGES,
    NEW_EXCHANGE,
    USAGE_FIELDS,
    ChatSlot,
    Conversation,
    StoreOptions,
    now_iso,
    usage_added,
)
from conversations.history.redis_keys import every_session_key, index_refresh_seconds, store_index_key
from conversations.history.redis_scripts import FinishArgs, ReleaseArgs
from core.leases import Lease, LeaseLost
from core.lua_args import lua_argv
from core.redis_store import NotReplicated, PipelineWrites, redis_client, redis_give_back, redis_script_replicated

if TYPE_CHECKING:
    from conversations.history.redis_store import RedisHistoryStore


@dataclass
class RedisTurn:
    """A turn's hold on its session: the admin's slot, the session's lock and a new session's place. `finish` stores
    the turn and gives them back in one script; a turn that leaves without it gives them back with `give_back`."""

    store: RedisHistoryStore
    slot: ChatSlot
    slot_held: bool
    session_id: str
    lock_token: str
    conversation: Conversation | None = None
    record: str | None = None
    leases: list[Lease] = field(default_factory=list)
    reserved: bool = False  # a place was reserved for this new session in the store-wide index
    reserved_at: float | None = None  # on Redis Cluster, when (RESERVE_SCRIPT)
    finished: bool = False

    @property
    def member(self) -> str:
        return f"{self.slot.admin_id}:{self.session_id}"

    def finish(
        self,
        messages: list[dict[str, Any]],
        usage: dict[str, int],
        options: StoreOptions = NEW_EXCHANGE,
        *,
        with_writes: PipelineWrites | None = None,
    ) -> dict[str, int]:
        """The finish script (acknowledged once a replica has it, where REDIS_WAIT_REPLICAS asks), then, only when
        the admin went over MAX_SESSIONS_PER_ADMIN or (Redis Cluster) the session's place in the store-wide index
        is due for a refresh, one more round trip: the evicted sessions' keys are named only once the script has
        chosen them."""
        store, admin_id = self.store, self.slot.admin_id
        now = time.time()
        day = options.usage_day if options.admin_usage and options.usage_day and options.usage_day.increments else None
        args = FinishArgs(
            ttl=settings.MEMORY_TTL_SECONDS,
            now_iso=now_iso(),
            max_stored=MAX_STORED_MESSAGES,
            usage_json=json.dumps({name: usage_added(0, int(usage[name])) for name in USAGE_FIELDS if name in usage}),
            now=now,
            max_sessions_per_admin=settings.MAX_SESSIONS_PER_ADMIN,
            session_id=self.session_id,
            admin_id=admin_id,
            admin_usage=options.admin_usage,
            lock_token=self.lock_token,
            slot_member=self.slot.member if self.slot_held else "",
            replace_last=options.replace_last,
            created_at=options.created_at or "",
            drop_first=options.drop_first,
            set_summary=options.summary is not None,
            summary=options.summary or "",
            reserved_at=self.reserved_at,
            refresh_seconds=index_refresh_seconds(),
            record_name=options.record[0] if options.record else "",
            record=options.record[1] if options.record else "",
            records_kept=options.records_kept if options.record else 0,
            day_json=json.dumps(day.increments) if day else "",
            day_expire_at=day.expire_at if day else 0,
            messages=[json.dumps(m) for m in messages],
        )
        keys = store.finish_keys(self.slot, self.session_id) + ([day.key] if day else [])
        try:
            outcome = redis_script_replicated(store.finish_script, keys=keys, args=lua_argv(args), before=with_writes)
        except NotReplicated:
            self.finished = True  # stored, and the lock and slot given back, but not confirmed by a replica
            raise
        if outcome == [b"lost"]:
            raise LeaseLost("the session's lock")
        self.finished = True
        totals, evicted, refresh = outcome
        if evicted or refresh:
            pipe = redis_client().pipeline(transaction=False)
            for old_session in evicted:
                for key in every_session_key(admin_id, old_session.decode()):
                    pipe.delete(key)  # one key per DEL: a cluster pipeline takes no other
            if not store.store_wide:
                if evicted:
                    pipe.zrem(store_index_key(), *(f"{admin_id}:{old.decode()}" for old in evicted))
                if refresh:
                    pipe.zadd(store_index_key(), {self.member: now})
            pipe.execute()
        return {name: int(value or 0) for name, value in zip(USAGE_FIELDS, totals, strict=True)}

    def give_back(self, *, within: float) -> None:
        """The release script: the lock, the slot and a new session's place of a turn that stored nothing. When
        Redis cannot be reached (a failover) it is retried in the background, so that the session is not locked
        for as long as its lock lives once Redis is back."""
        args = ReleaseArgs(
            lock_token=self.lock_token,
            slot_member=self.slot.member if self.slot_held else "",
            member=self.member,
            reserved=self.reserved,
        )
        self.slot_held = False
        keys, argv = self.store.release_keys(self.slot, self.session_id), lua_argv(args)
        release, member, reserved = self.store.release_script, self.member, self.reserved
        cluster, client = not self.store.store_wide, redis_client()

        def give_back() -> None:
            stored = release(keys=keys, args=argv)
            if reserved and cluster and not stored:
                client.zrem(store_index_key(), member)

        redis_give_back(give_back, within=within)
