"""Token usage totals per admin, in Redis (`A:usage` in the Redis key map, docs/architecture.md), whatever the
history backend. The history stores are given them (UsageTotals) to add a turn's usage in the turn's last write."""

from __future__ import annotations

from collections.abc import Mapping

from redis.client import Pipeline

from conversations.history.base import USAGE_FIELDS, UsageDay
from core.redis_store import PipelineWrites, redis_admin_key, redis_client, redis_slot_pipeline


def usage_key(admin_id: str) -> str:
    return redis_admin_key(admin_id, "usage")


class UsageTotals:
    """Where an admin's totals are kept and how a turn adds to them, as the history stores are given it."""

    @staticmethod
    def key(admin_id: str) -> str:
        return usage_key(admin_id)

    @staticmethod
    def add_into(pipe: Pipeline, admin_id: str, usage: Mapping[str, int], day: UsageDay | None = None) -> None:
        """Queues the turn's usage (and its usage of the day) on a pipeline that also writes the turn's end."""
        for name in USAGE_FIELDS:
            if usage.get(name):  # a command fewer for each counter this turn leaves as it is
                pipe.hincrby(usage_key(admin_id), name, usage[name])
        if day is not None and day.increments:
            for name, value in day.increments.items():
                pipe.hincrby(day.key, name, value)
            pipe.expireat(day.key, day.expire_at)

    def record(
        self,
        admin_id: str,
        usage: Mapping[str, int],
        *,
        with_writes: PipelineWrites | None = None,
        day: UsageDay | None = None,
    ) -> None:
        """Adds a turn's usage to its admin's totals and its day in one round trip, with the turn's other last
        writes queued by `with_writes` (the admin's slot given back), which is handed their replies."""
        # On the admin's Redis Cluster slot, as every key the turn's last writes touch.
        pipe = redis_slot_pipeline(usage_key(admin_id))
        self.add_into(pipe, admin_id, usage, day)
        on_replies = with_writes(pipe) if with_writes is not None else None
        replies = pipe.execute()
        if on_replies is not None:
            on_replies(replies)


admin_usage_totals = UsageTotals()


def usage_totals(admin_id: str) -> dict[str, int]:
    stored = redis_client().hgetall(usage_key(admin_id))
    return {name: int(stored.get(name.encode(), 0)) for name in USAGE_FIELDS}
