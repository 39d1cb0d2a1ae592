"""Reads of the conversation store and the usage totals; the endpoints render them through their serializers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from datetime import date
from typing import Any

from django.conf import settings

from conversations.history.base import SessionListItem, list_item_of
from conversations.limits import process_chats
from conversations.session_ids import EXPORT_FORMAT
from conversations.stores import history_store
from conversations.usage import usage_totals
from conversations.usage_history import UsageCount, usage_counts, usage_report


def session_list(*, admin_id: str, offset: int = 0, limit: int | None = None) -> list[SessionListItem]:
    """The admin's sessions, most recently used first (a page of them with `offset` and `limit`)."""
    return history_store().list(admin_id, offset=offset, limit=limit)


def session_detail(*, admin_id: str, session_id: str) -> dict[str, Any] | None:
    """The session's list row with its stored messages and summary (SessionDetailSerializer's fields)."""
    conversation = history_store().get(admin_id, session_id)
    if conversation is None:
        return None
    return {
        **asdict(list_item_of(conversation)),
        "messages": conversation.messages,
        "summary": conversation.summary or None,
    }


def session_export(*, admin_id: str, session_id: str) -> dict[str, Any] | None:
    """The session as `chatbot-session/1`: what `POST /chat/sessions/import` takes back. Built here rather than by
    SessionExportSerializer, which would refuse a stored tool call an upstream sent without its `type` or a
    function's `name`; a test holds the two to the same output for complete values."""
    conversation = history_store().get(admin_id, session_id)
    if conversation is None:
        return None
    return {
        "format": EXPORT_FORMAT,
        "session_id": session_id,
        "created_at": conversation.created_at,
        "messages": [exported_message(m) for m in conversation.messages],
        "summary": conversation.summary or None,
        # The format's counters: the cost is not exported (an import counts none, as its tokens count in no budget).
        "usage": {name: value for name, value in list_item_of(conversation).usage.items() if name in EXPORTED_USAGE},
    }


EXPORTED_USAGE = ("prompt_tokens", "completion_tokens", "total_tokens", "requests")


def exported_message(message: dict[str, Any]) -> dict[str, Any]:
    exported = {name: message[name] for name in ("role", "content", "tool_call_id") if name in message}
    if message.get("tool_calls"):
        exported["tool_calls"] = [exported_tool_call(call) for call in message["tool_calls"]]
    return {**exported, "created_at": message["at"]}


def exported_tool_call(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call as OpenAI defines it, which an import takes back: what else an upstream added is left out."""
    function = call.get("function") or {}
    return {
        **{name: call[name] for name in ("id", "type") if name in call},
        "function": {name: function[name] for name in ("name", "arguments") if name in function},
    }


def sessions_stored_count() -> int:
    """Live sessions of every admin."""
    return history_store().count()


def chat_models() -> list[str]:
    """The models a chat may name (CHAT_ALLOWED_MODELS, as /v1/models lists them), the default first."""
    default = settings.GROQ_MODEL_NAME
    return [default, *(model for model in settings.CHAT_ALLOWED_MODELS if model != default)]


def chats_in_flight() -> dict[str, int]:
    """Chats this server process answers now, and how many it takes at most (MAX_CHATS_IN_FLIGHT)."""
    return {"count": process_chats.count, "limit": settings.MAX_CHATS_IN_FLIGHT}


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


def usage_over_time(*, admin_id: str, start: date, end: date, group_by: Iterable[str]) -> dict[str, Any]:
    """The admin's usage per UTC day, model and key from `start` to `end` (`GET /admin/usage`, the console's usage
    page): conversations.usage_history.usage_report. One round trip."""
    return usage_report(admin_id, start, end, group_by)


def usage_per_day_model_and_key(*, admin_id: str, start: date, end: date) -> list[UsageCount]:
    """usage_over_time's figures per day, model and key as integers (the console's usage page sums them into its
    charts and totals). One round trip."""
    return usage_counts(admin_id, start, end)
