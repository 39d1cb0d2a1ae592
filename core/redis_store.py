"""The one Redis connection pool (django-redis's), the project's key naming, and small helpers for the hashes
the service keeps records in."""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings
from django_redis import get_redis_connection
from redis.commands.core import Script


def redis_client() -> redis.Redis:
    return get_redis_connection("default")


def redis_key(*parts: str) -> str:
    """`chatbot:admin:42`: every key the service writes starts with REDIS_KEY_PREFIX."""
    return ":".join((settings.REDIS_KEY_PREFIX, *parts))


def redis_script(source: str) -> Script:
    """The Lua script `source`, bound to the current client: made once, not hashed again on every call."""
    return _script(redis_client(), source)


@lru_cache(maxsize=64)
def _script(client: redis.Redis, source: str) -> Script:
    return client.register_script(source)


def redis_ping() -> bool:
    try:
        return bool(redis_client().ping())
    except redis.RedisError:
        return False


# Sets one field of an existing hash and returns the whole hash in one round trip; a missing (revoked or
# expired) record stays missing instead of being recreated with that one field. Any further keys must exist too.
_TOUCH_SCRIPT = """
for _, key in ipairs(KEYS) do if redis.call('EXISTS', key) == 0 then return nil end end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
"""


def hash_touch(key: str, field: str, value: str, *, requires: str | None = None) -> dict[str, str] | None:
    """The record at `key` with `field` set to `value`, or None when there is no such record (or no `requires`)."""
    keys = [key] if requires is None else [key, requires]
    flat = redis_script(_TOUCH_SCRIPT)(keys=keys, args=[field, value])
    if not flat:
        return None
    values = [item.decode() for item in flat]
    return dict(zip(values[::2], values[1::2], strict=True))


def decoded(record: dict[bytes, bytes]) -> dict[str, str]:
    return {key.decode(): value.decode() for key, value in record.items()}
