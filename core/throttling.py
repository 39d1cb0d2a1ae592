"""A bound on anonymous requests per client address: ANON_REQUESTS_PER_MINUTE, counted in Redis, so that the bound
holds for an address across every worker and instance, and a counter costs nothing once its minute is over."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis
from django.conf import settings
from redis.exceptions import RedisClusterException
from rest_framework.throttling import BaseThrottle

from core.http import client_ip
from core.redis_store import redis_script, redis_tagged_key

if TYPE_CHECKING:  # rest_framework.views imports this module (DEFAULT_THROTTLE_CLASSES) while it loads
    from rest_framework.request import Request
    from rest_framework.views import APIView

WINDOW_SECONDS = 60

# KEYS: the address's counter. ARGV: the window. Returns the count and the seconds left in the window; the
# counter gets its expiry in the same step as its first increment.
_COUNT_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
"""


class AnonymousRateThrottle(BaseThrottle):
    """DRF runs it after authentication: a request whose credentials authenticated is never counted. The window is
    fixed, from an address's first anonymous request; over the limit, DRF answers 429 `throttled` with Retry-After,
    the seconds left in it."""

    def __init__(self) -> None:
        self.retry_after: int | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        limit = settings.ANON_REQUESTS_PER_MINUTE
        if not limit or request.user.is_authenticated:
            return True
        # Shares its address's hash tag with the login throttle's counters (accounts/throttling.py).
        key = redis_tagged_key(f"t:{client_ip(request)}", "anon")
        try:
            count, ttl = redis_script(_COUNT_SCRIPT)(keys=[key], args=[WINDOW_SECONDS])
        except (redis.RedisError, RedisClusterException):
            # The bound guards the CPU, which Redis being down does not threaten; the public endpoints keep
            # answering (/health reports Redis down) rather than each turning into a 503 of the throttle's own.
            return True
        self.retry_after = max(int(ttl), 1)
        return count <= limit

    def wait(self) -> float | None:
        return self.retry_after
