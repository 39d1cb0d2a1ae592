"""Login throttling: atomic Redis counters of failed logins per username and per client address, checked
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


def login_throttle_check(*, username: str, ip: str) -> None:
    """Raises LoginThrottled (with Retry-After) when either counter has reached its limit."""
    user_key, ip_key = _keys(username, ip)
    pipe = redis_client().pipeline(transaction=False)
    pipe.get(user_key)
    pipe.ttl(user_key)
    pipe.get(ip_key)
    pipe.ttl(ip_key)
    user_failures, user_ttl, ip_failures, ip_ttl = pipe.execute()
    limits = [
        (int(user_failures or 0), settings.LOGIN_MAX_FAILURES_PER_USERNAME, user_ttl),
        (int(ip_failures or 0), settings.LOGIN_MAX_FAILURES_PER_IP, ip_ttl),
    ]
    waits = [max(ttl, 1) for failures, limit, ttl in limits if failures >= limit]
    if waits:
        raise LoginThrottled("Too many failed logins; try again later.", retry_after=max(waits))


def login_failure_record(*, username: str, ip: str) -> None:
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    pipe = redis_client().pipeline(transaction=False)
    for key in _keys(username, ip):
        pipe.incr(key)
        pipe.expire(key, window, nx=True)
    pipe.execute()


def login_success_record(*, username: str) -> None:
    redis_client().delete(_keys(username, "")[0])
