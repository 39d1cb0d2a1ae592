"""Reads of the conversation store and the usage totals, in the shapes the endpoints answer with."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.conf import settings

from conversations.history import history_store
from conversations.history.base import summary_of
from conversations.usage import usage_totals


def session_list(*, admin_id: str) -> list[dict[str, Any]]:
    return [asdict(summary) for summary in history_store().list(admin_id)]


def session_detail(*, admin_id: str, session_id: str) -> dict[str, Any] | None:
    conversation = history_store().get(admin_id, session_id)
    if conversation is None:
        return None
    return {**asdict(summary_of(conversation)), "messages": conversation.messages}


def sessions_stored_count() -> int:
    """Live sessions of every admin."""
    return history_store().count()


def admin_usage(*, admin_id: str) -> dict[str, int]:
    return usage_totals(admin_id)


def memory_stats(*, admin_id: str) -> dict[str, Any]:
    store = history_store()
    return {
        "backend": store.backend,
        "sessions_stored": store.count(),
        "max_sessions": settings.MAX_SESSIONS,
        "ttl_seconds": settings.MEMORY_TTL_SECONDS,
        "your_sessions": len(store.list(admin_id)),
        "usage": usage_totals(admin_id),
    }
