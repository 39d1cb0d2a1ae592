"""Login throttling: atomic Redis counters of failed logins per username and per client address, counted
before bcrypt runs, so a flood of guesses costs almost nothing and cannot starve other requests."""

from __future__ import annotations

import hashlib

from django.conf import settings

from accounts.credentials import username_folded
from core.exceptions import ServiceError
from core.metrics import login_counted
from core.redis_store import redis_script, redis_tagged_key


class LoginThrottled(ServiceError):
    status_code = 429
    code = "login_throttled"
    attempts = 0


def _keys(username: str, ip: str) -> tuple[str, str]:
    # The username is folded, so `ERIN` and `erin` share a counter, and hashed: it is user input and may be long
    # or odd; a key should be neither. It is counted per address, so guesses from one address cannot lock the
    # owner out from another. Both counters of an address share its hash tag: one Redis Cluster slot per address.
    user_digest = hashlib.sha256(f"{username_folded(username)}|{ip}".encode()).hexdigest()[:32]
    tag = f"t:{ip}"
    return redis_tagged_key(tag, "login-user", user_digest), redis_tagged_key(tag, "login-ip")


# KEYS: the address's counter, the username's counter at that address. ARGV: window, address limit.
# Counts the address first; once the address is over its limit its attempts create no username counters, so a
# throttled address spraying usernames adds no keys. Returns both counts and both TTLs. A counter gets its expiry
# with its first attempt, or with the next one should it ever be found without.
_COUNT_ATTEMPT_SCRIPT = """
local window, ip_limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if not (window and ip_limit) then error('count: the window or the limit is not a number') end
local function count(key)
  local n = redis.call('INCR', key)
  if n == 1 or redis.call('TTL', key) == -1 then redis.call('EXPIRE', key, window) end
  return {n, redis.call('TTL', key)}
end
local ip = count(KEYS[1])
if ip[1] > ip_limit then return {ip[1], ip[2], 0, 0} end
local user = count(KEYS[2])
return {ip[1], ip[2], user[1], user[2]}
"""


def login_attempt_start(*, username: str, ip: str) -> int:
    """Counts this attempt as a failure before bcrypt runs, atomically, and raises LoginThrottled (with
    Retry-After, and the address's `attempts`) once the address, or this username from this address, is over its
    limit. Counting first means that simultaneous guesses cannot all pass the check before any of them is counted.
    Returns the count of this username's attempts from this address in the window, this one included."""
    user_key, ip_key = _keys(username, ip)
    ip_limit, user_limit = settings.LOGIN_MAX_FAILURES_PER_IP, settings.LOGIN_MAX_FAILURES_PER_USERNAME
    count_attempt = redis_script(_COUNT_ATTEMPT_SCRIPT)
    ip_count, ip_ttl, user_count, user_ttl = count_attempt(
        keys=[ip_key, user_key], args=[settings.LOGIN_FAILURE_WINDOW_SECONDS, ip_limit]
    )
    limits = ((ip_count, ip_limit, ip_ttl), (user_count, user_limit, user_ttl))
    waits = [max(ttl, 1) for count, limit, ttl in limits if count > limit]
    if waits:
        login_counted("throttled")
        throttled = LoginThrottled("Too many failed logins; try again later.", retry_after=max(waits))
        throttled.attempts = ip_count
        raise throttled
    return user_count


# KEYS: the address's counter, the username's counter at that address. Forgets the username's failures and gives
# the address its attempt back; a counter whose window ended meanwhile must not come back as -1 without an expiry.
_SUCCEEDED_SCRIPT = """
redis.call('DEL', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECR', KEYS[1]) end
"""


def login_attempt_succeeded(*, username: str, ip: str) -> None:
    """The right password: the username's failures at this address are forgotten and the address gets this
    attempt back."""
    user_key, ip_key = _keys(username, ip)
    redis_script(_SUCCEEDED_SCRIPT)(keys=[ip_key, user_key])
