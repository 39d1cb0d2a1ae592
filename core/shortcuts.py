"""The CPU shortcuts that reach into libraries' private parts, all of them here: each is kept only for a large share
of a chat's CPU (docs/performance.md has the figures), and tests/test_shortcuts.py holds every private name one relies
on, failing when a library changes it."""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from django.core.signals import setting_changed
from django.dispatch import receiver
from rest_framework.serializers import BaseSerializer
from rest_framework_simplejwt.tokens import AccessToken
from rest_framework_simplejwt.utils import aware_utcnow

S = TypeVar("S", bound=BaseSerializer)

# DRF: request serializers made once per thread and reused for each request the thread validates.
#
# A DRF serializer makes every one of its fields afresh on each instance (deep copies of the declared fields).
# Validating keeps no state in the fields, only in the serializer's `_validated_data`, `_errors` and `_data`, so
# one instance per class and thread serves every request that thread answers: `thread_serializer(cls, data)` in place of
# `cls(data=data)`, then is_valid() and validated_data as usual. A thread answers one request at a time, and what
# validated_data returned before is a dict of its own that the next validation does not touch.
VALIDATION_STATE = ("_validated_data", "_errors", "_data")

_local = threading.local()
# Serializers read settings (MAX_TOKENS, MAX_MESSAGE_CHARS) when made: a changed setting makes them afresh.
_generation = 0


def thread_serializer(serializer_class: type[S], data: Any) -> S:
    """This thread's `serializer_class`, holding `data` and nothing of the data it validated before."""
    cache: dict[type[BaseSerializer], BaseSerializer] | None = getattr(_local, "serializers", None)
    if cache is None or _local.generation != _generation:
        cache = _local.serializers = {}
        _local.generation = _generation
    serializer = cache.get(serializer_class)
    if serializer is None:
        serializer = cache[serializer_class] = serializer_class(data=data)
        return serializer  # type: ignore[return-value]
    serializer.initial_data = data
    for name in VALIDATION_STATE:
        serializer.__dict__.pop(name, None)
    return serializer  # type: ignore[return-value]


@receiver(setting_changed)
def _forget_serializers(**kwargs: Any) -> None:
    global _generation
    _generation += 1


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
