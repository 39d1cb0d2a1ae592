"""The usage page's figures from a usage report (conversations' usage over time, rows per day, model and key):
its charts per day, split by model and by key, and its totals per model and per key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from console.charts import Chart, days_between, dollars, stacked_by_day, tokens

NO_KEY = "signed in (no key)"


def _cost(row: dict[str, Any]) -> float:
    return float(row["cost_usd"] or 0)


def usage_charts(
    report: dict[str, Any], *, since: date, until: date, key_name: Callable[[str], str]
) -> dict[str, Chart]:
    """Tokens and cost per day, split by model and by key."""
    days, rows = days_between(since, until), report["rows"]
    return {
        "tokens_by_model": stacked_by_day(days, ((r["day"], r["model"], r["total_tokens"]) for r in rows), fmt=tokens),
        "tokens_by_key": stacked_by_day(
            days, ((r["day"], r["key"] or "", r["total_tokens"]) for r in rows), fmt=tokens, series_name=key_name
        ),
        "cost_by_model": stacked_by_day(days, ((r["day"], r["model"], _cost(r)) for r in rows), fmt=dollars),
        "cost_by_key": stacked_by_day(
            days, ((r["day"], r["key"] or "", _cost(r)) for r in rows), fmt=dollars, series_name=key_name
        ),
    }


def usage_totals(report: dict[str, Any], dimension: str, name: Callable[[str], str] = str) -> list[dict[str, Any]]:
    """One line per model or key, most tokens first: requests, tokens and cost (None when part of it was spent on a
    model without a price)."""
    lines: dict[str, dict[str, Any]] = {}
    for row in report["rows"]:
        value = row[dimension] or ""
        line = lines.setdefault(
            value,
            {
                "name": name(value),
                "requests": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "total_tokens": 0,
                "cost": Decimal(0),
            },
        )
        for counter in ("requests", "input_tokens", "output_tokens", "total_tokens"):
            line[counter] += row[counter]
        line["cost"] = (
            None if line["cost"] is None or row["cost_usd"] is None else line["cost"] + Decimal(row["cost_usd"])
        )
    return sorted(lines.values(), key=lambda line: (-line["total_tokens"], line["name"]))
