"""Idempotency keys in Redis, shared by every worker and instance: one hash per key, `A:idempotency:<sha256>` in the
Redis key map (docs/architecture.md), holding the request's `fingerprint` and either the `token` of the request
running under the key or, once answered, the `response`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from core.redis_store import redis_admin_key, redis_script

# ARGV: fingerprint, token, running ms. Claims the key, or returns {fingerprint, response or nil} of its holder.
# The expiry is checked before the hash is written, so that the hash never stays without one.
_CLAIM = """
local running_ms = tonumber(ARGV[3])
if not running_ms or running_ms <= 0 then error('claim: the running time is not a number of milliseconds') end
local held = redis.call('HMGET', KEYS[1], 'fingerprint', 'response')
if held[1] then return held end
redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1], 'token', ARGV[2])
redis.call('PEXPIRE', KEYS[1], running_ms)
return nil
"""

# ARGV: token, response JSON, seconds to keep it. Only the claim's holder completes it.
_COMPLETE = """
local keep = tonumber(ARGV[3])
if not keep or keep <= 0 then error('complete: the time to keep the answer is not a number of seconds') end
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'response', ARGV[2])
redis.call('HDEL', KEYS[1], 'token')
redis.call('EXPIRE', KEYS[1], keep)
return 1
"""

# ARGV: token. Only the claim's holder gives it back.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


@dataclass(frozen=True)
class Held:
    """What an earlier request left under a key: its fingerprint, and its response (None while it runs)."""

    fingerprint: str
    response: str | None


def idempotency_key(admin_id: str, key: str) -> str:
    return redis_admin_key(admin_id, "idempotency", hashlib.sha256(key.encode()).hexdigest())


def claim(admin_id: str, key: str, *, fingerprint: str, token: str, running_ms: int) -> Held | None:
    """None when this request now holds the key; else what holds it."""
    held = redis_script(_CLAIM)(keys=[idempotency_key(admin_id, key)], args=[fingerprint, token, running_ms])
    if held is None:
        return None
    fingerprint_held, response = held
    return Held(fingerprint_held.decode(), None if response is None else response.decode())


def complete(admin_id: str, key: str, *, token: str, response: str, ttl: int) -> bool:
    """Keeps `response` for `ttl` seconds; False when this token no longer holds the key (its claim expired)."""
    return bool(redis_script(_COMPLETE)(keys=[idempotency_key(admin_id, key)], args=[token, response, ttl]))


def release(admin_id: str, key: str, *, token: str) -> bool:
    return bool(redis_script(_RELEASE)(keys=[idempotency_key(admin_id, key)], args=[token]))
