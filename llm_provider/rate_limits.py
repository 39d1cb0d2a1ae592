"""Groq's rate-limit headers (`x-ratelimit-*`) from the latest upstream answer this process received, whatever its
status (a 429 included), for `/admin/status` and `/metrics`.

The limits are the Groq organisation's, shared by every process using the key: each process keeps its own latest
view, and `/metrics` (with gunicorn's workers adding up their samples) reports the most recent one of any worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core import metrics
from core.timestamps import iso_at

KINDS = ("requests", "tokens")


@dataclass(frozen=True)
class RateLimits:
    """None where the answer lacked a header; resets stay as Groq writes them (Go durations such as `2m59.56s`)."""

    limit_requests: int | None
    remaining_requests: int | None
    reset_requests: str | None
    limit_tokens: int | None
    remaining_tokens: int | None
    reset_tokens: str | None
    observed_at: float  # Unix time

    def as_dict(self) -> dict[str, Any]:
        return {
            "limit_requests": self.limit_requests,
            "remaining_requests": self.remaining_requests,
            "reset_requests": self.reset_requests,
            "limit_tokens": self.limit_tokens,
            "remaining_tokens": self.remaining_tokens,
            "reset_tokens": self.reset_tokens,
            "observed_at": iso_at(datetime.fromtimestamp(self.observed_at, UTC), timespec="milliseconds"),
        }


_lock = threading.Lock()
_latest: RateLimits | None = None


def rate_limits_observe(headers: Mapping[str, str]) -> None:
    """Keeps the rate-limit headers of an upstream answer; an answer without any (another OpenAI-compatible server)
    leaves the last view as it was."""
    fields: dict[str, Any] = {}
    for kind in KINDS:
        fields[f"limit_{kind}"] = _count(headers.get(f"x-ratelimit-limit-{kind}"))
        fields[f"remaining_{kind}"] = _count(headers.get(f"x-ratelimit-remaining-{kind}"))
        fields[f"reset_{kind}"] = (headers.get(f"x-ratelimit-reset-{kind}") or "").strip()[:32] or None
    if all(value is None for value in fields.values()):
        return
    observed = RateLimits(**fields, observed_at=time.time())
    global _latest
    with _lock:
        _latest = observed
        # Under the lock, so that the gauges end on the same answer as the holder when threads race.
        for kind in KINDS:
            metrics.upstream_rate_limit(kind, fields[f"limit_{kind}"], fields[f"remaining_{kind}"])


def rate_limits_latest() -> RateLimits | None:
    with _lock:
        return _latest


def _count(raw: str | None) -> int | None:
    try:
        return int((raw or "").strip())
    except ValueError:
        return None
