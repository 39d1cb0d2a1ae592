"""The process's history store, chosen by HISTORY_BACKEND and given its policy: the admin's chat limits
(conversations.limits) and usage totals (conversations.usage)."""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings

from conversations.history import CacheHistoryStore, HistoryStore, RedisHistoryStore
from conversations.limits import chat_limits
from conversations.usage import admin_usage_totals
from core.cached import until_settings_change


@lru_cache(maxsize=1)
def locmem_store() -> CacheHistoryStore:
    return CacheHistoryStore(limits=chat_limits, usage=admin_usage_totals)


@until_settings_change
def _redis_store() -> RedisHistoryStore:
    # It holds the process's Redis client and its scripts, nothing of any one request: every thread shares it.
    return RedisHistoryStore(limits=chat_limits, usage=admin_usage_totals)


def history_store() -> HistoryStore:
    return _redis_store() if settings.HISTORY_BACKEND == "redis" else locmem_store()
