"""The CPU shortcuts that reach into libraries' private parts, all of them here: each is kept only for a large share
of a chat's CPU (docs/performance.md has the figures), and tests/test_shortcuts.py holds every private name one relies
on, failing when a library changes it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.core.signals import setting_changed
from django.dispatch import receiver
from rest_framework.serializers import BaseSerializer
from rest_framework_simplejwt.tokens import AccessToken
from rest_framework_simplejwt.utils import aware_utcnow

S = TypeVar("S", bound=BaseSerializer)

# DRF: request serializers made once and lent out, one request at a time, for each request a process validates.
#
# A DRF serializer makes every one of its fields afresh on each instance (deep copies of the declared fields).
# Validating keeps no state in the fields, only in the serializer's `_validated_data`, `_errors` and `_data`, so an
# instance can serve one request after another: `with lent_serializer(cls, data) as body:` in place of
# `body = cls(data=data)`, then is_valid() and validated_data as usual, inside the block. The instances wait in a pool
# per process, not per thread: under gevent a thread-local is a greenlet-local, and each connection's greenlet made
# its own (some 17 KiB per stream held, and a serializer's construction on every new connection). A serializer is
# lent to one block at a time, so a validation that waits (and lets another greenlet run) never shares one. What
# validated_data returned is a dict of its own that the next validation does not touch. One whose validation failed
# is not given back: its errors, which the exception carries on, refer to it.
VALIDATION_STATE = ("_validated_data", "_errors", "_data")

_pools: dict[type[BaseSerializer], list[BaseSerializer]] = {}


@contextmanager
def lent_serializer(serializer_class: type[S], data: Any) -> Iterator[S]:
    """A `serializer_class` holding `data` and nothing of the data it validated before, for the block."""
    pool = _pools.setdefault(serializer_class, [])
    try:
        serializer = pool.pop()
    except IndexError:
        serializer = serializer_class(data=data)
    else:
        serializer.initial_data = data
        for name in VALIDATION_STATE:
            serializer.__dict__.pop(name, None)
    yield serializer  # type: ignore[misc]
    pool.append(serializer)


@receiver(setting_changed)
def _forget_serializers(**kwargs: Any) -> None:
    # Serializers read settings (MAX_TOKENS, MAX_MESSAGE_CHARS) when made: a changed setting makes them afresh.
    _pools.clear()


# SimpleJWT: an access token this process verified before, made again from its claims without decoding it.
TOKEN_ATTRIBUTES = ("token", "current_time", "payload")


def access_token_from_claims(raw: bytes, claims: dict[str, Any]) -> AccessToken:
    """The AccessToken that AccessToken(raw) made, given the claims it read: the attributes its constructor sets
    (TOKEN_ATTRIBUTES), with a copy of the claims of its own."""
    token = AccessToken.__new__(AccessToken)
    token.token = raw  # type: ignore[assignment]
    token.current_time = aware_utcnow()
    token.payload = dict(claims)
    return token
