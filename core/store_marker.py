"""When this Redis began holding the service's data. A Redis that comes back empty (restarted without persistence,
or flushed) loses every admin, API key, login and conversation at once; the marker going missing is how the service
notices: it says so in the log and in /health, and a token refused because its login went with it says why."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from django.conf import settings

from core.redis_store import redis_client, redis_key

logger = logging.getLogger(__name__)

# When this process first saw the store begin, and the warning once it saw it begin again.
_seen: float | None = None
_lost: str | None = None


def store_began(*, existing_data: bool = False) -> float:
    """When the store began (Unix seconds; 0 for data older than the marker), marked now when Redis holds no
    marker. `existing_data`: Redis holds the service's data already (at start, an upgrade), so it began earlier."""
    global _seen, _lost
    key = redis_key("store")
    pipe = redis_client().pipeline(transaction=False)
    pipe.set(key, "0" if existing_data else f"{time.time():.3f}", nx=True)
    pipe.get(key)
    began = float(pipe.execute()[1])
    if _seen is None:
        _seen = began
    elif began != _seen:
        _seen = began
        at = datetime.fromtimestamp(began, UTC).isoformat(timespec="seconds")
        _lost = (
            f"Redis (REDIS_URL, key prefix {settings.REDIS_KEY_PREFIX!r}) lost the service's data at about {at}: it "
            "restarted without persistence or was flushed, so admins, API keys, logins and conversations made "
            "before are gone. Turn on Redis persistence (appendonly yes)."
        )
        logger.warning(_lost)
    return began


def store_lost_after(issued_at: float) -> bool:
    """Whether Redis lost the service's data after `issued_at` (Unix seconds), as far as this process knows: it
    saw the store begin (at start) and begin again since, after `issued_at`."""
    began = store_began()
    return _lost is not None and issued_at < began


def store_data_lost() -> str | None:
    """The warning once this process has seen Redis lose the service's data, else None; checks the marker."""
    store_began()
    return _lost
