"""What a process makes once from its settings (its Redis client, history store, upstream configuration) and keeps
until a setting changes: a running server's settings do not change, the tests' do (each change sends
setting_changed)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from django.core.signals import setting_changed

T = TypeVar("T")


def until_settings_change(make: Callable[[], T]) -> Callable[[], T]:
    """`make()`'s value, made on the first call and again after any setting changed."""
    cached = cache(make)

    def forget(**kwargs: Any) -> None:
        cached.cache_clear()

    setting_changed.connect(forget, weak=False)
    return cached
