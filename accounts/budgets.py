"""Budgets per period (a UTC day or month), in tokens, in US dollars or both, for an admin and for an API key,
which hold under concurrency.

Before a call, a turn reserves its worst case (the prompt's estimate plus `max_tokens`, and what they cost at the
dearest price of the models the call may go to) against every budget that applies to it, atomically in Redis, so
that concurrent calls, on any instance, can never together spend more than a budget; after the call it settles to
the real usage. An admin's budget counts the requests of its keys too.

Its keys, `A:budget:<owner>` and `A:budget-usage:<owner>:<period>` for an owner `admin:<id>` or `key:<id>`, are in
the Redis key map (docs/architecture.md); all are in the Redis Cluster slot of the admin (the key's admin), so that
one script reserves against an admin's budget and its key's at once, and a reservation of a process that died
expires. The admin's record and its logins, or the key's record, carry `budget: "1"` while a budget applies: those are
read by every request anyway, so a chat without a budget makes no round trip for one. Dollars are kept as whole
micro-dollars (`usd_micros`, `used_micros`), never as floats.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache, partial
from typing import Any, Literal, NamedTuple

from accounts.api_keys import api_key_admin_id, api_key_record_key
from accounts.budget_alerts import Amount, BudgetUse, budget_alerts_on, budget_use_settled
from accounts.login_sessions import admin_flag_set
from core.exceptions import NotFound, ServiceError
from core.leases import Lease
from core.metrics import budget_use_recorded
from core.redis_store import (
    ScriptCall,
    decoded,
    redis_admin_key,
    redis_client,
    redis_script,
)
from core.timestamps import iso_at
from llm_provider.pricing import MICROS_PER_USD, micros_of, usd

Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")
# How long a refusal caused only by other requests' reservations asks a client to wait: they settle within a call.
RESERVED_RETRY_SECONDS = 2.0


class BudgetExceeded(ServiceError):
    status_code = 429
    code = "budget_exceeded"


class ModelUnpriced(ServiceError):
    status_code = 400
    code = "model_unpriced"


# The most tokens a budget may count per period: well inside the integers Redis's Lua adds up exactly (2**53).
MAX_BUDGET_TOKENS = 10**15


@dataclass(frozen=True)
class Budget:
    """At least one of `tokens` and `usd` (dollars, at most six decimals)."""

    tokens: int | None
    period: Period
    usd: Decimal | None = None


@dataclass(frozen=True)
class BudgetOwner:
    kind: Literal["admin", "key"]
    id: str
    admin_id: str = ""  # a key's admin, when known (else read from the key's record)

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.id}"


@lru_cache(maxsize=1024)
def budget_owner(kind: Literal["admin", "key"], owner_id: str, admin_id: str = "") -> BudgetOwner:
    """The owner, immutable and shared: made once, not on every chat (a frozen dataclass is slow to make)."""
    return BudgetOwner(kind, owner_id, admin_id)


class BudgetOwners(tuple[BudgetOwner, ...]):
    """The budgets a chat counts against, and the API key it was made with ('' for none), which its usage is
    recorded under (conversations/usage_history.py) whether or not the key has a budget."""

    key_id: str

    def __new__(cls, owners: tuple[BudgetOwner, ...] | list[BudgetOwner] = (), key_id: str = "") -> BudgetOwners:
        made = super().__new__(cls, owners)
        made.key_id = key_id
        return made


def owners_key_id(owners: tuple[BudgetOwner, ...]) -> str:
    return getattr(owners, "key_id", "")


def _slot_admin(owner: BudgetOwner) -> str:
    """The admin in whose slot the owner's budget is kept: the admin itself, or the key's admin."""
    if owner.kind == "admin":
        return owner.id
    return owner.admin_id or api_key_admin_id(owner.id) or "-"


def _config_key(owner: BudgetOwner) -> str:
    return redis_admin_key(_slot_admin(owner), "budget", owner.name)


def _usage_key(owner: BudgetOwner, period: Period, now: datetime) -> str:
    return redis_admin_key(_slot_admin(owner), "budget-usage", owner.name, period_id(period, now))


def period_id(period: Period, now: datetime) -> str:
    """`2026-12-04` or `2026-12` (as strftime would write them, at a fraction of its cost on every chat)."""
    month = f"{now.year:04d}-{now.month:02d}"
    return f"{month}-{now.day:02d}" if period == "day" else month


def period_end(period: Period, now: datetime) -> datetime:
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return start + timedelta(days=1)
    return (start.replace(day=1) + timedelta(days=32)).replace(day=1)


class NoSuchOwner(NotFound):
    pass


def budget_set(owner: BudgetOwner, budget: Budget | None) -> None:
    """Sets (or, with None, removes) the owner's budget; what it used this period still counts. The budget is
    kept apart; a flag on the records each request reads anyway (the admin's and its logins', or the key's) says
    that one applies, so that chats without a budget pay no round trip for it."""
    client = redis_client()
    if budget is not None:
        amounts = {"tokens": budget.tokens, "usd_micros": micros_of(budget.usd) if budget.usd is not None else None}
        client.hset(
            _config_key(owner),
            mapping={"period": budget.period, **{name: value for name, value in amounts.items() if value is not None}},
        )
        absent = [name for name, value in amounts.items() if value is None]
        if absent:
            client.hdel(_config_key(owner), *absent)
    flagged = _flag(owner, "1" if budget is not None else "")
    if budget is None or not flagged:
        client.delete(_config_key(owner))
    if not flagged:
        raise NoSuchOwner(f"No such {'admin' if owner.kind == 'admin' else 'API key'}.")


def _flag(owner: BudgetOwner, value: str) -> bool:
    if owner.kind == "admin":
        return admin_flag_set(owner.id, "budget", value)
    record = api_key_record_key(owner.id)
    if record is None:
        return False
    return bool(redis_script(_FLAG_KEY_SCRIPT)(keys=[record], args=[value]))


# KEYS: an API key's record. ARGV: "1", or "" to remove the flag. Never recreates a revoked key's record.
_FLAG_KEY_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '' then redis.call('HDEL', KEYS[1], 'budget') else redis.call('HSET', KEYS[1], 'budget', ARGV[1]) end
return 1
"""


def budget_get(owner: BudgetOwner) -> Budget | None:
    record = decoded(redis_client().hgetall(_config_key(owner)))
    if not record:
        return None
    tokens = int(record["tokens"]) if "tokens" in record else None
    dollars = Decimal(int(record["usd_micros"])) / 1_000_000 if "usd_micros" in record else None
    return Budget(tokens, "month" if record.get("period") == "month" else "day", dollars)


def budget_status(owner: BudgetOwner) -> dict[str, Any] | None:
    """`{tokens, usd, period, used, used_usd, resets_at}` for this period (`tokens`, `usd` and `used_usd` null
    where the budget has no such limit), or None without a budget."""
    budget = budget_get(owner)
    if budget is None:
        return None
    now = datetime.now(UTC)
    used, used_micros = redis_client().hmget(_usage_key(owner, budget.period, now), "used", "used_micros")
    in_dollars = budget.usd is not None
    return {
        "tokens": budget.tokens,
        "usd": usd(micros_of(budget.usd)) if budget.usd is not None else None,
        "period": budget.period,
        "used": int(used or 0),
        "used_usd": usd(int(used_micros or 0)) if in_dollars else None,
        "resets_at": iso_at(period_end(budget.period, now)),
    }


# KEYS: for each owner its budget, its usage this day and this month. ARGV: now, the reservation's id, tokens,
# micro-dollars (-1: unknown, the model has no price) and expiry, and when a usage hash expires (Unix time). A
# reservation is the usage hash's field `r:<id>` = "<tokens>:<micro-dollars>:<expires at>". Returns {'ok', for each
# usage key reserved on: the key, its token limit and its micro-dollar limit (-1 where it has none)...}; else, for
# the first budget that refuses, {'unpriced', period} (a dollar budget and a cost unknown), {'exceeded', period,
# left, unit} (over what is left) or {'reserved', period, unit} (over what other reservations leave), where unit is
# 'tokens' or 'usd' and left is in tokens or micro-dollars.
_RESERVE_SCRIPT = """
local now, id, tokens, micros, expires, expire_at = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]),
  tonumber(ARGV[4]), ARGV[5], ARGV[6]
local chosen = {}
for i = 1, #KEYS, 3 do
  local config = redis.call('HMGET', KEYS[i], 'tokens', 'period', 'usd_micros')
  if config[1] or config[3] then
    local usage = config[2] == 'month' and KEYS[i + 2] or KEYS[i + 1]
    local used = {tokens = 0, usd = 0}
    local reserved = {tokens = 0, usd = 0}
    local fields = redis.call('HGETALL', usage)
    for j = 1, #fields, 2 do
      if fields[j] == 'used' then
        used.tokens = tonumber(fields[j + 1])
      elseif fields[j] == 'used_micros' then
        used.usd = tonumber(fields[j + 1])
      else
        local held_tokens, held_micros, expiry = string.match(fields[j + 1], '^(%d+):(%d+):(.+)$')
        if not held_tokens then
          held_micros = '0'
          held_tokens, expiry = string.match(fields[j + 1], '^(%d+):(.+)$')
        end
        if tonumber(expiry) < now then
          redis.call('HDEL', usage, fields[j])
        else
          reserved.tokens = reserved.tokens + tonumber(held_tokens)
          reserved.usd = reserved.usd + tonumber(held_micros)
        end
      end
    end
    local wanted = {tokens = tokens, usd = micros}
    if config[3] and micros < 0 then return {'unpriced', config[2]} end
    local limits = {tokens = config[1], usd = config[3]}
    for _, unit in ipairs({'tokens', 'usd'}) do
      local limit = tonumber(limits[unit])
      if limit and wanted[unit] > limit - used[unit] then
        return {'exceeded', config[2], math.max(limit - used[unit], 0), unit}
      end
      if limit and wanted[unit] > limit - used[unit] - reserved[unit] then return {'reserved', config[2], unit} end
    end
    chosen[#chosen + 1] = usage
    chosen[#chosen + 1] = tonumber(config[1]) or -1
    chosen[#chosen + 1] = tonumber(config[3]) or -1
  end
end
for i = 1, #chosen, 3 do
  redis.call('HSET', chosen[i], 'r:' .. id, tokens .. ':' .. math.max(micros, 0) .. ':' .. expires)
  redis.call('EXPIREAT', chosen[i], expire_at)
end
return {'ok', unpack(chosen)}
"""

# KEYS: the usage hashes reserved on. ARGV: the reservation's id, the tokens and micro-dollars really used, when the
# hashes expire (Unix time). Deleting the reservation's field deletes a hash it was the last field of, and the
# increment makes it anew: its expiry is set again with it. Returns, for each hash, the tokens and micro-dollars it
# has used since (for budget_alerts).
_SETTLE_SCRIPT = """
local tokens, micros, expire_at = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if not (tokens and micros and expire_at) then error('settle: the tokens, cost or expiry is not a number') end
local used = {}
for i, usage in ipairs(KEYS) do
  redis.call('HDEL', usage, 'r:' .. ARGV[1])
  used[2 * i - 1], used[2 * i] = 0, 0
  if tokens > 0 or micros > 0 then
    if tokens > 0 then used[2 * i - 1] = redis.call('HINCRBY', usage, 'used', tokens) end
    if micros > 0 then used[2 * i] = redis.call('HINCRBY', usage, 'used_micros', micros) end
    redis.call('EXPIREAT', usage, expire_at)
  end
end
return used
"""


class HeldBudget(NamedTuple):
    """A budget a reservation is held against: whose, which period, and its limits then (None: no such limit).
    Immutable as a tuple, which is quicker to make than a frozen dataclass: one or two on every chat."""

    owner: BudgetOwner
    period: Period
    tokens: int | None
    micros: int | None
    now: datetime  # when it was reserved: the period's day or month


@dataclass
class Reservation:
    """Tokens and micro-dollars held against budgets until `settle`; settling twice does nothing."""

    id: str
    usage_keys: list[str]
    hold_seconds: float = 0.0  # how long it counts unless settled or renewed
    expire_at: int = 0  # when the usage hashes expire (Unix time)
    settled: bool = False
    held: list[HeldBudget] = field(default_factory=list)  # one per usage key

    def leases(self) -> list[Lease]:
        """The reservation, for its request to keep while it runs (one lease per budget it is held against)."""
        if self.settled:
            return []
        field = f"r:{self.id}"
        return [
            Lease("expiring-field", key, field, self.hold_seconds, "its budget reservation") for key in self.usage_keys
        ]

    def settle(self, tokens: int, micros: int = 0) -> None:
        """Counts what the call really used: `tokens`, and `micros`, its cost in micro-dollars (0 when unknown)."""
        if self.settled:
            return
        self.settled = True
        if self.usage_keys:
            args = [self.id, max(tokens, 0), max(micros, 0), self.expire_at]
            self.settled_to(tokens, micros, redis_script(_SETTLE_SCRIPT)(keys=self.usage_keys, args=args))

    def settled_to(self, tokens: int, micros: int, used: list[Any]) -> None:
        """Reports what each budget has used since a settling of `tokens` and `micros` made here or elsewhere
        (rate_limits settles it with the per-minute limits in the turn's finish): `used` holds, per budget, its
        tokens and micro-dollars used since. Feeds the gauge and the alerts (budget_alerts)."""
        alerts = budget_alerts_on()
        for budget, now_tokens, now_micros in zip(self.held, used[::2], used[1::2], strict=True):
            now_tokens, now_micros = int(now_tokens), int(now_micros)
            if tokens > 0 and budget.tokens is not None:
                if alerts:
                    budget_use_settled(_use(budget, now_tokens, budget.tokens), before=now_tokens - tokens)
                else:
                    _gauge(budget, "tokens", now_tokens, budget.tokens)
            if micros > 0 and budget.micros is not None:
                if alerts:
                    dollars = _dollars(now_micros), _dollars(budget.micros)
                    budget_use_settled(_use(budget, *dollars, unit="usd"), before=_dollars(now_micros - micros))
                else:
                    _gauge(budget, "usd", now_micros, budget.micros)


def _gauge(budget: HeldBudget, unit: str, used: int, limit: int) -> None:
    """Without alerts, a settlement only sets the gauge of the budget's use, a ratio: micro-dollars give it as well
    as dollars, without the BudgetUse an alert needs (its period's id and end, dollars) made on every chat."""
    budget_use_recorded(budget.owner.kind, budget.owner.id, budget.period, unit, used=used, limit=limit)


def _dollars(micros: int) -> Decimal:
    return Decimal(micros) / MICROS_PER_USD


def _use(budget: HeldBudget, used: Amount, limit: Amount, *, unit: str = "tokens") -> BudgetUse:
    owner, period = budget.owner, budget.period
    resets_at = iso_at(period_end(period, budget.now))
    return BudgetUse(owner.kind, owner.id, period, period_id(period, budget.now), used, limit, resets_at, unit)


def _limit(found: Any) -> int | None:
    return None if int(found) < 0 else int(found)


def budget_reserve(
    owners: tuple[BudgetOwner, ...], tokens: int, *, micros: int | None = 0, hold_seconds: float
) -> Reservation:
    """Reserves `tokens` and `micros` (micro-dollars; None: unknown, the model has no price) against every budget
    of `owners` at once, or raises BudgetExceeded, or ModelUnpriced for a dollar budget and an unknown cost
    (nothing reserved). A reservation neither settled nor renewed (Reservation.leases) within `hold_seconds` (its
    process died) stops counting."""
    if not owners:
        return Reservation("", [])
    call, outcome_of = budget_reserve_call(owners, tokens, micros=micros, hold_seconds=hold_seconds)
    return outcome_of(call.script(keys=call.keys, args=call.args))


def budget_reserve_call(
    owners: tuple[BudgetOwner, ...],
    tokens: int,
    *,
    micros: int | None = 0,
    hold_seconds: float,
    clock: float | None = None,
    reservation_id: str | None = None,
) -> tuple[ScriptCall, Callable[[Any], Reservation]]:
    """budget_reserve as a script call, to fold into one script with others (rate_limits), and what makes its result the
    Reservation (or raises BudgetExceeded or ModelUnpriced). `clock` and `reservation_id`, when given, are shared
    with the calls it is folded with (each float argument costs the client its text, each id its randomness)."""
    if clock is None:
        clock = time.time()
    if reservation_id is None:
        reservation_id = secrets.token_hex(8)
    now = datetime.fromtimestamp(clock, UTC)
    period_ids = _period_ids(now.year, now.month, now.day)
    keys: list[str] = []
    usage_of: dict[str, tuple[BudgetOwner, Period]] = {}
    for owner in owners:
        config, *usages = _owner_keys(_slot_admin(owner), owner.name, period_ids)
        keys.append(config)
        keys.extend(usages)
        for usage, period in zip(usages, PERIODS, strict=True):
            usage_of[usage] = (owner, period)
    # A usage hash outlives its period by a day, so the period's figure can still be read just after it ends.
    expire_at = _usage_expire_at(now.year, now.month)
    cost = -1 if micros is None else micros
    args = [clock_text(clock), reservation_id, tokens, cost, clock_text(clock + hold_seconds), expire_at]
    call = ScriptCall(redis_script(_RESERVE_SCRIPT), keys, args)
    return call, partial(_reserved, tokens, cost, now, usage_of, reservation_id, hold_seconds, expire_at)


@lru_cache(maxsize=8)
def clock_text(clock: float) -> str:
    """A Unix time as a script's argument: the text the client would make of the float (its repr), made once for
    the calls folded into one script that share the clock."""
    return repr(clock)


@lru_cache(maxsize=1024)
def _owner_keys(slot: str, name: str, period_ids: tuple[str, ...]) -> tuple[str, ...]:
    """An owner's budget key and its usage keys for these periods (named once a day, not on every chat)."""
    usages = (redis_admin_key(slot, "budget-usage", name, this_period) for this_period in period_ids)
    return (redis_admin_key(slot, "budget", name), *usages)


@lru_cache(maxsize=4)
def _period_ids(year: int, month: int, day: int) -> tuple[str, ...]:
    """The ids of a day's PERIODS (named once a day, not on every chat)."""
    return tuple(period_id(period, datetime(year, month, day, tzinfo=UTC)) for period in PERIODS)


@lru_cache(maxsize=4)
def _usage_expire_at(year: int, month: int) -> int:
    """When the usage hashes of a reservation made in that month expire (Unix time): a day after the month ends."""
    return int(period_end("month", datetime(year, month, 1, tzinfo=UTC)).timestamp()) + 86_400


def _reserved(
    tokens: int,
    cost: int,
    now: datetime,
    usage_of: dict[str, tuple[BudgetOwner, Period]],
    reservation_id: str,
    hold_seconds: float,
    expire_at: int,
    result: Any,
) -> Reservation:
    outcome, *found = result
    if outcome == b"ok":
        usage_keys = [key.decode() for key in found[::3]]
        held = [
            HeldBudget(*usage_of[key], _limit(token_limit), _limit(micro_limit), now)
            for key, token_limit, micro_limit in zip(usage_keys, found[1::3], found[2::3], strict=True)
        ]
        return Reservation(reservation_id, usage_keys, hold_seconds, expire_at, held=held)
    period: Period = "month" if found and found[0] == b"month" else "day"
    if outcome == b"unpriced":
        raise ModelUnpriced(
            "A dollar budget applies to this request, but a model it may use has no price (MODEL_PRICES_FILE), so "
            "its cost is unknown: ask for a model with a price."
        )
    in_dollars = found[-1] == b"usd"
    what = "dollar budget" if in_dollars else "token budget"
    if outcome == b"exceeded":
        resets = period_end(period, now)
        left = int(found[1]) if len(found) > 1 else 0
        if left > 0 and in_dollars:
            why = (
                f"This request could cost up to ${usd(cost)} (its prompt and max_tokens at its model's price), more "
                f"than the ${usd(left)} left of the dollar budget this {period}: a smaller max_tokens may fit. The "
                "budget resets at "
            )
        elif left > 0:
            why = (
                f"This request could use up to {tokens} tokens (its prompt and max_tokens), more than the {left} "
                f"left of the token budget this {period}: a smaller max_tokens may fit. The budget resets at "
            )
        else:
            why = f"The {what} this {period} is spent; it resets at "
        raise BudgetExceeded(why + f"{iso_at(resets)}.", retry_after=(resets - now).total_seconds())
    raise BudgetExceeded(
        f"The {what} this {period} is held by requests in flight; retry shortly.",
        retry_after=RESERVED_RETRY_SECONDS,
    )
