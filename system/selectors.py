"""What the system endpoints report, read from the stores and the upstream's cached health."""

from __future__ import annotations

import time
from typing import Any

import redis
from django.conf import settings

from accounts.selectors import admin_budget
from conversations.selectors import admin_usage, chats_in_flight, sessions_stored_count
from core.redis_store import redis_ping
from core.store_marker import store_data_lost
from llm_provider.services import llm_health, upstream_rate_limits

SERVICE_NAME = "chatbot-api"
STARTED_AT = time.monotonic()


def health_report() -> dict[str, Any]:
    redis_healthy = redis_ping()
    llm_healthy = llm_health().healthy
    # Without Redis nobody can log in: unhealthy. Without the LLM, sessions and admin still work: degraded.
    status = "unhealthy" if not redis_healthy else "healthy" if llm_healthy else "degraded"
    return {
        "status": status,
        "service": SERVICE_NAME,
        "version": settings.VERSION,
        "llm_provider": settings.LLM_PROVIDER,
        "llm_healthy": llm_healthy,
        "redis_healthy": redis_healthy,
        # Set once this process has seen Redis lose the service's data (restarted without persistence).
        "redis_warning": _redis_data_lost() if redis_healthy else None,
    }


def info_report() -> dict[str, Any]:
    return {
        "name": settings.SPECTACULAR_SETTINGS["TITLE"],
        "service": SERVICE_NAME,
        "version": settings.VERSION,
        "llm_provider": settings.LLM_PROVIDER,
        "model": settings.GROQ_MODEL_NAME,
        "docs": {"swagger": "/docs", "redoc": "/redoc", "openapi": "/openapi.json"},
    }


def _redis_data_lost() -> str | None:
    try:
        return store_data_lost()
    except redis.RedisError:
        return None


def status_report(*, admin_id: str) -> dict[str, Any]:
    uptime = int(time.monotonic() - STARTED_AT)
    return {
        "redis_connected": redis_ping(),
        "chatgroq_healthy": llm_health().healthy,
        "active_conversations_count": sessions_stored_count(),
        "uptime_seconds": uptime,
        "uptime_formatted": format_uptime(uptime),
        "history_backend": settings.HISTORY_BACKEND,
        "model": settings.GROQ_MODEL_NAME,
        "usage": admin_usage(admin_id=admin_id),
        "budget": admin_budget(admin_id=admin_id),
        # This process's latest view: another worker may have seen a later answer.
        "upstream_rate_limits": upstream_rate_limits(),
    }


def redis_topology() -> dict[str, Any]:
    """How the service reaches Redis, as configured: one server, Sentinel or Cluster (no secrets: no URL)."""
    if settings.REDIS_CLUSTER:
        return {"kind": "cluster", "nodes": []}
    if settings.REDIS_SENTINELS:
        nodes = [f"{host}:{port}" for host, port in settings.REDIS_SENTINELS]
        return {"kind": "sentinel", "master": settings.REDIS_SENTINEL_MASTER, "nodes": nodes}
    return {"kind": "single", "nodes": []}


def console_status(*, admin_id: str) -> dict[str, Any]:
    """What the console's status page shows: /health's report, /admin/status's, this process's chats in flight
    and the Redis topology."""
    return {
        "health": health_report(),
        "status": status_report(admin_id=admin_id),
        "chats_in_flight": chats_in_flight(),
        "redis": redis_topology(),
    }


def format_uptime(seconds: int) -> str:
    """`42s`, `3m 5s`, `1h 0m`, `2d 3h`: the two largest units."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"
