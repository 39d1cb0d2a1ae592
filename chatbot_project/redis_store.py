"""The one Redis connection pool (django-redis's) and the project's key naming."""

from __future__ import annotations

import redis
from django.conf import settings
from django_redis import get_redis_connection


def redis_client() -> redis.Redis:
    return get_redis_connection("default")


def redis_key(*parts: str) -> str:
    """`chatbot:admin:42`: every key the service writes starts with REDIS_KEY_PREFIX."""
    return ":".join((settings.REDIS_KEY_PREFIX, *parts))


def redis_ping() -> bool:
    try:
        return bool(redis_client().ping())
    except redis.RedisError:
        return False
