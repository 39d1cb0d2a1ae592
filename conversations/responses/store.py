"""Where a stored response is kept: its `response` object and the session its chain lives in, per admin, for
MEMORY_TTL_SECONDS. In Redis with HISTORY_BACKEND=redis, else in the "history" cache alias beside the sessions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.core.cache import caches

from core.redis_store import redis_admin_key, redis_client


@dataclass(frozen=True)
class StoredResponse:
    session_id: str  # the stored session of its chain, whose last message it was when it was made
    body: dict[str, Any]
    input_items: list[dict[str, Any]]


class ResponseStore(Protocol):
    def get(self, admin_id: str, response_id: str) -> StoredResponse | None: ...
    def put(self, admin_id: str, response_id: str, stored: StoredResponse) -> None: ...
    def delete(self, admin_id: str, response_id: str) -> bool: ...


def _encoded(stored: StoredResponse) -> str:
    return json.dumps(
        {"session_id": stored.session_id, "body": stored.body, "input_items": stored.input_items}, separators=(",", ":")
    )


def _decoded(raw: str | bytes | None) -> StoredResponse | None:
    if raw is None:
        return None
    data = json.loads(raw)
    return StoredResponse(data["session_id"], data["body"], data["input_items"])


class RedisResponseStore:
    @staticmethod
    def _key(admin_id: str, response_id: str) -> str:
        return redis_admin_key(admin_id, "resp", response_id)

    def get(self, admin_id: str, response_id: str) -> StoredResponse | None:
        return _decoded(redis_client().get(self._key(admin_id, response_id)))

    def put(self, admin_id: str, response_id: str, stored: StoredResponse) -> None:
        redis_client().set(self._key(admin_id, response_id), _encoded(stored), ex=settings.MEMORY_TTL_SECONDS)

    def delete(self, admin_id: str, response_id: str) -> bool:
        return bool(redis_client().delete(self._key(admin_id, response_id)))


class CacheResponseStore:
    def __init__(self, alias: str = "history") -> None:
        self._alias = alias

    @staticmethod
    def _key(admin_id: str, response_id: str) -> str:
        return f"resp:{admin_id}:{response_id}"

    def get(self, admin_id: str, response_id: str) -> StoredResponse | None:
        return _decoded(caches[self._alias].get(self._key(admin_id, response_id)))

    def put(self, admin_id: str, response_id: str, stored: StoredResponse) -> None:
        caches[self._alias].set(self._key(admin_id, response_id), _encoded(stored), settings.MEMORY_TTL_SECONDS)

    def delete(self, admin_id: str, response_id: str) -> bool:
        return bool(caches[self._alias].delete(self._key(admin_id, response_id)))


_REDIS = RedisResponseStore()
_CACHE = CacheResponseStore()


def response_store() -> ResponseStore:
    return _REDIS if settings.HISTORY_BACKEND == "redis" else _CACHE


@dataclass(frozen=True)
class StoredConversation:
    """A Responses conversation: its own metadata; its items are the messages of the session of the same id."""

    created_at: int
    metadata: dict[str, str]


class ConversationStore:
    """Conversations' records, beside the responses' (in Redis or the "history" cache as HISTORY_BACKEND says)."""

    def _key(self, admin_id: str, conversation_id: str) -> str:
        if settings.HISTORY_BACKEND == "redis":
            return redis_admin_key(admin_id, "conv-meta", conversation_id)
        return f"conv-meta:{admin_id}:{conversation_id}"

    def get(self, admin_id: str, conversation_id: str) -> StoredConversation | None:
        key = self._key(admin_id, conversation_id)
        raw = redis_client().get(key) if settings.HISTORY_BACKEND == "redis" else caches["history"].get(key)
        if raw is None:
            return None
        data = json.loads(raw)
        return StoredConversation(data["created_at"], data["metadata"])

    def put(self, admin_id: str, conversation_id: str, stored: StoredConversation) -> None:
        key = self._key(admin_id, conversation_id)
        raw = json.dumps({"created_at": stored.created_at, "metadata": stored.metadata})
        if settings.HISTORY_BACKEND == "redis":
            redis_client().set(key, raw, ex=settings.MEMORY_TTL_SECONDS)
        else:
            caches["history"].set(key, raw, settings.MEMORY_TTL_SECONDS)

    def delete(self, admin_id: str, conversation_id: str) -> bool:
        key = self._key(admin_id, conversation_id)
        if settings.HISTORY_BACKEND == "redis":
            return bool(redis_client().delete(key))
        return bool(caches["history"].delete(key))


conversation_store = ConversationStore()
