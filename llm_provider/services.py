"""The configured LLM provider: its client, its description, a cached health check and its startup warning."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from django.conf import settings

from core.cached import until_settings_change
from llm_provider.client import ChatClient, LLMConfig
from llm_provider.exceptions import LLMError
from llm_provider.pool import get_client
from llm_provider.rate_limits import rate_limits_latest
from llm_provider.reachability import reachability_latest
from llm_provider.types import ModelInfo

logger = logging.getLogger(__name__)

# The provider's name, for every app to import: settings reads it from LLM_PROVIDER and allows only its one value.
PROVIDER: str = settings.LLM_PROVIDER
# A health probe must answer quickly even when the upstream hangs.
HEALTH_TIMEOUT_SECONDS = 5.0


@until_settings_change
def llm_config() -> LLMConfig:
    return LLMConfig(
        base_url=settings.GROQ_BASE_URL,
        api_key=settings.GROQ_API_KEY or None,
        model=settings.GROQ_MODEL_NAME,
        temperature=settings.TEMPERATURE,
        max_tokens=settings.MAX_TOKENS,
        timeout_seconds=settings.LLM_TIMEOUT_SECONDS,
        connect_timeout=settings.LLM_CONNECT_TIMEOUT_SECONDS,
        max_retries=settings.LLM_MAX_RETRIES,
        max_connections=settings.LLM_MAX_CONNECTIONS,
        max_tokens_param=settings.LLM_MAX_TOKENS_PARAM,
        fallback_models=tuple(settings.GROQ_FALLBACK_MODELS),
    )


def llm_startup_check() -> None:
    """Called once when the server starts. Without GROQ_API_KEY every chat answers 503 and logs only its request
    line, so this is where the operator reads why."""
    if not settings.GROQ_API_KEY:
        logger.warning(
            "GROQ_API_KEY is not set: chats will answer 503 llm_not_configured until GROQ_API_KEY is set "
            "(everything else works)."
        )


def llm_client() -> ChatClient:
    return get_client(llm_config())


def upstream_rate_limits() -> dict[str, object] | None:
    """The upstream's rate limits as this process last saw them (Groq's x-ratelimit-* headers), or None before
    any answer carried them."""
    latest = rate_limits_latest()
    return None if latest is None else latest.as_dict()


def _is_local_host(host: str) -> bool:
    """Whether `host` is this machine or a private network (an Ollama, vLLM or stand-in upstream), not a cloud."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        # A name without a dot is one a local resolver or Docker's network answers (`ollama`, `localhost`).
        return "." not in host or host.endswith((".localhost", ".local", ".internal", ".lan"))
    return address.is_loopback or address.is_private or address.is_link_local


def upstream_kind(base_url: str) -> tuple[str, str]:
    """The upstream at `base_url` as `(type, description)`: "cloud" or "local", and what it is."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    where = parts.netloc.rpartition("@")[2]  # never the credentials a URL may carry
    if _is_local_host(host):
        return "local", f"OpenAI-compatible LLM server on a local or private network ({where})"
    if host == "groq.com" or host.endswith(".groq.com"):
        return "cloud", "ChatGroq cloud-based LLM inference"
    return "cloud", f"OpenAI-compatible LLM service at {where}"


def provider_description() -> dict[str, object]:
    kind, description = upstream_kind(settings.GROQ_BASE_URL)
    return {
        "provider": PROVIDER,
        "model": settings.GROQ_MODEL_NAME,
        "base_url": settings.GROQ_BASE_URL,
        "temperature": settings.TEMPERATURE,
        "max_tokens": settings.MAX_TOKENS,
        "type": kind,
        "description": description,
    }


@dataclass(frozen=True)
class LLMHealth:
    healthy: bool
    model: str
    model_available: bool | None
    models: tuple[str, ...]
    error: str | None
    error_code: str | None
    checked_at: float

    @property
    def age_seconds(self) -> float:
        return time.time() - self.checked_at


_health_lock = threading.Lock()
_health: dict[tuple[str, str], LLMHealth] = {}


def llm_health() -> LLMHealth:
    """Asks the upstream for its models at most once per LLM_HEALTH_CACHE_SECONDS per process: probes from a
    load balancer must not turn into upstream traffic. A chat (of any process) that failed to reach the upstream
    since makes it unhealthy at once; one that reached it after that asks again at once."""
    key = (settings.GROQ_BASE_URL, settings.GROQ_MODEL_NAME)
    with _health_lock:
        cached = _health.get(key)
        chat = reachability_latest()
        # A process that has not asked yet counts a failed chat too: every process reports what any chat found.
        if chat is not None and (cached is None or chat.observed_at > cached.checked_at):
            if not chat.reached:
                models = cached.models if cached is not None else ()
                cached = LLMHealth(False, key[1], None, models, chat.detail, chat.code, chat.observed_at)
                _health[key] = cached
                return cached
            if cached is not None and not cached.healthy:
                cached = None  # recovered: ask again now
        if cached is not None and cached.age_seconds < settings.LLM_HEALTH_CACHE_SECONDS:
            return cached
        _health[key] = result = _check_health()
        return result


def _check_health() -> LLMHealth:
    model = settings.GROQ_MODEL_NAME
    try:
        config = replace(llm_config(), timeout_seconds=HEALTH_TIMEOUT_SECONDS, max_retries=0)
        models: list[ModelInfo] = get_client(config).list_models()
    except LLMError as exc:
        return LLMHealth(False, model, None, (), exc.detail, exc.code, time.time())
    ids = tuple(sorted(m.id for m in models))
    available = model in ids
    error = None if available else f"The configured model '{model}' is not listed upstream; set GROQ_MODEL_NAME."
    return LLMHealth(available, model, available, ids, error, None if available else "model_unavailable", time.time())
