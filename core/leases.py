"""Leases: what a request holds in Redis while it runs (a lock, a place among limited ones, a reservation). Each
expires on its own, so that a process that dies mid-request frees what it held; a request that runs long keeps
it by renewal. A `Hold` is everything one request holds: it renews all of it in one round trip (so its keys share
one Redis Cluster slot), once a third of the shortest lease has passed, and says when something is gone."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import chain
from typing import Literal

from core.exceptions import ServiceError
from core.redis_store import redis_script

# How a lease is kept in Redis, and what marks it as the holder's:
#   token           a key whose value is the holder's token (a lock)
#   hash-token      a hash whose `token` field is the holder's token
#   member          a sorted-set member, the holder, scored by when it was taken or renewed; the set expires too
#   reserved-member a sorted-set member scored minus when it was taken or renewed (a score of 0 or more: the place
#                   is no longer reserved but taken for good, and needs no renewal)
#   expiring-field  a hash field, the holder, whose value is "<amount>:<expires at>" (the amount may hold colons)
LeaseKind = Literal["token", "hash-token", "member", "reserved-member", "expiring-field"]


@dataclass(frozen=True)
class Lease:
    kind: LeaseKind
    key: str
    holder: str
    seconds: float  # how long it lasts from each renewal
    what: str  # what it is, in the error when it is gone: "the session's lock"


class LeaseLost(ServiceError):
    """Something the request held expired or was taken by another before it finished; it stored nothing."""

    status_code = 503
    code = "hold_lost"

    def __init__(self, what: str) -> None:
        super().__init__(f"This request lost {what} before it finished, and stored nothing; retry it.", retry_after=1)


# KEYS: the leases' keys. ARGV: now (seconds), then each lease's kind, holder and seconds. Returns the position of the
# first lease that is no longer held (and renews none), or 0 once every one is renewed for its seconds from now.
_RENEW = """
local now = tonumber(ARGV[1])
local function lease(i) return KEYS[i], ARGV[3 * i - 1], ARGV[3 * i], tonumber(ARGV[3 * i + 1]) end
local function held(key, kind, holder, seconds)
  if kind == 'token' then return redis.call('GET', key) == holder end
  if kind == 'hash-token' then return redis.call('HGET', key, 'token') == holder end
  if kind == 'expiring-field' then
    local value = redis.call('HGET', key, holder)
    return value and tonumber(string.match(value, ':([^:]*)$')) >= now
  end
  local score = tonumber(redis.call('ZSCORE', key, holder))
  if kind == 'member' then return score and score >= now - seconds end
  return score and (score >= 0 or -score >= now - seconds)
end
local function renew(key, kind, holder, seconds)
  if kind == 'token' or kind == 'hash-token' then
    redis.call('PEXPIRE', key, math.ceil(seconds * 1000))
  elseif kind == 'expiring-field' then
    local amount = string.match(redis.call('HGET', key, holder), '^(.*):')
    redis.call('HSET', key, holder, amount .. ':' .. string.format('%.3f', now + seconds))
  elseif kind == 'member' then
    redis.call('ZADD', key, string.format('%.6f', now), holder)
    redis.call('PEXPIRE', key, math.ceil(seconds * 1000))
  elseif tonumber(redis.call('ZSCORE', key, holder)) < 0 then
    redis.call('ZADD', key, string.format('%.6f', -now), holder)
  end
end
for i = 1, #KEYS do
  if not held(lease(i)) then return i end
end
for i = 1, #KEYS do renew(lease(i)) end
return 0
"""


@dataclass
class Hold:
    """Everything one request holds. `keep()` is called whenever the request makes progress (a streamed reply's
    every piece): it costs a round trip only once a third of the shortest lease has passed since the last
    renewal, so a lease is renewed in time as long as the request hears from what it waits for at least every two
    thirds of it."""

    leases: list[Lease] = field(default_factory=list)
    # When the leases were last renewed; at first, when the request began holding them (each lasts long enough
    # from there, an Idempotency-Key's claim, taken a little before, included).
    renewed_at: float = field(default_factory=time.monotonic)
    # A third of the shortest lease: kept up to date by add(), since keep() runs for every piece of a streamed reply.
    _due_after: float = field(init=False, repr=False, default=0.0)

    def __post_init__(self) -> None:
        self._due_after = min((lease.seconds for lease in self.leases), default=0.0) / 3

    def add(self, *leases: Lease) -> None:
        self.leases.extend(leases)
        self.__post_init__()

    def keep(self) -> None:
        """Renews every lease when one is due, or raises LeaseLost (renewing none) when one is gone."""
        if not self.leases:
            return
        now = time.monotonic()
        if now - self.renewed_at < self._due_after:
            return
        args = chain.from_iterable((lease.kind, lease.holder, lease.seconds) for lease in self.leases)
        lost = redis_script(_RENEW)(keys=[lease.key for lease in self.leases], args=[time.time(), *args])
        if lost:
            raise LeaseLost(self.leases[lost - 1].what)
        self.renewed_at = now
