"""Checks run before the server starts serving."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis
from django.conf import settings

from core.redis_store import redis_client, redis_disconnect


def redacted_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redis_unreachable_message() -> str | None:
    """None when Redis answers; otherwise what to tell the operator."""
    try:
        client = redis_client()
        client.ping()
    except redis.RedisError as exc:
        return (
            f"Redis is not reachable at {redacted_url(settings.REDIS_URL)} (REDIS_URL): {type(exc).__name__}.\n"
            "Start one locally with:\n"
            '  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no\n'
            "or with Docker: docker run -d -p 6379:6379 redis:7-alpine"
        )
    # Forked workers must not share the master's sockets.
    redis_disconnect(client)
    return None
