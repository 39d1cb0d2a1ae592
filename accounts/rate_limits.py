"""Requests and tokens per minute of an admin (its own limits, `manage.py setlimits`) and of an API key, which hold
under concurrency: as a token budget does (accounts.budgets), a turn reserves its worst case against every
tokens-per-minute limit that applies, atomically in Redis, and settles to its real usage; a request counts against a
requests-per-minute limit when it is let through.

The limits count in windows of a UTC minute, `A:rate:<owner>:<minute>` for an owner `admin:<id>` or `key:<id>`
(in the Redis key map, docs/architecture.md), each a hash of the requests let through, the tokens used and the
reservations in flight (`r:<id>` = tokens:expiry), in the admin's Redis Cluster slot; a reservation counts in the
minute it was made. An admin's requests per minute are counted where its chat slot is taken
(conversations.limits); the admin's tokens per minute and a key's limits are counted here.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache, partial
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from redis.client import Pipeline

from accounts.budgets import BudgetOwner, Reservation, budget_owner, budget_reserve, budget_reserve_call, clock_text
from core.exceptions import ServiceError
from core.leases import Lease
from core.redis_store import RepliesHandler, ScriptCall, redis_admin_key, redis_script

if TYPE_CHECKING:
    from accounts.models import AdminUser

# How long a refusal caused only by other requests' reservations asks a client to wait: they settle within a call.
RESERVED_RETRY_SECONDS = 2.0


class RateLimited(ServiceError):
    status_code = 429
    code = "rate_limited"


@dataclass(frozen=True)
class Rate:
    """The per-minute limits of one owner; 0 is no limit."""

    owner: BudgetOwner
    requests_per_minute: int = 0
    tokens_per_minute: int = 0


class RateStatus(NamedTuple):
    """Where a caller stands against one of its per-minute limits once its request is let through (a tuple,
    quicker to make than a frozen dataclass, on every chat)."""

    limit: int
    remaining: int
    reset_seconds: float


def caller_rates(admin: AdminUser) -> tuple[Rate, ...]:
    """The per-minute limits counted here for a request of `admin` (with its API key, if any): the admin's tokens
    per minute, and its key's requests and tokens per minute."""
    rates = []
    if admin.limits.tokens_per_minute:
        rates.append(_rate("admin", admin.id, "", 0, admin.limits.tokens_per_minute))
    key = admin.api_key
    if key is not None and (key.rules.requests_per_minute or key.rules.tokens_per_minute):
        requests, tokens = key.rules.requests_per_minute or 0, key.rules.tokens_per_minute or 0
        rates.append(_rate("key", key.id, key.admin_id, requests, tokens))
    return tuple(rates)


@lru_cache(maxsize=1024)
def _rate(kind: Literal["admin", "key"], owner_id: str, admin_id: str, requests: int, tokens: int) -> Rate:
    """A limit, immutable and shared: made once per owner and figures, not on every chat."""
    return Rate(budget_owner(kind, owner_id, admin_id), requests, tokens)


@lru_cache(maxsize=1024)
def _window_key(owner: BudgetOwner, minute: int) -> str:
    return redis_admin_key(owner.admin_id or owner.id, "rate", owner.name, str(minute))


# KEYS: per limit, its owner's window this minute. ARGV: now, the reservation's id, its tokens, when it expires
# unrenewed, when the windows expire (Unix time), then per limit its requests and tokens per minute (0: none).
# Returns {'ok', then per limit its requests and its tokens used or held, this request's included}, or for the first
# limit that refuses {'requests', i}, {'tokens', i, tokens left} or {'reserved', i} (over what other reservations
# leave).
_RESERVE_SCRIPT = """
local now, id, amount, expires, expire_at = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
if not (now and amount and tonumber(expires) and tonumber(expire_at)) then error('rate: not a number') end
local counts = {}
for i, window in ipairs(KEYS) do
  local rpm, tpm = tonumber(ARGV[4 + 2 * i]), tonumber(ARGV[5 + 2 * i])
  local requests, used, reserved = 0, 0, 0
  local fields = redis.call('HGETALL', window)
  for j = 1, #fields, 2 do
    local name, value = fields[j], fields[j + 1]
    if name == 'requests' then
      requests = tonumber(value)
    elseif name == 'used' then
      used = tonumber(value)
    else
      local tokens, expiry = string.match(value, '^(%d+):(.+)$')
      if tonumber(expiry) < now then redis.call('HDEL', window, name) else reserved = reserved + tonumber(tokens) end
    end
  end
  if rpm > 0 and requests >= rpm then return {'requests', i} end
  if tpm > 0 then
    if amount > tpm - used then return {'tokens', i, math.max(tpm - used, 0)} end
    if amount > tpm - used - reserved then return {'reserved', i} end
  end
  counts[#counts + 1] = requests + 1
  counts[#counts + 1] = used + reserved + (tpm > 0 and amount or 0)
end
for i, window in ipairs(KEYS) do
  redis.call('HINCRBY', window, 'requests', 1)
  if tonumber(ARGV[5 + 2 * i]) > 0 then redis.call('HSET', window, 'r:' .. id, amount .. ':' .. expires) end
  redis.call('EXPIREAT', window, expire_at)
end
return {'ok', unpack(counts)}
"""

# KEYS: the windows whose tokens were reserved on. ARGV: the reservation's id, the tokens really used, when the
# windows expire (Unix time).
_SETTLE_SCRIPT = """
local tokens, expire_at = tonumber(ARGV[2]), tonumber(ARGV[3])
if not (tokens and expire_at) then error('rate settle: not a number') end
for _, window in ipairs(KEYS) do
  redis.call('HDEL', window, 'r:' .. ARGV[1])
  if tokens > 0 then redis.call('HINCRBY', window, 'used', tokens) end
  redis.call('EXPIREAT', window, expire_at)
end
"""


@dataclass
class RateReservation:
    """Tokens held against tokens-per-minute limits until `settle`; settling twice does nothing. `statuses`: where
    the caller stands against each of its limits, requests and tokens, once this request is let through."""

    id: str = ""
    windows: list[str] = field(default_factory=list)  # those with a tokens-per-minute limit
    hold_seconds: float = 0.0
    expire_at: int = 0
    requests: list[RateStatus] = field(default_factory=list)
    tokens: list[RateStatus] = field(default_factory=list)
    settled: bool = False

    def leases(self) -> list[Lease]:
        if self.settled:
            return []
        what = "its tokens-per-minute reservation"
        return [Lease("expiring-field", key, f"r:{self.id}", self.hold_seconds, what) for key in self.windows]

    def settle(self, tokens: int) -> None:
        if self.settled:
            return
        self.settled = True
        if self.windows:
            redis_script(_SETTLE_SCRIPT)(keys=self.windows, args=[self.id, max(tokens, 0), self.expire_at])


# KEYS: the budgets' usage hashes, then the tokens-per-minute windows. ARGV: how many of KEYS are the budgets', the
# tokens and micro-dollars really used, the budgets' reservation id and when their hashes expire, the same of the
# windows. The usage is added before the reservation goes, so that a reservation made in between can only find too
# little left, never too much. Returns, for each budget, the tokens and micro-dollars it has used since (for
# budget_alerts), as budgets' own settling does.
_SETTLE_BOTH_SCRIPT = """
local budgets, tokens, micros = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if not (budgets and tokens and micros) then error('settle: not a number') end
local used = {}
for i, key in ipairs(KEYS) do
  if i <= budgets then
    used[2 * i - 1], used[2 * i] = 0, 0
    if tokens > 0 then used[2 * i - 1] = redis.call('HINCRBY', key, 'used', tokens) end
    if micros > 0 then used[2 * i] = redis.call('HINCRBY', key, 'used_micros', micros) end
    redis.call('HDEL', key, 'r:' .. ARGV[4])
    if tokens > 0 or micros > 0 then redis.call('EXPIREAT', key, ARGV[5]) end
  else
    if tokens > 0 then redis.call('HINCRBY', key, 'used', tokens) end
    redis.call('HDEL', key, 'r:' .. ARGV[6])
    redis.call('EXPIREAT', key, ARGV[7])
  end
end
return used
"""


def limits_settle_into(
    pipe: Pipeline, budgets: Reservation, rates: RateReservation, tokens: int, micros: int = 0
) -> RepliesHandler | None:
    """Queues the settling of both reservations, one script, on a pipeline that also writes the turn's end; returns
    what reports the budgets' new use (their gauge and alerts) from its reply, so that those cost no round trip."""
    usage_keys = [] if budgets.settled else budgets.usage_keys
    windows = [] if rates.settled else rates.windows
    budgets.settled = rates.settled = True
    if not usage_keys and not windows:
        return None
    at = len(pipe)
    tokens, micros = max(tokens, 0), max(micros, 0)
    args = [len(usage_keys), tokens, micros, budgets.id, budgets.expire_at, rates.id, rates.expire_at]
    # EVAL, not EVALSHA: a script the server does not know yet could not be loaded and run again within the pipeline.
    # As a raw command: a Redis Cluster pipeline has no eval(), but routes an EVAL by its keys.
    pipe.execute_command("EVAL", _SETTLE_BOTH_SCRIPT, len(usage_keys) + len(windows), *usage_keys, *windows, *args)
    if not usage_keys:
        return None
    return lambda replies: budgets.settled_to(tokens, micros, replies[at])


def limits_reserve(
    owners: tuple[BudgetOwner, ...],
    rates: tuple[Rate, ...],
    tokens: int,
    *,
    micros: int | None = 0,
    hold_seconds: float,
) -> tuple[Reservation, RateReservation]:
    """Reserves `tokens` and `micros` (budgets.budget_reserve) against every budget of `owners` and `tokens` against
    every per-minute limit of `rates` (rate_reserve) in one round trip, or raises BudgetExceeded, ModelUnpriced or
    RateLimited, with nothing held."""
    rates = _applying(rates)
    if not owners or not rates:
        return budget_reserve(owners, tokens, micros=micros, hold_seconds=hold_seconds), rate_reserve(
            rates, tokens, hold_seconds=hold_seconds
        )
    # One clock and one id for both: the budgets' and the windows' fields are in different hashes.
    clock, reservation_id = time.time(), secrets.token_hex(8)
    budget_call, budget_outcome = budget_reserve_call(
        owners, tokens, micros=micros, hold_seconds=hold_seconds, clock=clock, reservation_id=reservation_id
    )
    rate_call, rate_outcome = _rate_reserve_call(
        rates, tokens, hold_seconds=hold_seconds, clock=clock, reservation_id=reservation_id
    )
    script = redis_script(_both(budget_call.script.script, rate_call.script.script))
    budget_result, *rate_result = script(
        keys=[*budget_call.keys, *rate_call.keys],
        args=[len(budget_call.keys), len(budget_call.args), *budget_call.args, *rate_call.args],
    )
    reservation = budget_outcome(budget_result)  # raises BudgetExceeded or ModelUnpriced: the rates were not asked
    return reservation, rate_outcome(rate_result[0])  # raises RateLimited: the script gave the budgets back


@cache
def _both(budget_lua: str, rate_lua: str) -> str:
    """One script that reserves against the budgets (budget_lua) and then, if they let the request through, the
    per-minute limits (rate_lua), giving the budgets back when those refuse: one call where two scripts on a
    pipeline cost the client about twice the work. KEYS: the budgets' then the rates'. ARGV: how many of KEYS
    and of ARGV are the budgets', the budgets' ARGV, the rates'. Returns {the budgets' result, the rates'}, or
    {the budgets' refusal}."""
    return f"""
local function budget_reserve(KEYS, ARGV)
{budget_lua}
end
local function rate_reserve(KEYS, ARGV)
{rate_lua}
end
local budget_keys, budget_args = tonumber(ARGV[1]), tonumber(ARGV[2])
local bk, ba, rk, ra = {{}}, {{}}, {{}}, {{}}
for i, key in ipairs(KEYS) do
  if i <= budget_keys then bk[#bk + 1] = key else rk[#rk + 1] = key end
end
for i = 3, #ARGV do
  if i - 2 <= budget_args then ba[#ba + 1] = ARGV[i] else ra[#ra + 1] = ARGV[i] end
end
local budget = budget_reserve(bk, ba)
if budget[1] ~= 'ok' then return {{budget}} end
local rate = rate_reserve(rk, ra)
if rate[1] ~= 'ok' then
  for i = 2, #budget, 3 do redis.call('HDEL', budget[i], 'r:' .. ba[2]) end
end
return {{budget, rate}}
"""


def _applying(rates: tuple[Rate, ...]) -> tuple[Rate, ...]:
    return tuple(rate for rate in rates if rate.requests_per_minute or rate.tokens_per_minute)


def rate_reserve(rates: tuple[Rate, ...], tokens: int, *, hold_seconds: float) -> RateReservation:
    """Counts the request against every requests-per-minute limit of `rates` and reserves `tokens` against every
    tokens-per-minute one, at once, or raises RateLimited (nothing counted). A reservation neither settled nor
    renewed within `hold_seconds` stops counting."""
    rates = _applying(rates)
    if not rates:
        return RateReservation()
    call, outcome_of = _rate_reserve_call(rates, tokens, hold_seconds=hold_seconds)
    return outcome_of(call.script(keys=call.keys, args=call.args))


def _rate_reserve_call(
    rates: tuple[Rate, ...],
    tokens: int,
    *,
    hold_seconds: float,
    clock: float | None = None,
    reservation_id: str | None = None,
) -> tuple[ScriptCall, Callable[[Any], RateReservation]]:
    if clock is None:
        clock = time.time()
    if reservation_id is None:
        reservation_id = secrets.token_hex(8)
    minute = int(clock // 60)
    reset = (minute + 1) * 60 - clock
    keys = [_window_key(rate.owner, minute) for rate in rates]
    limits = [value for rate in rates for value in (rate.requests_per_minute, rate.tokens_per_minute)]
    # A window outlives its minute by the longest a reservation made in it may take to settle.
    expire_at = (minute + 1) * 60 + int(hold_seconds) + 60
    call = ScriptCall(
        redis_script(_RESERVE_SCRIPT),
        keys,
        [clock_text(clock), reservation_id, tokens, clock_text(clock + hold_seconds), expire_at, *limits],
    )
    return call, partial(_reserved, rates, keys, tokens, reservation_id, hold_seconds, expire_at, reset)


def _reserved(
    rates: tuple[Rate, ...],
    keys: list[str],
    tokens: int,
    reservation_id: str,
    hold_seconds: float,
    expire_at: int,
    reset: float,
    result: Any,
) -> RateReservation:
    outcome, *found = result
    if outcome == b"ok":
        counts = [int(value) for value in found]
        reservation = RateReservation(reservation_id, [], hold_seconds, expire_at)
        for i, rate in enumerate(rates):
            requests, used = counts[2 * i], counts[2 * i + 1]
            if rate.requests_per_minute:
                limit = rate.requests_per_minute
                reservation.requests.append(RateStatus(limit, max(limit - requests, 0), reset))
            if rate.tokens_per_minute:
                reservation.windows.append(keys[i])
                limit = rate.tokens_per_minute
                reservation.tokens.append(RateStatus(limit, max(limit - used, 0), reset))
        return reservation
    rate = rates[int(found[0]) - 1]
    whose = "this API key" if rate.owner.kind == "key" else "this admin"
    if outcome == b"requests":
        raise RateLimited(f"Over the {rate.requests_per_minute} requests per minute of {whose}.", retry_after=reset)
    if outcome == b"tokens":
        left = int(found[1])
        raise RateLimited(
            f"This request could use up to {tokens} tokens (its prompt and max_tokens), more than the {left} left "
            f"of the {rate.tokens_per_minute} tokens per minute of {whose}: a smaller max_tokens may fit.",
            retry_after=reset,
        )
    raise RateLimited(
        f"The tokens per minute of {whose} are held by requests in flight; retry shortly.",
        retry_after=min(RESERVED_RETRY_SECONDS, reset),
    )
