"""Budget alerts (accounts/budget_alerts.py), against the real Redis and a real HTTP receiver on 127.0.0.1 that checks
each alert's signature: one signed POST per threshold, owner and period, retried after the receiver fails, kept in
Redis across a restart, and never in a chat's way."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from rest_framework.test import APIClient

from accounts.budget_alerts import BudgetUse, budget_use_settled, thresholds_crossed
from accounts.budgets import Budget, BudgetOwner, budget_reserve, budget_set, budget_status, period_end
from accounts.key_rules import KeyRules
from accounts.services import api_key_create
from core.redis_store import redis_client, redis_tagged_key
from core.timestamps import iso_at
from tests.server import running_server, running_servers
from tests.support import (
    ALICE_PASSWORD,
    MODEL,
    ask,
    free_port,
    login_headers,
    manage_check,
    scrape,
    value,
    wait_for,
    worst_case,
)

SECRET = "a-webhook-secret-for-the-tests"


@dataclass
class Receiver:
    """A webhook receiver: keeps each alert whose signature is right, answers 500 to the first `failures` ones
    (and to any with a wrong signature), and may take `delay` seconds to answer."""

    url: str = ""
    alerts: list[dict] = field(default_factory=list)
    attempts: int = 0
    bad_signatures: int = 0
    failures: int = 0
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, body: bytes, header: str) -> int:
        parts = dict(part.split("=", 1) for part in header.split(","))
        expected = hmac.new(SECRET.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
        time.sleep(self.delay)
        with self.lock:
            self.attempts += 1
            if not hmac.compare_digest(expected, parts.get("v1", "")) or abs(time.time() - int(parts["t"])) > 300:
                self.bad_signatures += 1
                return 500
            if self.failures > 0:
                self.failures -= 1
                return 500
            self.alerts.append(json.loads(body))
            return 204


@contextmanager
def receiving(port: int | None = None) -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(receiver.received(body, self.headers.get("X-Chatbot-Signature", "")))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_port}/hooks/budget"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    with receiving() as receiver:
        settings.BUDGET_ALERT_WEBHOOK_URL = receiver.url
        settings.BUDGET_ALERT_SECRET = SECRET
        yield receiver


def spend(owner: BudgetOwner, tokens: int) -> None:
    reservation = budget_reserve((owner,), tokens, hold_seconds=30)
    reservation.settle(tokens)


def all_queued_delivered() -> None:
    """Waits until no alert is queued: each one queued was delivered (a second one of any would be queued by now,
    as alerts are queued when the use is settled)."""
    due = redis_tagged_key("budget-alerts", "due")
    wait_for(lambda: not redis_client().zcard(due), timeout=20, what="every queued alert delivered")


def thresholds_of(receiver: Receiver) -> list[int]:
    return sorted(alert["threshold"] for alert in receiver.alerts)


@pytest.mark.one_redis
def test_crossings_are_found_from_the_use_before_and_after(settings):
    assert thresholds_crossed(0, 49, 100) == []
    assert thresholds_crossed(49, 50, 100) == [50]
    assert thresholds_crossed(50, 100, 100) == [80, 100]
    assert thresholds_crossed(10, 500, 100) == [50, 80, 100]
    assert thresholds_crossed(0, 10, 0) == []


def test_each_threshold_crossed_is_one_signed_post_with_the_documented_fields(alice, receiver):
    owner = BudgetOwner("admin", alice.id)
    budget_set(owner, Budget(1000, "day"))

    spend(owner, 400)
    spend(owner, 150)  # 55%: crosses 50
    wait_for(lambda: receiver.alerts, what="the 50% alert")
    spend(owner, 450)  # 100%: crosses 80 and 100
    wait_for(lambda: len(receiver.alerts) == 3, what="the 80% and 100% alerts")

    first = receiver.alerts[0]
    assert first == {
        "id": f"admin:{alice.id}:tokens:{datetime.now(UTC):%Y-%m-%d}:50",
        "event": "budget.threshold_crossed",
        "owner": {"kind": "admin", "id": alice.id},
        "period": "day",
        "threshold": 50,
        "used": 550,
        "limit": 1000,
        "unit": "tokens",
        "resets_at": iso_at(period_end("day", datetime.now(UTC))),
    }
    assert thresholds_of(receiver) == [50, 80, 100]
    assert receiver.bad_signatures == 0
    all_queued_delivered()
    assert len(receiver.alerts) == 3


def test_a_dollar_budget_alerts_in_dollars_beside_its_token_limit(alice, receiver):
    owner = BudgetOwner("admin", alice.id)
    budget_set(owner, Budget(1000, "day", Decimal("2")))

    reservation = budget_reserve((owner,), 600, micros=1_200_000, hold_seconds=30)
    reservation.settle(600, 1_200_000)  # 60% of the tokens and of the dollars
    wait_for(lambda: len(receiver.alerts) == 2, what="the 50% alerts in tokens and in dollars")

    by_unit = {alert["unit"]: alert for alert in receiver.alerts}
    assert {unit: (a["threshold"], a["used"], a["limit"]) for unit, a in by_unit.items()} == {
        "tokens": (50, 600, 1000),
        "usd": (50, "1.2", "2"),
    }
    assert by_unit["usd"]["id"] == f"admin:{alice.id}:usd:{datetime.now(UTC):%Y-%m-%d}:50"
    reservation = budget_reserve((owner,), 10, micros=500_000, hold_seconds=30)
    reservation.settle(10, 500_000)  # 85% of the dollars, 61% of the tokens
    wait_for(lambda: len(receiver.alerts) == 3, what="the 80% alert in dollars")
    assert (receiver.alerts[-1]["unit"], receiver.alerts[-1]["threshold"]) == ("usd", 80)


def test_a_key_gets_its_own_alerts_and_a_threshold_is_not_sent_twice_in_a_period(alice, alice_client, receiver):
    key_id = alice_client.post("/admin/api-keys", {"name": "k"}, format="json").json()["id"]
    key = BudgetOwner("key", key_id, alice.id)
    budget_set(key, Budget(100, "month"))
    spend(key, 60)
    wait_for(lambda: receiver.alerts, what="the key's 50% alert")
    # A raised budget puts the use below 50% again; crossing it again this period sends nothing more.
    budget_set(key, Budget(1000, "month"))
    spend(key, 500)
    all_queued_delivered()

    assert [(a["owner"], a["period"], a["threshold"]) for a in receiver.alerts] == [
        ({"kind": "key", "id": key_id}, "month", 50)
    ]


def test_concurrent_settlements_send_each_threshold_once(alice, receiver, settings):
    settings.BUDGET_ALERT_THRESHOLDS = [str(n) for n in range(10, 101, 10)]
    owner = BudgetOwner("admin", alice.id)
    budget_set(owner, Budget(1000, "day"))

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(lambda _: spend(owner, 50), range(20)))

    wait_for(lambda: len(receiver.alerts) >= 10, what="ten alerts")
    all_queued_delivered()
    assert thresholds_of(receiver) == list(range(10, 101, 10))


def test_any_budget_can_feed_the_alerts_dollars_in_decimal_included(receiver):
    resets_at = iso_at(period_end("month", datetime.now(UTC)))
    use = BudgetUse(
        "key",
        "0123456789abcdef",
        "month",
        f"{datetime.now(UTC):%Y-%m}",
        Decimal("4.10"),
        Decimal("5.00"),
        resets_at,
        unit="usd",
    )
    budget_use_settled(use, before=Decimal("3.99"))

    wait_for(lambda: receiver.alerts, what="the dollar alert")
    alert = receiver.alerts[0]
    assert (alert["threshold"], alert["used"], alert["limit"], alert["unit"]) == (80, "4.10", "5.00", "usd")
    assert thresholds_crossed(Decimal("2.49"), Decimal("2.50"), Decimal("5.00")) == [50]


def test_a_failing_receiver_gets_the_alert_again_with_backoff(alice, receiver):
    receiver.failures = 2
    owner = BudgetOwner("admin", alice.id)
    budget_set(owner, Budget(100, "day"))
    spend(owner, 50)

    wait_for(lambda: receiver.alerts, timeout=15, what="the alert after two failures")
    assert receiver.attempts == 3
    assert thresholds_of(receiver) == [50]
    # The sender takes the alert off the queue once the receiver's answer is in, a moment after the receiver has it.
    wait_for(lambda: not redis_client().zcard(redis_tagged_key("budget-alerts", "due")), what="the alert delivered")


def test_a_slow_receiver_does_not_delay_a_chat(alice, alice_client, receiver, settings):
    receiver.delay = 3.0
    settings.BUDGET_ALERT_THRESHOLDS = ["1"]
    budget_set(BudgetOwner("admin", alice.id), Budget(worst_case(settings, "hi"), "day"))

    started = time.monotonic()
    assert ask(alice_client).status_code == HTTPStatus.OK
    took = time.monotonic() - started

    assert took < receiver.delay
    wait_for(lambda: receiver.alerts, timeout=10, what="the alert from the chat")
    assert receiver.alerts[0]["used"] > 0


@pytest.mark.parametrize("session", [None, "s1"])
def test_a_chat_under_a_key_with_rules_alerts_with_the_use_its_finish_settled(alice, receiver, settings, session):
    """The turn's finish settles the budgets and the tokens per minute in its own round trip: the alerts get each
    budget's use from that settling, the chat's tokens."""
    settings.HISTORY_BACKEND = "redis"
    settings.BUDGET_ALERT_THRESHOLDS = ["1"]
    key, raw = api_key_create(admin_id=alice.id, rules=KeyRules(requests_per_minute=1000, tokens_per_minute=10**9))
    owners = (BudgetOwner("admin", alice.id), BudgetOwner("key", key.id, alice.id))
    for owner in owners:
        budget_set(owner, Budget(worst_case(settings, "hi"), "day"))

    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {raw}")
    if session:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_X_SESSION_ID=session)
    answer = ask(client)
    assert answer.status_code == HTTPStatus.OK, answer.content

    wait_for(lambda: len(receiver.alerts) == 2, what="the admin's and the key's alerts")
    spent = answer.json()["usage"]["total_tokens"]
    assert sorted((a["owner"]["kind"], a["used"]) for a in receiver.alerts) == [("admin", spent), ("key", spent)]
    assert [budget_status(owner)["used"] for owner in owners] == [spent, spent]


def test_the_gauge_shows_each_owners_use(alice, alice_client):
    owner = BudgetOwner("admin", alice.id)
    budget_set(owner, Budget(1000, "day"))
    spend(owner, 250)

    assert (
        value(scrape(), "chatbot_budget_used_ratio", owner_kind="admin", owner_id=alice.id, period="day", unit="tokens")
        == 0.25
    )


def test_an_alert_queued_before_a_restart_is_delivered_by_the_next_instance(alice, settings):
    """The alert is queued while no receiver listens; the process that queued it goes (its webhook setting with
    it), and a server started later, with a receiver now listening, delivers it."""
    port = free_port()
    settings.BUDGET_ALERT_WEBHOOK_URL, settings.BUDGET_ALERT_SECRET = f"http://127.0.0.1:{port}/hooks/budget", SECRET
    owner = BudgetOwner("admin", alice.id)
    budget_set(owner, Budget(100, "day"))
    spend(owner, 80)
    wait_for(
        lambda: (
            redis_client().hget(
                redis_tagged_key("budget-alerts", "alert", f"admin:{alice.id}:tokens:{datetime.now(UTC):%Y-%m-%d}:50"),
                "attempts",
            )
            == b"1"
        ),
        what="a failed first delivery",
    )
    settings.BUDGET_ALERT_WEBHOOK_URL = ""  # this process delivers no more

    with ExitStack() as stack:
        receiver = stack.enter_context(receiving(port))
        stack.enter_context(
            running_server(WEB_CONCURRENCY="1", BUDGET_ALERT_WEBHOOK_URL=receiver.url, BUDGET_ALERT_SECRET=SECRET)
        )
        wait_for(lambda: len(receiver.alerts) == 2, timeout=20, what="the queued alerts")

    assert thresholds_of(receiver) == [50, 80]


def test_two_instances_send_each_threshold_once_for_concurrent_chats(alice, settings):
    env = {"BUDGET_ALERT_SECRET": SECRET, "BUDGET_ALERT_THRESHOLDS": "10,20,40,60,80", "WEB_CONCURRENCY": "1"}
    owner = BudgetOwner("admin", alice.id)
    with ExitStack() as stack:
        receiver = stack.enter_context(receiving())
        urls = stack.enter_context(running_servers(2, BUDGET_ALERT_WEBHOOK_URL=receiver.url, **env))
        headers = [login_headers(url, "alice", ALICE_PASSWORD) for url in urls]
        # A long prompt and one token of answer: each chat uses about what it reserves.
        body = {"model": MODEL, "messages": [{"role": "user", "content": "x " * 1000}], "max_tokens": 1}
        first = httpx.post(f"{urls[0]}/v1/chat/completions", json=body, headers=headers[0], timeout=30).json()
        # Room for about 10 such chats: 60, 10 at a time, cross every threshold (many are refused).
        budget_set(owner, Budget(first["usage"]["total_tokens"] * 10, "day"))

        def chat(n: int) -> int:
            url, auth = urls[n % 2], headers[n % 2]
            return httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth, timeout=30).status_code

        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = list(pool.map(chat, range(60)))
        assert HTTPStatus.OK in statuses
        wait_for(lambda: 80 in thresholds_of(receiver), timeout=20, what="the 80% alert")
        all_queued_delivered()

    assert thresholds_of(receiver) == [10, 20, 40, 60, 80]
    assert receiver.bad_signatures == 0


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"BUDGET_ALERT_WEBHOOK_URL": "https://hooks.example.com/budget"}, "BUDGET_ALERT_SECRET"),
        ({"BUDGET_ALERT_WEBHOOK_URL": "hooks.example.com", "BUDGET_ALERT_SECRET": SECRET}, "BUDGET_ALERT_WEBHOOK_URL"),
        ({"BUDGET_ALERT_THRESHOLDS": "50,eighty"}, "BUDGET_ALERT_THRESHOLDS"),
        ({"BUDGET_ALERT_THRESHOLDS": "0,150"}, "BUDGET_ALERT_THRESHOLDS"),
        ({"AUDIT_RETENTION_DAYS": "0"}, "AUDIT_RETENTION_DAYS"),
    ],
)
@pytest.mark.one_redis  # `manage.py check` of the settings alone
def test_a_bad_alert_or_audit_setting_stops_startup_naming_it(overrides, named):
    result = manage_check(**overrides)

    assert result.returncode != 0
    assert named in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.one_redis
def test_good_alert_settings_pass_the_checks():
    result = manage_check(
        BUDGET_ALERT_WEBHOOK_URL="https://hooks.example.com/budget",
        BUDGET_ALERT_SECRET=SECRET,
        BUDGET_ALERT_THRESHOLDS="25,75",
    )
    assert result.returncode == 0, result.stderr
