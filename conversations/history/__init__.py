"""Conversation history with a sliding TTL, isolated per admin: the admin's id is part of every key.

Two stores behind one interface, chosen by HISTORY_BACKEND:
- `CacheHistoryStore` (locmem, the default): Django's "history" cache alias, in this process only.
- `RedisHistoryStore` (redis): the REDIS_URL database through django-redis's connection, shared by every worker
  and instance; each turn is appended atomically by a Lua script, and a Redis lock serialises the turns of one
  session across instances.

Both keep at most MAX_SESSIONS_PER_ADMIN sessions per admin, dropping that admin's least recently used ones, and
at most MAX_SESSIONS in all by refusing new sessions when full: one admin's activity never drops another's session.
"""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings

from conversations.history.base import (
    MAX_STORED_MESSAGES,
    USAGE_FIELDS,
    Conversation,
    ConversationSummary,
    HistoryFull,
    HistoryStore,
    SessionBusy,
    SessionTurn,
    message,
    now_iso,
)
from conversations.history.locmem_store import CacheHistoryStore
from conversations.history.redis_store import RedisHistoryStore
from core.cached import until_settings_change

__all__ = [
    "MAX_STORED_MESSAGES",
    "USAGE_FIELDS",
    "CacheHistoryStore",
    "Conversation",
    "ConversationSummary",
    "HistoryFull",
    "HistoryStore",
    "RedisHistoryStore",
    "SessionBusy",
    "SessionTurn",
    "history_store",
    "message",
    "now_iso",
]


@lru_cache(maxsize=1)
def _locmem_store() -> CacheHistoryStore:
    return CacheHistoryStore()


@until_settings_change
def _redis_store() -> RedisHistoryStore:
    # It holds the process's Redis client and its scripts, nothing of any one request: every thread shares it.
    return RedisHistoryStore()


def history_store() -> HistoryStore:
    return _redis_store() if settings.HISTORY_BACKEND == "redis" else _locmem_store()
