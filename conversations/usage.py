"""Token usage totals per admin, in Redis (key `{a:<admin id>}:usage`, in the admin's slot), whatever the history
backend."""

from __future__ import annotations

from conversations.limits import AdminSlot
from core.redis_store import redis_admin_key, redis_client

USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens", "requests")


def usage_key(admin_id: str) -> str:
    return redis_admin_key(admin_id, "usage")


def usage_record(slot: AdminSlot, usage: dict[str, int]) -> None:
    """Adds a turn's usage to its admin's totals and gives back the turn's slot, in one round trip."""
    pipe = redis_client().pipeline(transaction=False)
    for name in USAGE_FIELDS:
        pipe.hincrby(usage_key(slot.admin_id), name, usage.get(name, 0))
    if not slot.released:
        slot.release_into(pipe)
    pipe.execute()
    slot.released = True


def usage_totals(admin_id: str) -> dict[str, int]:
    stored = redis_client().hgetall(usage_key(admin_id))
    return {name: int(stored.get(name.encode(), 0)) for name in USAGE_FIELDS}
