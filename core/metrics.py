"""Prometheus metrics, served at `GET /metrics` to METRICS_ALLOWED_IPS or with METRICS_TOKEN.

Counters and histograms are recorded where things happen (this module's middleware, the LLM client, the usage
store, the login flow), and so are the upstream's rate-limit gauges (from each answer's headers); gauges of
shared state (Redis up, and what apps register with `gauge_at_scrape`, such as sessions stored) are read when
scraped.
Labels are route names and error codes, never paths or user input, so the number of series stays bounded."""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections.abc import Callable, Iterator
from functools import lru_cache

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.metrics_multiprocess import ENV as MULTIPROC_ENV
from core.redis_store import redis_ping

HTTP_REQUESTS = Counter(
    "chatbot_http_requests", "HTTP requests answered, by route and status.", ["method", "endpoint", "status"]
)
HTTP_LATENCY = Histogram(
    "chatbot_http_request_duration_seconds",
    "Time to answer a request (for an event stream: to its first byte), by route and status.",
    ["method", "endpoint", "status"],
)
UPSTREAM_LATENCY = Histogram(
    "chatbot_upstream_request_duration_seconds",
    "Time to the upstream LLM's response headers, per attempt, by operation and outcome (ok or an error code).",
    ["operation", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
UPSTREAM_ERRORS = Counter("chatbot_upstream_errors", "Failed upstream LLM attempts, by kind (error code).", ["kind"])
UPSTREAM_RETRIES = Counter(
    "chatbot_upstream_retries", "Upstream LLM calls retried, by the error that caused it.", ["kind"]
)
UPSTREAM_FALLBACKS = Counter(
    "chatbot_upstream_fallbacks",
    "Upstream LLM calls passed from one model to the next of GROQ_FALLBACK_MODELS, by the error that caused it.",
    ["from_model", "to_model", "reason"],
)
# Groq's x-ratelimit-* headers as the latest upstream answer gave them; with gunicorn, the latest of any worker.
UPSTREAM_RATELIMIT_LIMIT = Gauge(
    "chatbot_upstream_ratelimit_limit",
    "The upstream's rate limit (x-ratelimit-limit-*) in its latest answer: requests per day, tokens per minute.",
    ["kind"],
    multiprocess_mode="mostrecent",
)
UPSTREAM_RATELIMIT_REMAINING = Gauge(
    "chatbot_upstream_ratelimit_remaining",
    "What the upstream's latest answer says is left of its rate limit (x-ratelimit-remaining-*).",
    ["kind"],
    multiprocess_mode="mostrecent",
)
ANONYMOUS_REFUSED = Counter(
    "chatbot_anonymous_refused",
    "Requests without credentials refused before Django's stack (core/anonymous.py), by reason: rate (over "
    "ANON_REQUESTS_PER_MINUTE for the address) or busy (over ANON_MAX_CONCURRENT in the worker).",
    ["reason"],
)
BUDGET_USED = Gauge(
    "chatbot_budget_used_ratio",
    "An admin's or API key's use of its budget this period (1 is all of it), as of its latest settled request.",
    ["owner_kind", "owner_id", "period", "unit"],
    multiprocess_mode="mostrecent",
)
LOGINS = Counter("chatbot_logins", "Password logins (token or browser), by outcome.", ["outcome"])
TOKENS = Counter("chatbot_llm_tokens", "Tokens used upstream, as the upstream reported them.", ["type"])
IDEMPOTENT_REQUESTS = Counter(
    "chatbot_idempotent_requests",
    "Requests with an Idempotency-Key used before: replayed (the stored answer), in_progress (409), mismatch (422).",
    ["outcome"],
)

METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def upstream_attempt(operation: str, started: float, outcome: str) -> None:
    UPSTREAM_LATENCY.labels(operation, outcome).observe(time.perf_counter() - started)


def upstream_error(kind: str) -> None:
    UPSTREAM_ERRORS.labels(kind).inc()


def upstream_retry(kind: str) -> None:
    UPSTREAM_RETRIES.labels(kind).inc()


def upstream_fallback(from_model: str, to_model: str, reason: str) -> None:
    """Models come from settings (GROQ_MODEL_NAME, CHAT_ALLOWED_MODELS, GROQ_FALLBACK_MODELS), so the series stay
    few; `reason` is an error code."""
    UPSTREAM_FALLBACKS.labels(from_model, to_model, reason).inc()


def upstream_rate_limit(kind: str, limit: int | None, remaining: int | None) -> None:
    """`kind`: `requests` or `tokens`; a value the answer lacked leaves its gauge as it was."""
    if limit is not None:
        UPSTREAM_RATELIMIT_LIMIT.labels(kind).set(limit)
    if remaining is not None:
        UPSTREAM_RATELIMIT_REMAINING.labels(kind).set(remaining)


def tokens_record(usage: dict[str, int]) -> None:
    for kind in ("prompt", "completion"):
        if usage.get(f"{kind}_tokens"):
            TOKENS.labels(kind).inc(usage[f"{kind}_tokens"])


def idempotent_request(outcome: str) -> None:
    IDEMPOTENT_REQUESTS.labels(outcome).inc()


def budget_use_recorded(owner_kind: str, owner_id: str, period: str, unit: str, *, used: float, limit: float) -> None:
    _budget_used(owner_kind, owner_id, period, unit).set(float(used) / float(limit) if limit else 0.0)


@lru_cache(maxsize=1024)
def _budget_used(owner_kind: str, owner_id: str, period: str, unit: str) -> Gauge:
    """The gauge's child for these labels: the one labels() returns, without its checks on every chat's settling."""
    return BUDGET_USED.labels(owner_kind, owner_id, period, unit)


def login_counted(outcome: str) -> None:
    """`succeeded`, `failed` or `throttled`."""
    LOGINS.labels(outcome).inc()


def endpoint_of(request: HttpRequest) -> str:
    match = request.resolver_match
    if match is None:
        # Answered before URL routing: WhiteNoise's static files, or a middleware's refusal.
        return "static" if request.path.startswith("/" + settings.STATIC_URL.lstrip("/")) else "unrouted"
    return match.url_name or ("unmatched" if match.route == "^" else match.route)


class MetricsMiddleware:
    """Counts and times every request. First in MIDDLEWARE, so it sees every answer, refusals included."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in METHODS else "other"
        endpoint, status = endpoint_of(request), str(response.status_code)
        HTTP_REQUESTS.labels(method, endpoint, status).inc()
        HTTP_LATENCY.labels(method, endpoint, status).observe(time.perf_counter() - started)
        return response


# Gauges that apps register to be read at scrape time: name -> (help, read).
_SCRAPE_GAUGES: dict[str, tuple[str, Callable[[], int]]] = {}


def gauge_at_scrape(name: str, help_text: str, read: Callable[[], int]) -> None:
    """Registers a gauge of shared state, read from its store whenever metrics are scraped."""
    _SCRAPE_GAUGES[name] = (help_text, read)


class SharedStateCollector(Collector):
    """Gauges read from the shared stores at scrape time, the same whichever worker answers."""

    def collect(self) -> Iterator[Metric]:
        redis_up = redis_ping()
        yield GaugeMetricFamily("chatbot_redis_up", "1 when Redis answers a PING.", value=int(redis_up))
        for name, (help_text, read) in _SCRAPE_GAUGES.items():
            try:
                value = read()
            except redis.RedisError:
                continue
            yield GaugeMetricFamily(name, help_text, value=value)


def metrics_text() -> bytes:
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    shared = CollectorRegistry(auto_describe=False)
    shared.register(SharedStateCollector())
    return generate_latest(registry) + generate_latest(shared)


def metrics_allowed(address: str, authorization: str) -> bool:
    token = settings.METRICS_TOKEN
    if token and hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
        return True
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(client in network for network in settings.METRICS_ALLOWED_NETWORKS)
