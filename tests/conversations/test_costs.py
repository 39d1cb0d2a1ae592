"""Cost in dollars: a price table per model, `cost_usd` beside usage totals, and dollar budgets that are reserved
at their worst case and settled to the real cost, never overspent by concurrent requests; a model without a price
counts tokens, says its cost is unknown, and is refused under a dollar budget."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from http import HTTPStatus
from io import StringIO

import httpx
import pytest
from django.core.management import CommandError, call_command

from accounts.budgets import Budget, BudgetOwner, budget_reserve, budget_set, budget_status
from core.leases import Hold
from llm_provider.pricing import PriceTableError, cost_micros, parse_price_table, usd, worst_cost_micros
from tests.server import running_servers
from tests.support import ALICE_PASSWORD, MAX_TOKENS, MODEL, ask, worst_case

OTHER = "openai/gpt-oss-120b"  # left without a price in these tests


@pytest.fixture
def prices(tmp_path, settings):
    """Round prices, so that a call's cost in micro-dollars is its input tokens plus twice its output tokens."""
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({MODEL: {"input": "1.00", "output": "2.00"}}))
    settings.MODEL_PRICES_FILE = str(path)
    settings.CHAT_ALLOWED_MODELS = [MODEL, OTHER]
    return str(path)


def micros(usage: dict) -> int:
    return usage["prompt_tokens"] + 2 * usage["completion_tokens"]


def test_prices_are_decimals_and_costs_dollar_strings():
    table = parse_price_table({"m": {"input": "0.10", "output": "0.50"}, "n": {"input": 3, "output": "0.000001"}})
    assert (table["m"].input, table["n"].input, table["n"].output) == (Decimal("0.10"), 3, Decimal("0.000001"))
    assert usd(407) == "0.000407" and usd(None) is None and usd(5_000_000) == "5.000000"


def test_the_default_table_prices_the_default_model_and_rounds_half_up(settings):
    settings.MODEL_PRICES_FILE = ""
    assert cost_micros("openai/gpt-oss-20b", 1234, 567) == 407  # 123.4 + 283.5
    assert cost_micros("openai/gpt-oss-20b", 5, 0) == 1  # 0.5 rounds up
    assert cost_micros("no-such-model", 10, 10) is None
    assert worst_cost_micros(["openai/gpt-oss-20b", "llama-3.3-70b-versatile"], 1, 1) == 2  # 0.59 + 0.79, up
    assert worst_cost_micros(["openai/gpt-oss-20b", "no-such-model"], 1, 1) is None


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"m": {"input": "0.1"}},
        {"m": {"input": "-1", "output": "1"}},
        {"m": {"input": "NaN", "output": "1"}},
        {"m": {"input": "abc", "output": "1"}},
        {"m": {"input": 0.1, "output": "1"}},
    ],
)
def test_a_bad_price_table_is_refused(raw):
    with pytest.raises(PriceTableError):
        parse_price_table(raw)


def test_a_bad_price_file_fails_the_configuration_check(tmp_path, settings):
    from llm_provider.checks import model_prices_are_readable

    path = tmp_path / "bad.json"
    path.write_text('{"m": {"input": "x", "output": "1"}}')
    settings.MODEL_PRICES_FILE = str(path)
    (error,) = model_prices_are_readable(None)
    assert "m.input" in error.msg
    settings.MODEL_PRICES_FILE = str(tmp_path / "missing.json")
    assert model_prices_are_readable(None)


def test_a_chat_reports_its_cost_and_the_sessions_on_either_history_store(history_backend, alice_client, prices):
    first = alice_client.post("/chat/", {"message": "hi", "session_id": "costs"}, format="json").json()
    second = alice_client.post("/chat/", {"message": "again", "session_id": "costs"}, format="json").json()

    assert first["usage"]["cost_usd"] == usd(micros(first["usage"]))
    assert second["session_usage"]["cost_usd"] == usd(micros(first["usage"]) + micros(second["usage"]))
    detail = alice_client.get("/chat/sessions/costs").json()
    assert detail["usage"]["cost_usd"] == second["session_usage"]["cost_usd"]
    listed = alice_client.get("/chat/sessions").json()["sessions"][0]
    assert listed["usage"]["cost_usd"] == second["session_usage"]["cost_usd"]
    assert alice_client.get("/chat/memory/stats").json()["usage"]["cost_usd"] == second["session_usage"]["cost_usd"]
    assert alice_client.get("/admin/status").json()["usage"]["cost_usd"] == second["session_usage"]["cost_usd"]


def test_a_model_without_a_price_counts_tokens_and_its_cost_is_unknown(alice_client, prices):
    reply = alice_client.post("/chat/", {"message": "hi", "session_id": "unpriced", "model": OTHER}, format="json")

    assert reply.status_code == HTTPStatus.OK
    body = reply.json()
    assert body["usage"]["total_tokens"] > 0 and body["usage"]["cost_usd"] is None
    assert body["session_usage"]["cost_usd"] is None
    status = alice_client.get("/admin/status").json()["usage"]
    assert status["total_tokens"] == body["usage"]["total_tokens"] and status["cost_usd"] is None


def test_an_api_keys_dollar_budget_is_set_shown_and_settled_to_the_real_cost(alice, alice_client, prices):
    created = alice_client.post("/admin/api-keys", {"budget": {"usd": "5.00", "period": "month"}}, format="json").json()
    assert created["budget"]["usd"] == "5.000000" and created["budget"]["tokens"] is None
    assert created["budget"]["used_usd"] == "0.000000"

    key_client = type(alice_client)()
    key_client.credentials(HTTP_AUTHORIZATION=f"Bearer {created['key']}")
    reply = ask(key_client)
    assert reply.status_code == HTTPStatus.OK
    (listed,) = alice_client.get("/admin/api-keys").json()["keys"]
    assert listed["budget"]["used_usd"] == usd(micros(reply.json()["usage"]))
    assert listed["budget"]["used"] == reply.json()["usage"]["total_tokens"]


@pytest.mark.parametrize(
    "budget",
    [
        {"period": "day"},
        {"usd": "0", "period": "day"},
        {"usd": "0.0000001", "period": "day"},
        {"usd": "x", "period": "day"},
    ],
)
def test_a_budget_without_an_amount_or_with_a_bad_one_is_refused(alice_client, budget):
    response = alice_client.post("/admin/api-keys", {"budget": budget}, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert alice_client.get("/admin/api-keys").json()["count"] == 0


def test_a_dollar_budget_refuses_a_model_without_a_price_and_reserves_nothing(alice, alice_client, prices, fake_groq):
    owner = BudgetOwner("admin", alice.id)
    budget_set(owner, Budget(None, "day", Decimal("1")))
    calls = len(fake_groq.chat_requests())

    response = ask(alice_client, model=OTHER)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"]["code"] == "model_unpriced"
    chat = alice_client.post("/chat/", {"message": "hi", "model": OTHER}, format="json")
    assert (chat.status_code, chat.json()["code"]) == (HTTPStatus.BAD_REQUEST, "model_unpriced")
    assert "has no price" in chat.json()["detail"]
    assert len(fake_groq.chat_requests()) == calls
    assert ask(alice_client).status_code == HTTPStatus.OK  # a priced model still fits


def test_a_token_budget_alone_lets_a_model_without_a_price_through(alice, alice_client, prices):
    budget_set(BudgetOwner("admin", alice.id), Budget(10_000, "day"))
    assert ask(alice_client, model=OTHER).status_code == HTTPStatus.OK


def test_a_request_whose_worst_cost_is_over_what_is_left_is_refused(alice, alice_client, prices, settings):
    worst = worst_case(settings, "hi") + MAX_TOKENS  # micro-dollars: prompt at $1, max_tokens at $2 a million
    budget_set(BudgetOwner("admin", alice.id), Budget(None, "day", Decimal(worst - 1) / 1_000_000))

    response = ask(alice_client)

    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response.json()["error"]["code"] == "budget_exceeded"
    assert f"up to ${usd(worst)}" in response.json()["error"]["message"]
    budget_set(BudgetOwner("admin", alice.id), Budget(None, "day", Decimal(worst) / 1_000_000))
    assert ask(alice_client).status_code == HTTPStatus.OK


def test_tokens_and_dollars_both_hold(alice, alice_client, prices, settings):
    budget_set(BudgetOwner("admin", alice.id), Budget(worst_case(settings, "hi") - 1, "day", Decimal("5")))
    response = ask(alice_client)
    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert "token budget" in response.json()["error"]["message"]


def test_a_renewed_reservation_keeps_its_dollars(alice, prices):
    owner = BudgetOwner("admin", alice.id)
    budget_set(owner, Budget(1000, "day", Decimal("0.000100")))
    reservation = budget_reserve((owner,), 10, micros=60, hold_seconds=30)
    hold = Hold(reservation.leases(), renewed_at=0.0)
    hold.keep()  # renews: the amount keeps both tokens and micro-dollars
    with pytest.raises(Exception, match="held by requests in flight"):
        budget_reserve((owner,), 10, micros=60, hold_seconds=30)
    reservation.settle(5, 42)
    status = budget_status(owner)
    assert status is not None and (status["used"], status["used_usd"]) == (5, "0.000042")


def test_setbudget_sets_a_dollar_budget(alice, alice_client):
    out = StringIO()
    call_command("setbudget", "alice", "--usd", "5.00", "--period", "month", stdout=out)
    budget = alice_client.get("/admin/status").json()["budget"]
    assert (budget["usd"], budget["tokens"], budget["period"]) == ("5.000000", None, "month")
    assert "$5.000000 per month" in out.getvalue()
    call_command("setbudget", "alice", "--usd", "1", "--tokens", "100", stdout=out)
    assert alice_client.get("/admin/status").json()["budget"]["tokens"] == 100
    entries = alice_client.get("/admin/audit", {"action": "budget.set"}).json()["entries"]
    assert sorted(entry["detail"] for entry in entries) == ["$5.00/month", "100+$1/day"]


@pytest.mark.parametrize("amount", ["0", "-1", "abc", "1.0000001", "NaN"])
def test_setbudget_refuses_a_bad_dollar_amount(alice, amount):
    with pytest.raises(CommandError):
        call_command("setbudget", "alice", "--usd", amount, stdout=StringIO())


def test_fifty_concurrent_requests_on_two_instances_never_overspend_dollars(alice, fake_groq, settings, prices):
    """Each reply uses its whole max_tokens, so the dollar budget fits 10 of them."""
    fake_groq.configure(completion_tokens=MAX_TOKENS, latency=0.1)
    worst = worst_case(settings, "hi") + MAX_TOKENS
    owner = BudgetOwner("admin", alice.id)
    budget_set(owner, Budget(None, "day", Decimal(10 * worst) / 1_000_000))
    with running_servers(2, HISTORY_BACKEND="redis", MODEL_PRICES_FILE=prices) as urls:
        login = httpx.post(f"{urls[0]}/admin/login", json={"username": "alice", "password": ALICE_PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": MAX_TOKENS}

        def one(i: int) -> httpx.Response:
            return httpx.post(f"{urls[i % 2]}/v1/chat/completions", json=body, headers=headers, timeout=30)

        with ThreadPoolExecutor(50) as pool:
            responses = list(pool.map(one, range(50)))

    ok = [r for r in responses if r.status_code == HTTPStatus.OK]
    assert {r.status_code for r in responses} <= {HTTPStatus.OK, HTTPStatus.TOO_MANY_REQUESTS}
    assert 1 <= len(ok) <= 10
    status = budget_status(owner)
    assert status is not None
    spent = sum(micros(r.json()["usage"]) for r in ok)
    assert status["used_usd"] == usd(spent)
    assert spent <= 10 * worst


def test_listapikeys_shows_a_dollar_budget(alice, alice_client):
    created = alice_client.post(
        "/admin/api-keys", {"budget": {"tokens": 900, "usd": "5.00", "period": "month"}}, format="json"
    ).json()
    out = StringIO()
    call_command("listapikeys", "alice", stdout=out, stderr=StringIO())
    (line,) = [line for line in out.getvalue().splitlines() if line.startswith(created["id"])]
    assert "900+$5.000000/month" in line and "0 $0.000000 (resets" in line
