"""Filters for the console's templates."""

from __future__ import annotations

from datetime import datetime

from django import template

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
