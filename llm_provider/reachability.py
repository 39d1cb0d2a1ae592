"""What the latest chat learnt about the upstream: reached it, or failed to. The health every process reports
(llm_provider/services.py) follows it at once instead of waiting for its next probe: each change is kept in this
process and, for the other processes and instances, in Redis for LLM_HEALTH_CACHE_SECONDS (after that the probe
knows as much)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import redis
from django.conf import settings

from core.redis_store import redis_client, redis_key
from llm_provider.exceptions import LLMError

logger = logging.getLogger(__name__)

# The failures that say the upstream itself is down or failing, not that one request was refused.
DOWN_CODES = frozenset({"upstream_unavailable", "upstream_timeout", "upstream_error"})


@dataclass(frozen=True)
class Reachability:
    reached: bool
    code: str | None
    detail: str | None
    observed_at: float  # Unix time


_latest: Reachability | None = None


def reachability_observe(error: LLMError | None) -> None:
    """Records a chat's upstream call: None when the upstream answered it; its error otherwise (only failures in
    DOWN_CODES count). Only a change is shared, so a healthy upstream costs nothing per chat."""
    global _latest
    if error is None:
        if _latest is None or not _latest.reached:
            _latest = Reachability(True, None, None, time.time())
            _share(_latest)
    elif error.code in DOWN_CODES:
        _latest = Reachability(False, error.code, str(error.detail), time.time())
        _share(_latest)


def reachability_latest() -> Reachability | None:
    """The latest outcome any process shared, or this process's own when it is newer."""
    global _latest
    shared = _shared()
    if shared is not None and (_latest is None or shared.observed_at > _latest.observed_at):
        _latest = shared
    return _latest


def _key() -> str:
    return redis_key("llm-reachability")


def _share(outcome: Reachability) -> None:
    value = json.dumps(
        {"reached": outcome.reached, "code": outcome.code, "detail": outcome.detail, "at": outcome.observed_at}
    )
    try:
        redis_client().set(_key(), value, ex=max(1, settings.LLM_HEALTH_CACHE_SECONDS))
    except redis.RedisError as exc:  # the chat's own answer matters more; health falls back on its probe
        logger.warning("could not share the upstream's reachability: %s", type(exc).__name__)


def _shared() -> Reachability | None:
    try:
        raw = redis_client().get(_key())
    except redis.RedisError:
        return None
    if raw is None:
        return None
    data = json.loads(raw)
    return Reachability(bool(data["reached"]), data["code"], data["detail"], float(data["at"]))
