"""Usage over time: per UTC day, for each admin, its requests, input and output tokens and cost per API key and
model, kept USAGE_RETENTION_DAYS days (`A:usage-day` in the Redis key map, docs/architecture.md).

A turn's day record (UsageDay) rides in the turn's last write (the Redis store's finish script, or the pipeline
that adds the admin's totals), so recording it costs a chat no round trip. Each day is one hash in the admin's
Redis Cluster slot, `{a:<admin>}:usage-day:<YYYY-MM-DD>`, with a field `<counter>\\t<key id>\\t<model>` per
counter of each key (empty: the admin's own login) and model, expiring USAGE_RETENTION_DAYS after its day."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from django.conf import settings

from conversations.history.base import UsageDay
from core.redis_store import redis_admin_key, redis_client
from llm_provider.pricing import cost_micros, usd

GroupBy = Literal["day", "model", "key"]
GROUP_BY: tuple[GroupBy, ...] = ("day", "model", "key")
COUNTERS = ("requests", "input_tokens", "output_tokens", "cost_micros", "unpriced_requests")


@dataclass(frozen=True)
class CallUsage:
    """One upstream call's usage: a turn makes one, or two when it folds history into its summary first."""

    model: str
    input_tokens: int
    output_tokens: int

    @property
    def cost_micros(self) -> int | None:
        return cost_micros(self.model, self.input_tokens, self.output_tokens)


def day_key(admin_id: str, day: date) -> str:
    return redis_admin_key(admin_id, "usage-day", day.isoformat())


def usage_day(admin_id: str, key_id: str, calls: Iterable[CallUsage], *, now: datetime | None = None) -> UsageDay:
    now = now or datetime.now(UTC)
    increments: dict[str, int] = {}
    for call in calls:
        cost = call.cost_micros
        counted = {
            "requests": 1,
            "input_tokens": max(call.input_tokens, 0),
            "output_tokens": max(call.output_tokens, 0),
            "cost_micros": cost or 0,
            "unpriced_requests": int(cost is None),
        }
        for counter, value in counted.items():
            if value:
                name = f"{counter}\t{key_id}\t{call.model}"
                increments[name] = increments.get(name, 0) + value
    day = now.date()
    expires = datetime.combine(day + timedelta(days=settings.USAGE_RETENTION_DAYS + 1), time(), tzinfo=UTC)
    return UsageDay(day_key(admin_id, day), increments, int(expires.timestamp()))


def turn_usage(calls: Iterable[CallUsage]) -> dict[str, int]:
    """A turn's cost counters, beside its token counts in the usage totals: `cost_micros` (of the calls with a
    price) and `unpriced_requests` (calls to a model without one, which make a total's cost unknown)."""
    costs = [call.cost_micros for call in calls]
    return {"cost_micros": sum(c or 0 for c in costs), "unpriced_requests": sum(c is None for c in costs)}


def cost_usd(totals: dict[str, Any]) -> str | None:
    """The dollar cost of usage totals ("0.001234"), or None when part of it was spent on a model without a price."""
    if totals.get("unpriced_requests"):
        return None
    return usd(int(totals.get("cost_micros", 0)))


@dataclass
class _Row:
    dims: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def add(self, counter: str, value: int) -> None:
        self.counters[counter] += value

    def as_dict(self) -> dict[str, Any]:
        c = self.counters
        return {
            "requests": c["requests"],
            "input_tokens": c["input_tokens"],
            "output_tokens": c["output_tokens"],
            "total_tokens": c["input_tokens"] + c["output_tokens"],
            "cost_usd": cost_usd(c),
        }


def oldest_day(today: date | None = None) -> date:
    """The first day still kept."""
    return (today or datetime.now(UTC).date()) - timedelta(days=settings.USAGE_RETENTION_DAYS)


def usage_report(admin_id: str, start: date, end: date, group_by: Iterable[str]) -> dict[str, Any]:
    """An admin's usage from `start` to `end` (UTC days, both included; days past the retention are gone), in
    rows per the `group_by` dimensions (`day`, `model`, `key`), sorted by them, and the totals: `{from, to,
    group_by, rows: [{<dimension>..., requests, input_tokens, output_tokens, total_tokens, cost_usd}], totals}`.
    One round trip."""
    return usage_report_of([admin_id], start, end, group_by)


def usage_report_of(admin_ids: Iterable[str], start: date, end: date, group_by: Iterable[str]) -> dict[str, Any]:
    """usage_report over several admins, with `admin` (the admin's id) as a dimension too. One round trip per
    admin."""
    dimensions = [name for name in ("admin", *GROUP_BY) if name in set(group_by)]
    today = datetime.now(UTC).date()
    first, last = max(start, oldest_day(today)), min(end, today)
    days = [first + timedelta(days=n) for n in range(max((last - first).days + 1, 0))]
    rows: dict[tuple[str, ...], _Row] = {}
    totals = _Row()
    client = redis_client()
    for admin_id in admin_ids:
        pipe = client.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(day_key(admin_id, day))
        for day, stored in zip(days, pipe.execute() if days else [], strict=True):
            for raw_name, raw_value in stored.items():
                counter, key_id, model = raw_name.decode().split("\t", 2)
                if counter not in COUNTERS:
                    continue
                value = int(raw_value)
                found = {"admin": admin_id, "day": day.isoformat(), "model": model, "key": key_id or None}
                dims = {name: found[name] for name in dimensions}
                rows.setdefault(tuple(str(v or "") for v in dims.values()), _Row(dims)).add(counter, value)
                totals.add(counter, value)
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "group_by": dimensions,
        "rows": [{**row.dims, **row.as_dict()} for _, row in sorted(rows.items())],
        "totals": totals.as_dict(),
    }
