"""Chat limits. Per admin: requests per minute and chats in flight, counted in Redis so that every worker and
instance shares them. Per process: chats in flight, kept below the server's threads so that a thread is always
free for health checks, logins and the docs."""

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

# A Lua function that takes one chat slot of an admin: counts the request against CHAT_REQUESTS_PER_MINUTE and,
# when CHAT_MAX_CONCURRENT leaves room, adds the slot to the admin's chats in flight. Returns nil when the slot is
# taken, or the limit that refused it ('rate' or 'concurrent'). Scripts that take a slot include it; its arguments
# are AdminSlot.keys() and AdminSlot.args().
TAKE_SLOT_LUA = """
local function take_slot(rate_key, active_key, per_minute, concurrent, now, stale_before, ttl, slot)
  per_minute, concurrent, now, stale_before, ttl = tonumber(per_minute), tonumber(concurrent), tonumber(now),
    tonumber(stale_before), tonumber(ttl)
  if not (per_minute and concurrent and now and stale_before and ttl) then error('slot: not a number') end
  if per_minute == 0 and concurrent == 0 then return nil end
  local requests = redis.call('INCR', rate_key)
  redis.call('EXPIRE', rate_key, 61)
  if per_minute > 0 and requests > per_minute then return 'rate' end
  redis.call('ZREMRANGEBYSCORE', active_key, '-inf', stale_before)
  if concurrent > 0 and redis.call('ZCARD', active_key) >= concurrent then return 'concurrent' end
  redis.call('ZADD', active_key, now, slot)
  redis.call('EXPIRE', active_key, ttl)
  return nil
end
"""


def chat_active_key(admin_id: str) -> str:
    return redis_admin_key(admin_id, "chat-active")


_TAKE_SCRIPT = TAKE_SLOT_LUA + "return take_slot(KEYS[1], KEYS[2], unpack(ARGV))"


@dataclass
class AdminSlot:
    """One turn's place among its admin's chats, counted in Redis so that the limits hold across processes.
    Key names (under REDIS_KEY_PREFIX, in the admin's slot): {a:<admin>}:chat-rate:<minute> (requests this minute)
    and {a:<admin>}:chat-active (a sorted set of the slots in flight, scored by when they were taken or last
    renewed)."""

    admin_id: str
    started: float = field(default_factory=time.time)
    member: str = field(default_factory=lambda: secrets.token_hex(8))
    released: bool = False

    @property
    def limited(self) -> bool:
        return bool(settings.CHAT_REQUESTS_PER_MINUTE or settings.CHAT_MAX_CONCURRENT)

    @property
    def active_key(self) -> str:
        return chat_active_key(self.admin_id)

    def keys(self) -> list[str]:
        return [redis_admin_key(self.admin_id, "chat-rate", str(int(self.started // 60))), self.active_key]

    def args(self) -> list[str | int | float]:
        # A slot older than any turn can last belongs to a process that died mid-turn: it no longer counts.
        stale_before = self.started - slot_seconds()
        return [
            settings.CHAT_REQUESTS_PER_MINUTE,
            settings.CHAT_MAX_CONCURRENT,
            self.started,
            stale_before,
            math.ceil(slot_seconds()),
            self.member,
        ]

    def refusal(self, limit: str) -> ChatLimited:
        if limit == "rate":
            per_minute = settings.CHAT_REQUESTS_PER_MINUTE
            return ChatLimited(
                f"Over CHAT_REQUESTS_PER_MINUTE ({per_minute}) for this admin.", retry_after=60 - self.started % 60
            )
        concurrent = settings.CHAT_MAX_CONCURRENT
        return ChatLimited(f"Over CHAT_MAX_CONCURRENT ({concurrent}) chats in flight for this admin.", retry_after=1)

    def leases(self) -> list[Lease]:
        """The slot, for the turn to keep while it runs (nothing when the limits are off)."""
        if not self.limited or self.released:
            return []
        return [Lease("member", self.active_key, self.member, slot_seconds(), "its place among the admin's chats")]

    def release_into(self, pipe: Pipeline) -> None:
        """Queues the slot's release on a pipeline; the caller sends it, then sets `released`."""
        pipe.zrem(self.active_key, self.member)


@contextmanager
def admin_slot(slot: AdminSlot) -> Iterator[AdminSlot]:
    """Holds the admin's slot for a turn (a stream's too): one round trip to take it, raising ChatLimited when the
    admin is over CHAT_REQUESTS_PER_MINUTE or CHAT_MAX_CONCURRENT, and one to give it back on leaving unless the
    turn gave it back with its last write (AdminSlot.release_into)."""
    if slot.limited:
        refused = redis_script(_TAKE_SCRIPT)(keys=slot.keys(), args=slot.args())
        if refused:
            slot.released = True  # never taken
            raise slot.refusal(refused.decode())
    try:
        yield slot
    finally:
        slot_release(slot)


def turn_seconds() -> float:
    """How long what a turn holds (its session's lock, a new session's place, its budget reservation) lasts unless
    renewed. A renewal (core.leases.Hold) is due once a third of it has passed and comes the next time the turn
    hears from the upstream, at most LLM_TIMEOUT_SECONDS later (the call's deadline, or one read of a stream): so
    1.5 times that never runs out, and TURN_HOLD_MARGIN_SECONDS is to spare."""
    return 1.5 * settings.LLM_TIMEOUT_SECONDS + settings.TURN_HOLD_MARGIN_SECONDS


def slot_seconds() -> float:
    """How long the admin's slot lasts unless renewed: a turn's hold, and the wait for its session (the slot is
    taken before it)."""
    return settings.CHAT_SESSION_WAIT_SECONDS + turn_seconds()


def slot_release(slot: AdminSlot) -> None:
    if not slot.released:
        slot.released = True
        client, key, member = redis_client(), slot.active_key, slot.member
        # Retried in the background while Redis cannot be reached, so that a failover leaves no slot counted.
        redis_give_back(lambda: client.zrem(key, member), within=slot_seconds())
