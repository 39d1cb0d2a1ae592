"""Login throttling: atomic Redis counters of failed logins per username and per client address, counted
before bcrypt runs, so a flood of guesses costs almost nothing and cannot starve other requests."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.http import HttpRequest

from chatbot_project.exceptions import ServiceError
from chatbot_project.redis_store import redis_client, redis_key


class LoginThrottled(ServiceError):
    status_code = 429
    code = "login_throttled"


def client_ip(request: HttpRequest) -> str:
    """The client's address: the socket's peer, or the header a trusted proxy sets (CLIENT_IP_HEADER).

    With X-Forwarded-For the last entry is the one our proxy appended; earlier ones are the client's word."""
    header = settings.CLIENT_IP_HEADER
    if header:
        value = request.headers.get(header, "")
        forwarded = [part.strip() for part in value.split(",") if part.strip()]
        if forwarded:
            return forwarded[-1][:64]
    return request.META.get("REMOTE_ADDR", "unknown")


def _keys(username: str, ip: str) -> tuple[str, str]:
    # Hashed: a username is user input and may be long or odd; a key should be neither.
    user_digest = hashlib.sha256(username.lower().encode()).hexdigest()[:32]
    return redis_key("throttle", "login-user", user_digest), redis_key("throttle", "login-ip", ip)


def login_attempt_start(*, username: str, ip: str) -> None:
    """Counts this attempt as a failure before bcrypt runs, atomically, and raises LoginThrottled (with
    Retry-After) once the username or the address is over its limit. Counting first means that simultaneous
    guesses cannot all pass the check before any of them is counted."""
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    user_key, ip_key = _keys(username, ip)
    pipe = redis_client().pipeline(transaction=False)
    for key in (user_key, ip_key):
        pipe.incr(key)
        pipe.expire(key, window, nx=True)
        pipe.ttl(key)
    user_count, _, user_ttl, ip_count, _, ip_ttl = pipe.execute()
    limits = [
        (user_count, settings.LOGIN_MAX_FAILURES_PER_USERNAME, user_ttl),
        (ip_count, settings.LOGIN_MAX_FAILURES_PER_IP, ip_ttl),
    ]
    waits = [max(ttl, 1) for count, limit, ttl in limits if count > limit]
    if waits:
        raise LoginThrottled("Too many failed logins; try again later.", retry_after=max(waits))


# A counter whose window ended meanwhile must not come back as -1 without an expiry.
_DECR_IF_EXISTS = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end return 0"


def login_attempt_succeeded(*, username: str, ip: str) -> None:
    """The right password: the username's failures are forgotten and the address gets this attempt back."""
    user_key, ip_key = _keys(username, ip)
    pipe = redis_client().pipeline(transaction=False)
    pipe.delete(user_key)
    pipe.eval(_DECR_IF_EXISTS, 1, ip_key)
    pipe.execute()
