"""The first middleware: what requests without working credentials may take of a worker, decided before Django's
stack (sessions, CSRF, authentication, DRF, logging) runs for them.

- Per client address, the same ANON_REQUESTS_PER_MINUTE the Redis throttle (core/throttling.py) counts across
  workers, counted here in the worker's memory as well: once an address is over it (by this worker's count, or by
  Redis's verdict, remembered until its Retry-After), its requests without credentials get a canned 429. Requests
  with credentials pass, unless that address's failed credentials (401s) alone are over the limit in the minute.
- Per worker, ANON_MAX_CONCURRENT requests without credentials at once and ANON_WORKER_REQUESTS_PER_SECOND of them
  a second; more get a canned 503 with Retry-After, so that an anonymous flood, even from many addresses each under
  its limit, never holds more than that many of the worker's turns ahead of a chat, nor more than that share of its
  CPU.

Each refusal waits ANON_REFUSAL_DELAY_SECONDS before it is sent (a greenlet's sleep, no CPU), so that a client
that sends its next request when the last one is answered floods at a few requests a second, not at whatever rate
the machine allows; at most HELD_REFUSALS wait at once in a worker, and past that they are answered at once, so
holding them never takes the connections chats need. Refusals are neither logged one by one nor timed; a worker
logs a count at most once a minute, and /metrics counts them (`chatbot_anonymous_refused`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core.http import client_ip, refusal_response
from core.metrics import ANONYMOUS_REFUSED

logger = logging.getLogger("chatbot.requests")

WINDOW_SECONDS = 60
# Addresses a worker keeps a window for; past it, finished windows are dropped, and if none has finished, all.
TRACKED_ADDRESSES = 10_000
# Probes call it often from one address; it does no I/O.
EXEMPT_PATHS = frozenset({"/health/live", "/health/live/"})
# Within the per-address limit, but never refused for the worker being busy: readiness probes (a refusal would take
# the instance out of its load balancer during a flood), and logins and refreshes, which wait for bcrypt or Redis
# many at once by design and have limits of their own (LOGIN_*, BCRYPT_MAX_CONCURRENT).
NEVER_BUSY_PATHS = frozenset(path + end for path in ("/health", "/admin/login", "/admin/refresh") for end in ("", "/"))
HELD_REFUSALS = 1000
LOG_EVERY_SECONDS = 60.0


@dataclass
class Window:
    ends: float
    anonymous: int = 0
    failed_credentials: int = 0
    blocked_until: float = 0.0


class AnonymousGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.windows: dict[str, Window] = {}
        self.in_flight = 0
        self.lock = threading.Lock()
        self.refused = {"rate": 0, "busy": 0}
        self.held = 0
        self.tokens, self.refilled_at = float(settings.ANON_WORKER_REQUESTS_PER_SECOND), time.monotonic()
        self.logged_at = time.monotonic()
        self.session_cookie = settings.SESSION_COOKIE_NAME + "="

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path in EXEMPT_PATHS:
            return self.get_response(request)
        meta = request.META
        credentials = "HTTP_AUTHORIZATION" in meta or self.session_cookie in meta.get("HTTP_COOKIE", "")
        address = client_ip(request)
        now = time.monotonic()
        limit = settings.ANON_REQUESTS_PER_MINUTE
        with self.lock:
            window = self._window(address, now)
            if limit and not credentials:
                window.anonymous += 1
                over = window.anonymous > limit or window.blocked_until > now
            else:
                over = bool(limit) and window.failed_credentials > limit
            busy = not over and not credentials and self._busy(request.path, now)
            if not (over or busy):
                self.in_flight += 0 if credentials else 1
        if over or busy:
            self._hold()
        if over:
            return self._refuse("rate", max(window.ends, window.blocked_until) - time.monotonic())
        if busy:
            return self._refuse("busy", 1)
        try:
            response = self.get_response(request)
        finally:
            if not credentials:
                with self.lock:
                    self.in_flight -= 1
        if credentials and response.status_code == 401:
            with self.lock:
                self._window(address, now).failed_credentials += 1
        elif not credentials and response.status_code == 429 and _throttled(response):
            # Redis counted this address over the limit across the workers: refuse it here until it may retry.
            with self.lock:
                self._window(address, now).blocked_until = now + float(response.get("Retry-After", WINDOW_SECONDS))
        return response

    def _window(self, address: str, now: float) -> Window:
        window = self.windows.get(address)
        if window is None or window.ends <= now:
            if window is None and len(self.windows) >= TRACKED_ADDRESSES:
                self.windows = {a: w for a, w in self.windows.items() if w.ends > now or w.blocked_until > now}
                if len(self.windows) >= TRACKED_ADDRESSES:
                    self.windows.clear()
            blocked = window.blocked_until if window is not None else 0.0
            window = self.windows[address] = Window(ends=now + WINDOW_SECONDS, blocked_until=blocked)
        return window

    def _busy(self, path: str, now: float) -> bool:
        if path in NEVER_BUSY_PATHS:
            self._take_token(now)  # it still spends the worker's second, so a flood of it leaves less for the rest
            return False
        return self.in_flight >= settings.ANON_MAX_CONCURRENT or not self._take_token(now)

    def _take_token(self, now: float) -> bool:
        """One of the worker's ANON_WORKER_REQUESTS_PER_SECOND (a bucket that holds a second's worth)."""
        rate = settings.ANON_WORKER_REQUESTS_PER_SECOND
        if not rate:
            return True
        self.tokens = min(float(rate), self.tokens + (now - self.refilled_at) * rate)
        self.refilled_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def _hold(self) -> None:
        delay = settings.ANON_REFUSAL_DELAY_SECONDS
        if not delay or self.held >= HELD_REFUSALS:
            return
        self.held += 1
        try:
            time.sleep(delay)  # gevent's sleep in the worker: the greenlet waits, the worker goes on
        finally:
            self.held -= 1

    def _refuse(self, reason: str, seconds: float) -> HttpResponse:
        retry_after = max(1, int(seconds + 0.999))
        ANONYMOUS_REFUSED.labels(reason=reason).inc()
        self.refused[reason] += 1
        now = time.monotonic()
        if now - self.logged_at >= LOG_EVERY_SECONDS:
            logger.warning(
                "anonymous requests refused in %.0fs: over_address_limit=%d over_concurrency=%d",
                now - self.logged_at,
                self.refused["rate"],
                self.refused["busy"],
            )
            self.refused, self.logged_at = {"rate": 0, "busy": 0}, now
        if reason == "busy":
            detail = "Too many requests without credentials at once; retry shortly."
            return refusal_response({"detail": detail, "code": "anonymous_busy"}, status=503, retry_after=retry_after)
        detail = f"Too many requests from this address without credentials; retry in {retry_after} seconds."
        return refusal_response({"detail": detail, "code": "throttled"}, status=429, retry_after=retry_after)


def _throttled(response: HttpResponse) -> bool:
    """DRF's answer for the anonymous throttle (not, say, a login lockout, which has its own code)."""
    data = getattr(response, "data", None)
    code = data.get("code") if isinstance(data, dict) else None
    return code == "throttled"
