"""Chat limits. Per admin: requests per minute and chats in flight, counted in Redis so that every worker and
instance shares them. Per process: chats in flight, kept below the server's threads so that a thread is always
free for health checks, logins and the docs."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from core.exceptions import ServiceError
from core.redis_store import redis_client, redis_key


class ChatLimited(ServiceError):
    status_code = 429
    code = "chat_limit_exceeded"


class ServerBusy(ServiceError):
    status_code = 503
    code = "server_busy"


class ProcessChats:
    """Chats in flight in this process: a semaphore that refuses instead of waiting. The limit comes with each
    turn rather than at creation, so that a changed MAX_CHATS_IN_FLIGHT applies at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    @contextmanager
    def slot(self, limit: int) -> Iterator[None]:
        with self._lock:
            if self.count >= limit:
                raise ServerBusy(
                    f"This server process is answering MAX_CHATS_IN_FLIGHT ({limit}) chats already; try again shortly.",
                    retry_after=1,
                )
            self.count += 1
        try:
            yield
        finally:
            with self._lock:
                self.count -= 1


process_chats = ProcessChats()


@contextmanager
def chat_slot(admin_id: str) -> Iterator[None]:
    """Holds a chat slot of this process and one of the admin's for the duration of a turn (a stream's too);
    raises ServerBusy when the process is at MAX_CHATS_IN_FLIGHT, and ChatLimited when the admin is over
    CHAT_REQUESTS_PER_MINUTE or CHAT_MAX_CONCURRENT."""
    # The process slot first: refusing it costs no Redis round trip and counts nothing against the admin.
    with process_chats.slot(settings.MAX_CHATS_IN_FLIGHT), _admin_slot(admin_id):
        yield


@contextmanager
def _admin_slot(admin_id: str) -> Iterator[None]:
    per_minute, concurrent = settings.CHAT_REQUESTS_PER_MINUTE, settings.CHAT_MAX_CONCURRENT
    if not per_minute and not concurrent:
        yield
        return
    now = time.time()
    rate_key = redis_key("limit", "chat-rate", admin_id, str(int(now // 60)))
    active_key = redis_key("limit", "chat-active", admin_id)
    slot = secrets.token_hex(8)
    # A slot older than any turn can last belongs to a process that died mid-turn: it no longer counts.
    stale_before = now - settings.LLM_TIMEOUT_SECONDS - 60
    client = redis_client()
    pipe = client.pipeline(transaction=False)
    pipe.incr(rate_key)
    pipe.expire(rate_key, 61)
    pipe.zremrangebyscore(active_key, "-inf", stale_before)
    pipe.zadd(active_key, {slot: now})
    pipe.zcard(active_key)
    pipe.expire(active_key, int(settings.LLM_TIMEOUT_SECONDS) + 60)
    requests_this_minute, _, _, _, active, _ = pipe.execute()
    try:
        if per_minute and requests_this_minute > per_minute:
            raise ChatLimited(
                f"Over CHAT_REQUESTS_PER_MINUTE ({per_minute}) for this admin.", retry_after=60 - now % 60
            )
        if concurrent and active > concurrent:
            raise ChatLimited(f"Over CHAT_MAX_CONCURRENT ({concurrent}) chats in flight for this admin.", retry_after=1)
        yield
    finally:
        client.zrem(active_key, slot)
