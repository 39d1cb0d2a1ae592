"""Conversation history with a sliding TTL, isolated per admin: the admin's id is part of every key.

Two stores behind one interface, chosen by HISTORY_BACKEND:
- `CacheHistoryStore` (locmem, the default): Django's "history" cache alias, in this process only.
- `RedisHistoryStore` (redis): the REDIS_URL database through django-redis's connection, shared by every worker
  and instance; each turn is appended atomically by a Lua script, and a Redis lock serialises the turns of one
  session across instances.

Each is given its policy (the admin's chat limits and usage totals) by conversations.stores.history_store().
Both keep at most MAX_SESSIONS_PER_ADMIN sessions per admin, dropping that admin's least recently used ones, and
at most MAX_SESSIONS in all by refusing new sessions when full: one admin's activity never drops another's session.
"""

from __future__ import annotations

from conversations.history.base import (
    MAX_STORED_MESSAGES,
    USAGE_FIELDS,
    Conversation,
    HistoryFull,
    HistoryStore,
    SessionBusy,
    SessionListItem,
    SessionTurn,
    message,
    now_iso,
)
from conversations.history.cache_store import CacheHistoryStore
from conversations.history.redis_store import RedisHistoryStore

__all__ = [
    "MAX_STORED_MESSAGES",
    "USAGE_FIELDS",
    "CacheHistoryStore",
    "Conversation",
    "HistoryFull",
    "HistoryStore",
    "RedisHistoryStore",
    "SessionBusy",
    "SessionListItem",
    "SessionTurn",
    "message",
    "now_iso",
]
