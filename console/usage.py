"""The usage page's figures from the usage per day, model and key (conversations' usage over time): its charts per
day, split by model and by key, its totals per model and per key, and the range's total. Summed as integers (costs
in micro-dollars); dollars only for drawing and for the page."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from console.charts import Chart, days_between, dollars, dollars_tick, stacked_by_day, tokens
from conversations.selectors import UsageCount

NO_KEY = "signed in (no key)"
MICROS_PER_USD = 1_000_000


def _line(name: str, sums: list[int]) -> dict[str, Any]:
    """Requests, tokens and cost (a Decimal of dollars, None when part of it went to a model without a price) from
    sums in UsageCount's order."""
    requests, input_tokens, output_tokens, cost_micros, unpriced_requests = sums
    return {
        "name": name,
        "requests": requests,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "cost": None if unpriced_requests else Decimal(cost_micros).scaleb(-6),
    }


def _summed(rows: Iterable[list[int]]) -> list[int]:
    return [sum(column) for column in zip(*rows, strict=True)] or [0] * 5


@dataclass
class UsageFigures:
    charts: dict[str, Chart]
    by_model: list[dict[str, Any]]
    by_key: list[dict[str, Any]]
    total: dict[str, Any]

    @property
    def tables(self) -> list[tuple[str, list[dict[str, Any]], str]]:
        """The totals' tables: caption, lines and id."""
        return [("By model", self.by_model, "totals-by-model"), ("By key", self.by_key, "totals-by-key")]


def usage_figures(
    counts: list[UsageCount], *, since: date, until: date, key_name: Callable[[str], str]
) -> UsageFigures:
    """Tokens and cost per day, split by model and by key; one line per model and per key, most tokens first; and
    the total. One pass over the counts."""
    tokens_by_model: dict[tuple[str, str], int] = {}  # (day, model): tokens
    tokens_by_key: dict[tuple[str, str], int] = {}
    cost_by_model: dict[tuple[str, str], int] = {}  # (day, model): micro-dollars
    cost_by_key: dict[tuple[str, str], int] = {}
    pairs: dict[tuple[str, str], list[int]] = {}  # (model, key): sums in UsageCount's order
    for day, model, key, requests, input_tokens, output_tokens, cost, unpriced in counts:
        used = input_tokens + output_tokens
        at_model, at_key = (day, model), (day, key)
        tokens_by_model[at_model] = tokens_by_model.get(at_model, 0) + used
        tokens_by_key[at_key] = tokens_by_key.get(at_key, 0) + used
        cost_by_model[at_model] = cost_by_model.get(at_model, 0) + cost
        cost_by_key[at_key] = cost_by_key.get(at_key, 0) + cost
        if (sums := pairs.get((model, key))) is None:
            pairs[model, key] = [requests, input_tokens, output_tokens, cost, unpriced]
        else:
            sums[0] += requests
            sums[1] += input_tokens
            sums[2] += output_tokens
            sums[3] += cost
            sums[4] += unpriced
    by_model: dict[str, list[list[int]]] = {}
    by_key: dict[str, list[list[int]]] = {}
    for (model, key), sums in pairs.items():
        by_model.setdefault(model, []).append(sums)
        by_key.setdefault(key, []).append(sums)

    days = days_between(since, until)

    def chart(points: dict[tuple[str, str], Any], fmt: Callable[[float], str], **named: Any) -> Chart:
        return stacked_by_day(days, ((day, series, value) for (day, series), value in points.items()), fmt=fmt, **named)

    def dollars_of(points: dict[tuple[str, str], int]) -> dict[tuple[str, str], float]:
        return {at: micros / MICROS_PER_USD for at, micros in points.items()}

    return UsageFigures(
        charts={
            "tokens_by_model": chart(tokens_by_model, tokens),
            "tokens_by_key": chart(tokens_by_key, tokens, series_name=key_name),
            "cost_by_model": chart(dollars_of(cost_by_model), dollars, tick_fmt=dollars_tick),
            "cost_by_key": chart(dollars_of(cost_by_key), dollars, tick_fmt=dollars_tick, series_name=key_name),
        },
        by_model=_ranked(by_model, str),
        by_key=_ranked(by_key, key_name),
        total=_line("", _summed(pairs.values())),
    )


def _ranked(groups: dict[str, list[list[int]]], name: Callable[[str], str]) -> list[dict[str, Any]]:
    lines = [_line(name(value), _summed(sums)) for value, sums in groups.items()]
    return sorted(lines, key=lambda line: (-line["total_tokens"], line["name"]))
