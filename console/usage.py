"""The usage page's figures from the usage per day, model and key (conversations' usage over time): its charts per
day, split by model and by key, its totals per model and per key, and the range's total. Summed as integers (costs
in micro-dollars); dollars only for drawing and for the page."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from console.charts import Chart, days_between, dollars, stacked_by_day, tokens
from conversations.usage_history import UsageCount

NO_KEY = "signed in (no key)"
MICROS_PER_USD = 1_000_000


@dataclass
class _Sum:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_micros: int = 0
    unpriced_requests: int = 0

    def add(self, count: UsageCount) -> None:
        self.requests += count.requests
        self.input_tokens += count.input_tokens
        self.output_tokens += count.output_tokens
        self.cost_micros += count.cost_micros
        self.unpriced_requests += count.unpriced_requests

    def line(self, name: str) -> dict[str, Any]:
        """Requests, tokens and cost (a Decimal of dollars, None when part of it went to a model without a price)."""
        return {
            "name": name,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "cost": None if self.unpriced_requests else Decimal(self.cost_micros).scaleb(-6),
        }


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
    by_model: dict[str, _Sum] = {}
    by_key: dict[str, _Sum] = {}
    total = _Sum()
    for count in counts:
        used = count.input_tokens + count.output_tokens
        at_model, at_key = (count.day, count.model), (count.day, count.key)
        tokens_by_model[at_model] = tokens_by_model.get(at_model, 0) + used
        tokens_by_key[at_key] = tokens_by_key.get(at_key, 0) + used
        cost_by_model[at_model] = cost_by_model.get(at_model, 0) + count.cost_micros
        cost_by_key[at_key] = cost_by_key.get(at_key, 0) + count.cost_micros
        if (model := by_model.get(count.model)) is None:
            model = by_model[count.model] = _Sum()
        if (key := by_key.get(count.key)) is None:
            key = by_key[count.key] = _Sum()
        model.add(count)
        key.add(count)
        total.add(count)

    days = days_between(since, until)

    def chart(points: dict[tuple[str, str], Any], fmt: Callable[[float], str], **named: Any) -> Chart:
        return stacked_by_day(days, ((day, series, value) for (day, series), value in points.items()), fmt=fmt, **named)

    def dollars_of(points: dict[tuple[str, str], int]) -> dict[tuple[str, str], float]:
        return {at: micros / MICROS_PER_USD for at, micros in points.items()}

    return UsageFigures(
        charts={
            "tokens_by_model": chart(tokens_by_model, tokens),
            "tokens_by_key": chart(tokens_by_key, tokens, series_name=key_name),
            "cost_by_model": chart(dollars_of(cost_by_model), dollars),
            "cost_by_key": chart(dollars_of(cost_by_key), dollars, series_name=key_name),
        },
        by_model=_ranked(by_model, str),
        by_key=_ranked(by_key, key_name),
        total=total.line(""),
    )


def _ranked(sums: dict[str, _Sum], name: Callable[[str], str]) -> list[dict[str, Any]]:
    lines = [sum_.line(name(value)) for value, sum_ in sums.items()]
    return sorted(lines, key=lambda line: (-line["total_tokens"], line["name"]))
