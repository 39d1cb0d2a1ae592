"""Checks run before the server starts serving, and the one message a command or the start ends with when
something it needs is missing or misconfigured."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from core.redis_store import redis_client, redis_disconnect


def debug_mode_warning() -> str | None:
    """What an instance running with DEBUG on says at start, naming where DEBUG was set; None with DEBUG off."""
    if not settings.DEBUG:
        return None
    source = settings.DEBUG_SET_BY or "the environment"
    return (
        f"!!! DEBUG is on (set by {source}): this is a DEVELOPMENT instance, not fit for production. It accepts "
        "well-known passwords such as admin123 and example secrets, and sends cookies without Secure. For "
        "production set DEBUG=false (in the environment or in that file). !!!"
    )


def redis_in_use() -> str:
    """Which Redis (and which keys in it) this process uses, and where that came from: for the output of commands
    that may run in a shell whose REDIS_URL is not the server's."""
    source = settings.REDIS_URL_SET_BY or "the default"
    return (
        f"Redis at {redacted_url(settings.REDIS_URL)} (REDIS_URL from {source}), "
        f"key prefix {settings.REDIS_KEY_PREFIX!r}"
    )


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
    except (redis.RedisError, ValueError) as exc:
        message = redis_failure_message(exc)
        if message is None:
            raise
        return message
    # Forked workers must not share the master's sockets.
    redis_disconnect(client)
    return None


def redis_failure_message(exc: BaseException) -> str | None:
    """What to tell the operator when Redis failed a command or the server's start with `exc`: which variable and
    which server, and what to do. None when `exc` is no Redis failure."""
    try:
        url = redacted_url(settings.REDIS_URL)
    except ValueError:  # a port that is no number
        url = "(not shown: it does not parse)"
    if isinstance(exc, ValueError):
        problem = _redis_url_problem(settings.REDIS_URL)
        if problem is None:
            return None
        if urlsplit(settings.REDIS_URL).scheme not in ("redis", "rediss", "unix"):
            problem = "it must start with redis://, rediss:// or unix://"
        return f"REDIS_URL={url} is not a Redis URL: {problem} (e.g. redis://127.0.0.1:6379/0)."
    if isinstance(exc, redis.AuthenticationError | redis.exceptions.AuthenticationWrongNumberOfArgsError):
        return f"Redis at {url} (REDIS_URL) refused the credentials: check the user and password in REDIS_URL."
    if isinstance(exc, redis.ResponseError):
        return f"Redis at {url} (REDIS_URL) answered with an error: {exc}. Check that REDIS_URL names the right server."
    if isinstance(exc, redis.RedisError):
        return (
            f"Redis is not reachable at {url} (REDIS_URL): {type(exc).__name__}.\n"
            "Start one locally with:\n"
            '  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no\n'
            "or with Docker: docker run -d -p 6379:6379 redis:7-alpine"
        )
    return None


def _redis_url_problem(url: str) -> str | None:
    try:
        redis.connection.parse_url(url)
    except ValueError as exc:
        return str(exc)
    return None


def failure_message(exc: BaseException) -> str | None:
    """The one message a management command or the server's start ends with for `exc` instead of a traceback, or
    None for an error that is a bug (which keeps its traceback)."""
    if isinstance(exc, ImproperlyConfigured):
        return f"Configuration error: {exc}"
    if isinstance(exc, CommandError):
        return str(exc)
    return redis_failure_message(exc)


@contextmanager
def failures_as_messages(prefix: str = "") -> Iterator[None]:
    """Runs the block; a failure with a message for the operator (failure_message) exits with that message and
    status 1, without a traceback."""
    try:
        yield
    except Exception as exc:
        message = failure_message(exc)
        if message is None:
            raise
        sys.exit(message if message.startswith(prefix) else prefix + message)
