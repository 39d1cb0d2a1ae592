"""Chat limits. Per admin: requests per minute and chats in flight, counted in Redis so that every worker and
instance shares them. Per process: chats in flight, at most MAX_CHATS_IN_FLIGHT, which follows the memory a
process has for them (settings), so that a chat it has no room for is refused at once."""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from redis.client import Pipeline

from core.exceptions import ServiceError
from core.leases import Lease
from core.lua_args import lua_argv
from core.redis_store import redis_admin_key, redis_client, redis_give_back, redis_script


class ChatLimited(ServiceError):
    status_code = 429
    code = "chat_limit_exceeded"


class ServerBusy(ServiceError):
    status_code = 503
    code = "server_busy"


class ProcessChats:
    """Chats in flight in this process: a semaphore that refuses instead of waiting. The limit comes with each
    turn rather than at creation, so that a changed MAX_CHATS_IN_FLIGHT applies at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    @contextmanager
    def slot(self, limit: int) -> Iterator[None]:
        with self._lock:
            if self.count >= limit:
                raise ServerBusy(
                    f"This server process is answering MAX_CHATS_IN_FLIGHT ({limit}) chats already; try again shortly.",
                    retry_after=1,
                )
            self.count += 1
        try:
            yield
        finally:
            with self._lock:
                self.count -= 1


process_chats = ProcessChats()

# A Lua function that takes one chat slot of an admin: counts the request against its requests per minute (its own,
# else CHAT_REQUESTS_PER_MINUTE) and, when CHAT_MAX_CONCURRENT leaves room, adds the slot to the admin's chats in
# flight. Returns nil and the requests this minute when the slot is taken, or the limit that refused it ('rate' or
# 'concurrent'). A script that takes a slot defines it first (the
# history stores are given it: ChatLimits) and calls it with AdminSlot.keys() and, named as here, SlotArgs.
TAKE_SLOT_LUA = """
local function take_slot(rate_key, active_key, per_minute, concurrent, started, stale_before, slot_ttl, slot_member)
  per_minute, concurrent, started, stale_before, slot_ttl = tonumber(per_minute), tonumber(concurrent),
    tonumber(started), tonumber(stale_before), tonumber(slot_ttl)
  if not (per_minute and concurrent and started and stale_before and slot_ttl) then error('slot: not a number') end
  if per_minute == 0 and concurrent == 0 then return nil, 0 end
  local requests = redis.call('INCR', rate_key)
  redis.call('EXPIRE', rate_key, 61)
  if per_minute > 0 and requests > per_minute then return 'rate' end
  redis.call('ZREMRANGEBYSCORE', active_key, '-inf', stale_before)
  if concurrent > 0 and redis.call('ZCARD', active_key) >= concurrent then return 'concurrent' end
  redis.call('ZADD', active_key, started, slot_member)
  redis.call('EXPIRE', active_key, slot_ttl)
  return nil, requests
end
"""

_TAKE_SCRIPT = (
    TAKE_SLOT_LUA
    + "local refused, requests = take_slot(KEYS[1], KEYS[2], unpack(ARGV)) return {refused or '', requests or 0}"
)


def chat_active_key(admin_id: str) -> str:
    return redis_admin_key(admin_id, "chat-active")


@dataclass(frozen=True)
class SlotArgs:
    """take_slot's arguments after its keys, in its parameters' order."""

    per_minute: int  # CHAT_REQUESTS_PER_MINUTE
    concurrent: int  # CHAT_MAX_CONCURRENT
    started: float  # when the turn began: the slot's score
    stale_before: float  # slots scored before this belong to a process that died mid-turn: they no longer count
    slot_ttl: int  # the set of slots in flight expires this long after its last new slot
    slot_member: str  # the slot


@dataclass
class AdminSlot:
    """One turn's place among its admin's chats, counted in Redis so that the limits hold across processes. What
    holds it (a store's turn, a turn without a session) takes it once and gives it back once.
    Its keys, `A:chat-rate:<minute>` and `A:chat-active`, are in the Redis key map (docs/architecture.md)."""

    admin_id: str
    per_minute_own: int | None = None  # the admin's own requests per minute (accounts.key_rules), if it has one
    started: float = field(default_factory=time.time)
    member: str = field(default_factory=lambda: secrets.token_hex(8))
    requests: int = 0  # once taken: the admin's requests this minute, this one included

    @property
    def per_minute(self) -> int:
        own = self.per_minute_own
        return settings.CHAT_REQUESTS_PER_MINUTE if own is None else own

    @property
    def limited(self) -> bool:
        return bool(self.per_minute or settings.CHAT_MAX_CONCURRENT)

    @property
    def active_key(self) -> str:
        return chat_active_key(self.admin_id)

    def keys(self) -> list[str]:
        return [redis_admin_key(self.admin_id, "chat-rate", str(int(self.started // 60))), self.active_key]

    def args(self) -> SlotArgs:
        return SlotArgs(
            per_minute=self.per_minute,
            concurrent=settings.CHAT_MAX_CONCURRENT,
            started=self.started,
            stale_before=self.started - slot_hold_seconds(),
            slot_ttl=math.ceil(slot_hold_seconds()),
            slot_member=self.member,
        )

    def refusal(self, limit: str) -> ChatLimited:
        if limit == "rate":
            what = "CHAT_REQUESTS_PER_MINUTE" if self.per_minute_own is None else "the requests per minute"
            return ChatLimited(f"Over {what} ({self.per_minute}) for this admin.", retry_after=60 - self.started % 60)
        concurrent = settings.CHAT_MAX_CONCURRENT
        return ChatLimited(f"Over CHAT_MAX_CONCURRENT ({concurrent}) chats in flight for this admin.", retry_after=1)

    def lease(self) -> Lease:
        """The slot, for its turn to keep while it runs."""
        return Lease("member", self.active_key, self.member, slot_hold_seconds(), "its place among the admin's chats")

    def take(self) -> bool:
        """Takes the slot in one round trip, raising ChatLimited when the admin is over CHAT_REQUESTS_PER_MINUTE or
        CHAT_MAX_CONCURRENT; returns whether a slot is now held (none when the limits are off)."""
        if not self.limited:
            return False
        refused, requests = redis_script(_TAKE_SCRIPT)(keys=self.keys(), args=lua_argv(self.args()))
        if refused:
            raise self.refusal(refused.decode())
        self.requests = int(requests)
        return True

    def release_into(self, pipe: Pipeline) -> None:
        """Queues the slot's release on a pipeline that also writes the turn's end."""
        pipe.zrem(self.active_key, self.member)

    def give_back(self) -> None:
        """Gives the slot back on its own, retried in the background while Redis cannot be reached, so that a
        failover leaves no slot counted."""
        client, key, member = redis_client(), self.active_key, self.member
        redis_give_back(lambda: client.zrem(key, member), within=slot_hold_seconds())


class ChatLimits:
    """The per-admin chat limits as the history stores are given them: the slot a turn takes, and the Lua function
    that takes it within a store's own script (one round trip for the slot, the session's lock and the history)."""

    take_slot_lua = TAKE_SLOT_LUA

    @staticmethod
    def slot(admin_id: str, requests_per_minute: int | None = None) -> AdminSlot:
        return AdminSlot(admin_id, requests_per_minute)


chat_limits = ChatLimits()


def turn_hold_seconds() -> float:
    """How long what a turn holds (its session's lock, a new session's place, its budget reservation) lasts unless
    renewed. A renewal (core.leases.Hold) is due once a third of it has passed and comes the next time the turn
    hears from the upstream, at most LLM_TIMEOUT_SECONDS later (the call's deadline, or one read of a stream): so
    1.5 times that never runs out, and TURN_HOLD_MARGIN_SECONDS is to spare."""
    return 1.5 * settings.LLM_TIMEOUT_SECONDS + settings.TURN_HOLD_MARGIN_SECONDS


def slot_hold_seconds() -> float:
    """How long the admin's slot lasts unless renewed: a turn's hold, and the wait for its session (the slot is
    taken before it)."""
    return settings.CHAT_SESSION_WAIT_SECONDS + turn_hold_seconds()
