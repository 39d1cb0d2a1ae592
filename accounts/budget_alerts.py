"""Budget alerts: when an owner's use of a budget crosses one of BUDGET_ALERT_THRESHOLDS (percent) in a period, one
signed POST to BUDGET_ALERT_WEBHOOK_URL, delivered at least once.

Whatever the budget counts (tokens, or dollars), its settlement hands `budget_use_settled` what the owner used
before and after it; a crossing is found from those two numbers alone, so a settlement that crosses nothing makes no
Redis round trip here. A crossing is queued in Redis by one script that first sets a marker per owner, period and
threshold (SET NX), so that it is queued once however many requests and instances settle across it at once, and a
restart loses none. Every process delivers from a background thread (a greenlet under gevent), never in a request:
it claims the alerts that are due for a while (another process takes over one whose deliverer died), POSTs each, and
on a failure puts it back with a doubled delay, up to MAX_ATTEMPTS. Its keys (`P:{budget-alerts}:...`, one Redis
Cluster slot) are in the Redis key map (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import httpx
import redis
from django.conf import settings
from django.core.signals import request_started

from core.cached import until_settings_change
from core.metrics import budget_use_recorded
from core.redis_store import decoded, redis_client, redis_script, redis_tagged_key

logger = logging.getLogger(__name__)

EVENT = "budget.threshold_crossed"
SIGNATURE_HEADER = "X-Chatbot-Signature"
POLL_SECONDS = 1.0
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 3600.0
# With the delays doubling from 1 s to an hour: about 14 hours of retries.
MAX_ATTEMPTS = 25
_TAG = "budget-alerts"

Amount = int | Decimal


@dataclass(frozen=True)
class BudgetUse:
    """An owner's use of one budget in one period, just settled: what any kind of budget reports."""

    owner_kind: str  # "admin" or "key"
    owner_id: str
    period: str  # "day" or "month"
    period_id: str  # "2026-12-04" or "2026-12": which day or month
    used: Amount
    limit: Amount
    resets_at: str  # ISO 8601
    unit: str = "tokens"


@until_settings_change
def thresholds() -> tuple[int, ...]:
    return tuple(sorted({int(value) for value in settings.BUDGET_ALERT_THRESHOLDS}))


def thresholds_crossed(before: Amount, after: Amount, limit: Amount) -> list[int]:
    """The thresholds (percent of `limit`) that use going from `before` to `after` reached or passed."""
    if limit <= 0:
        return []
    return [threshold for threshold in thresholds() if before * 100 < threshold * limit <= after * 100]


def _alert_id(use: BudgetUse, threshold: int) -> str:
    return f"{use.owner_kind}:{use.owner_id}:{use.unit}:{use.period_id}:{threshold}"


def _due_key() -> str:
    return redis_tagged_key(_TAG, "due")


def _alert_key(alert_id: str) -> str:
    return redis_tagged_key(_TAG, "alert", alert_id)


def _sent_key(alert_id: str) -> str:
    return redis_tagged_key(_TAG, "sent", alert_id)


def _number(amount: Amount) -> int | str:
    return str(amount) if isinstance(amount, Decimal) else amount


# KEYS: the marker of this owner, period and threshold; the due alerts; the alert. ARGV: when the marker and the
# alert expire (Unix time), now, the alert's id, its body. Queues the alert only when it was not queued before.
_ENQUEUE_SCRIPT = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EXAT', ARGV[1]) then return 0 end
redis.call('HSET', KEYS[3], 'body', ARGV[4], 'attempts', 0)
redis.call('EXPIREAT', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

# KEYS: the due alerts. ARGV: now, how long a claim lasts, how many to claim. Claims the alerts due now: each is due
# again when the claim ends, unless its delivery settles it first.
_CLAIM_SCRIPT = """
local now = tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id) end
return ids
"""


def budget_alerts_on() -> bool:
    """Alerts are sent (BUDGET_ALERT_WEBHOOK_URL); without them a settlement only sets the gauge."""
    return bool(settings.BUDGET_ALERT_WEBHOOK_URL)


def budget_use_settled(use: BudgetUse, *, before: Amount) -> None:
    """After a settlement took `use.used` from `before`: the gauge, and an alert per threshold crossed."""
    budget_use_recorded(use.owner_kind, use.owner_id, use.period, use.unit, used=use.used, limit=use.limit)
    if not budget_alerts_on():
        return
    delivery.ensure_running()
    for threshold in thresholds_crossed(before, use.used, use.limit):
        _enqueue(use, threshold)


def _enqueue(use: BudgetUse, threshold: int) -> None:
    alert_id = _alert_id(use, threshold)
    body = {
        "id": alert_id,
        "event": EVENT,
        "owner": {"kind": use.owner_kind, "id": use.owner_id},
        "period": use.period,
        "threshold": threshold,
        "used": _number(use.used),
        "limit": _number(use.limit),
        "unit": use.unit,
        "resets_at": use.resets_at,
    }
    # The marker outlives the period by a day: the period's alerts are not sent twice while it can still be read.
    expires_at = int(datetime.fromisoformat(use.resets_at).timestamp()) + 86_400
    queued = redis_script(_ENQUEUE_SCRIPT)(
        keys=[_sent_key(alert_id), _due_key(), _alert_key(alert_id)],
        args=[expires_at, time.time(), alert_id, json.dumps(body, separators=(",", ":"))],
    )
    if queued:
        logger.info("budget alert queued: %s", alert_id)
        delivery.wake()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 of `<timestamp>.<body>` with the secret, in hex (docs/operations.md has the receiver's check)."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _post(body: bytes) -> None:
    """One delivery; raises on anything but a 2xx."""
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: f"t={timestamp},v1={signature(settings.BUDGET_ALERT_SECRET, timestamp, body)}",
    }
    response = httpx.post(
        settings.BUDGET_ALERT_WEBHOOK_URL, content=body, headers=headers, timeout=settings.BUDGET_ALERT_TIMEOUT_SECONDS
    )
    response.raise_for_status()


def retry_delay(attempts: int) -> float:
    return min(FIRST_RETRY_SECONDS * 2 ** (attempts - 1), MAX_RETRY_SECONDS)


def deliver_due(*, batch: int = 10) -> int:
    """Claims the alerts due now and delivers each; returns how many were claimed (none without a webhook)."""
    if not settings.BUDGET_ALERT_WEBHOOK_URL:
        return 0
    client = redis_client()
    # Claimed for as long as delivering them all may take, and a margin: then another process may claim them.
    claim_seconds = batch * settings.BUDGET_ALERT_TIMEOUT_SECONDS + 30
    claimed = redis_script(_CLAIM_SCRIPT)(keys=[_due_key()], args=[time.time(), claim_seconds, batch])
    ids = [raw.decode() for raw in claimed]
    for alert_id in ids:
        record = decoded(client.hgetall(_alert_key(alert_id)))
        if "body" not in record:  # expired with its period
            client.zrem(_due_key(), alert_id)
            continue
        try:
            _post(record["body"].encode())
        except httpx.HTTPError as exc:
            attempts = client.hincrby(_alert_key(alert_id), "attempts", 1)
            if attempts >= MAX_ATTEMPTS:
                logger.error("budget alert %s dropped after %s failed deliveries: %s", alert_id, attempts, exc)
                _forget(client, alert_id)
            else:
                logger.warning("budget alert %s not delivered (attempt %s): %s", alert_id, attempts, exc)
                client.zadd(_due_key(), {alert_id: time.time() + retry_delay(attempts)})
            continue
        _forget(client, alert_id)
        logger.info("budget alert delivered: %s", alert_id)
    return len(ids)


def _forget(client: redis.Redis, alert_id: str) -> None:
    client.zrem(_due_key(), alert_id)
    client.delete(_alert_key(alert_id))


class _Delivery:
    """The process's deliverer, started on its first use in each process (a forked worker starts its own)."""

    def __init__(self) -> None:
        self.pid = 0
        self.lock = threading.Lock()
        self.event = threading.Event()

    def ensure_running(self) -> None:
        if self.pid == os.getpid():
            return
        with self.lock:
            if self.pid == os.getpid():
                return
            self.pid = os.getpid()
            self.event = threading.Event()
            threading.Thread(target=self._run, name="budget-alerts", daemon=True).start()

    def wake(self) -> None:
        self.event.set()

    def _run(self) -> None:
        while True:
            self.event.clear()
            try:
                claimed = deliver_due()
            except redis.RedisError as exc:
                logger.warning("budget alerts: Redis failed (%s); retrying", exc)
                claimed = 0
            if not claimed:
                self.event.wait(POLL_SECONDS)


delivery = _Delivery()


def _on_request(**kwargs: object) -> None:
    if settings.BUDGET_ALERT_WEBHOOK_URL:
        delivery.ensure_running()


def delivery_on_requests() -> None:
    """Starts each serving process's deliverer with its first request (a health probe will do), so that what an
    earlier process queued is delivered after a restart; `manage.py` commands, which serve none, deliver nothing."""
    request_started.connect(_on_request, dispatch_uid="budget-alerts")
