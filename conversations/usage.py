"""Token usage totals per admin, in Redis (key `usage:<admin id>`), whatever the history backend."""

from __future__ import annotations

from conversations.history import USAGE_FIELDS
from core import metrics
from core.redis_store import redis_client, redis_key


def usage_record(admin_id: str, usage: dict[str, int]) -> None:
    metrics.tokens_record(usage)
    pipe = redis_client().pipeline(transaction=False)
    for name in USAGE_FIELDS:
        pipe.hincrby(redis_key("usage", admin_id), name, usage.get(name, 0))
    pipe.execute()


def usage_totals(admin_id: str) -> dict[str, int]:
    stored = redis_client().hgetall(redis_key("usage", admin_id))
    return {name: int(stored.get(name.encode(), 0)) for name in USAGE_FIELDS}
