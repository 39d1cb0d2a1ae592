"""Request serializers made once per thread and reused for each request the thread validates.

A DRF serializer makes every one of its fields afresh on each instance (deep copies of the declared fields, some
10 µs a field): for `/chat/`'s request serializer, with its generation options and nested parts, that was a fifth of
a chat's CPU (bench/cpu_per_chat.py), and more for `/v1/chat/completions`'. Validating keeps no state in the
fields, so one instance per class and thread serves every request that thread answers: `reused(cls, data)` in place
of `cls(data=data)`, then is_valid() and validated_data as usual. A thread answers one request at a time, and what
validated_data returned before is a dict of its own that the next validation does not touch."""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from django.core.signals import setting_changed
from django.dispatch import receiver
from rest_framework.serializers import BaseSerializer

S = TypeVar("S", bound=BaseSerializer)

_local = threading.local()
# Serializers read settings (MAX_TOKENS, MAX_MESSAGE_CHARS) when made: a changed setting makes them afresh.
_generation = 0


def reused(serializer_class: type[S], data: Any) -> S:
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
    # What is_valid(), errors and data leave on a DRF serializer; without them it validates afresh.
    for name in ("_validated_data", "_errors", "_data"):
        serializer.__dict__.pop(name, None)
    return serializer  # type: ignore[return-value]


@receiver(setting_changed)
def _forget_serializers(**kwargs: Any) -> None:
    global _generation
    _generation += 1
