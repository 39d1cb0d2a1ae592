"""Filters for the console's templates."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django import template
from django.utils.safestring import SafeString

from console import charts

register = template.Library()


@register.filter
def when(value: str | None) -> str:
    """An ISO 8601 time as `2026-12-04 09:30 UTC`; what does not parse, as it is."""
    if not value:
        return ""
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return value


@register.filter
def label(name: str) -> str:
    """A field name as words: `prompt_tokens` as `Prompt tokens`."""
    return name.replace("_", " ").capitalize()


@register.filter
def seconds(value: str | None) -> str:
    """An ISO 8601 time as `2026-12-04 09:30:15 UTC`."""
    if not value:
        return ""
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return value


@register.filter
def thousands(value: int) -> str:
    return f"{value:,}"


@register.filter
def usd(value: Decimal | str) -> str:
    """Dollars without trailing zeros past the cents: `$0.0468`, `$12.50`."""
    amount = Decimal(value)
    return f"${amount:,.2f}" if amount == amount.quantize(Decimal("0.01")) else f"${amount.normalize():,f}"


@register.simple_tag
def chart_svg(chart: charts.Chart, title_id: str, caption: str) -> SafeString:
    return charts.chart_svg(chart, title_id=title_id, caption=caption)
