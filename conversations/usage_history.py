"""Usage over time: per UTC day, for each admin, its requests, input and output tokens and cost per API key and
model, kept USAGE_RETENTION_DAYS days (`A:usage-day` in the Redis key map, docs/architecture.md).

A turn's day record (UsageDay) rides in the turn's last write (the Redis store's finish script, or the pipeline
that adds the admin's totals), so recording it costs a chat no round trip. Each day is one hash in the admin's
Redis Cluster slot, `{a:<admin>}:usage-day:<YYYY-MM-DD>`, with a field `<counter>\\t<key id>\\t<model>` per
counter of each key (empty: the admin's own login) and model, expiring USAGE_RETENTION_DAYS after its day."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, NamedTuple

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


# Sums of the COUNTERS, in their order, per dimension values (a key's id, "" for the admin's own login)
Counts = list[int]
REQUESTS, INPUT_TOKENS, OUTPUT_TOKENS, COST_MICROS, UNPRICED_REQUESTS = range(len(COUNTERS))
_COUNTER_INDEX = {name.encode(): n for n, name in enumerate(COUNTERS)}


def counts_as_dict(counts: Counts) -> dict[str, Any]:
    """A row's or the totals' figures as GET /admin/usage shows them."""
    return {
        "requests": counts[REQUESTS],
        "input_tokens": counts[INPUT_TOKENS],
        "output_tokens": counts[OUTPUT_TOKENS],
        "total_tokens": counts[INPUT_TOKENS] + counts[OUTPUT_TOKENS],
        "cost_usd": None if counts[UNPRICED_REQUESTS] else usd(counts[COST_MICROS]),
    }


def counts_total(table: list[Counts]) -> Counts:
    return [sum(column) for column in zip(*table, strict=True)] if table else [0] * len(COUNTERS)


def oldest_day(today: date | None = None) -> date:
    """The first day still kept."""
    return (today or datetime.now(UTC).date()) - timedelta(days=settings.USAGE_RETENTION_DAYS)


class UsageCount(NamedTuple):
    """One day's usage of one model under one key ("" for the admin's own login), costs in micro-dollars."""

    day: str
    model: str
    key: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_micros: int
    unpriced_requests: int


def usage_counts(admin_id: str, start: date, end: date) -> list[UsageCount]:
    """An admin's usage from `start` to `end` per day, model and key (in that order), as plain integers: what
    usage_report shows, before its rows are formatted. One round trip."""
    table = usage_table([admin_id], start, end, ["day", "model", "key"])
    return [UsageCount._make((*values, *counts)) for values, counts in sorted(table.items())]


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
    table = usage_table(admin_ids, start, end, dimensions)
    rows = []
    for values, counts in sorted(table.items()):
        dims = dict(zip(dimensions, values, strict=True))
        if "key" in dims:
            dims["key"] = dims["key"] or None
        rows.append({**dims, **counts_as_dict(counts)})
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "group_by": dimensions,
        "rows": rows,
        "totals": counts_as_dict(counts_total(list(table.values()))),
    }


def usage_table(
    admin_ids: Iterable[str], start: date, end: date, dimensions: list[str]
) -> dict[tuple[str, ...], Counts]:
    """The counters from `start` to `end` (UTC days, both included, within the retention) summed per the values of
    `dimensions` (in the order admin, day, model, key; a day in ISO form, "" for no key). One round trip per admin.

    A day's hash has a field per counter, key and model: each distinct field is parsed once, not once a day."""
    today = datetime.now(UTC).date()
    first, last = max(start, oldest_day(today)), min(end, today)
    days = [first + timedelta(days=n) for n in range(max((last - first).days + 1, 0))]
    by_admin, by_day = "admin" in dimensions, "day" in dimensions
    fields: dict[bytes, tuple[int, tuple[str, ...]] | None] = {}
    table: dict[tuple[str, ...], Counts] = {}
    client = redis_client()
    for admin_id in admin_ids:
        if not days:
            break
        pipe = client.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(day_key(admin_id, day))
        for day, stored in zip(days, pipe.execute(), strict=True):
            prefix = (admin_id,) * by_admin + (day.isoformat(),) * by_day
            for raw_name, raw_value in stored.items():
                try:
                    parsed = fields[raw_name]
                except KeyError:
                    parsed = fields[raw_name] = _field(raw_name, dimensions)
                if parsed is not None:
                    index, suffix = parsed
                    try:
                        table[prefix + suffix][index] += int(raw_value)
                    except KeyError:
                        table[prefix + suffix] = counts = [0] * len(COUNTERS)
                        counts[index] = int(raw_value)
    return table


def _field(raw_name: bytes, dimensions: list[str]) -> tuple[int, tuple[str, ...]] | None:
    """A day's field `<counter>\\t<key id>\\t<model>`: its counter's index and its model and key as far as they are
    dimensions, or None for a counter this version does not know."""
    counter, key_id, model = raw_name.split(b"\t", 2)
    if (index := _COUNTER_INDEX.get(counter)) is None:
        return None
    found = {"model": model.decode(), "key": key_id.decode()}
    return index, tuple(found[name] for name in ("model", "key") if name in dimensions)
