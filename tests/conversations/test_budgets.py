"""Token budgets per UTC day or month, for an admin and for an API key: reserved before each call, settled after,
and never overspent by concurrent requests, on one instance or two."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from io import StringIO

import httpx
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.budgets import MAX_BUDGET_TOKENS, Budget, BudgetOwner, budget_set, budget_status, period_end
from core.redis_store import redis_client
from llm_provider.wire import MAX_CALL_TOKENS
from tests.server import concurrent_chats, running_servers
from tests.support import ALICE_PASSWORD, MAX_TOKENS, ask, wait_for, worst_case


def used(owner: BudgetOwner) -> int:
    status = budget_status(owner)
    assert status is not None
    return status["used"]


def test_without_a_budget_status_shows_none(alice_client):
    assert alice_client.get("/admin/status").json()["budget"] is None


def test_setbudget_sets_shows_and_clears_an_admins_budget(alice, alice_client):
    out = StringIO()
    call_command("setbudget", "alice", "--tokens", "5000", "--period", "month", stdout=out)

    budget = alice_client.get("/admin/status").json()["budget"]
    assert (budget["tokens"], budget["period"], budget["used"]) == (5000, "month", 0)
    now = datetime.now(UTC)
    assert budget["resets_at"].startswith(f"{now.year + (now.month == 12)}-{now.month % 12 + 1:02d}-01T00:00:00")
    assert "5000 tokens per month" in out.getvalue()

    call_command("setbudget", "alice", "--clear", stdout=StringIO())
    assert alice_client.get("/admin/status").json()["budget"] is None


def test_setbudget_refuses_bad_arguments(alice):
    too_many = str(MAX_BUDGET_TOKENS + 1)  # as the API refuses it
    for args in (
        ["--tokens", "10"],
        ["alice"],
        ["alice", "--tokens", "0"],
        ["alice", "--tokens", too_many],
        ["--key", "0000000000000000", "--clear"],
    ):
        with pytest.raises(CommandError):
            call_command("setbudget", *args, stdout=StringIO())


def test_a_chat_counts_its_real_usage(alice, alice_client):
    budget_set(BudgetOwner("admin", alice.id), Budget(10_000, "day"))

    response = ask(alice_client)

    assert response.status_code == HTTPStatus.OK
    assert used(BudgetOwner("admin", alice.id)) == response.json()["usage"]["total_tokens"]


def test_a_session_chat_and_its_regeneration_count_on_either_history_store(history_backend, alice, alice_client):
    budget_set(BudgetOwner("admin", alice.id), Budget(10_000, "day"))

    first = alice_client.post("/chat/", {"session_id": "s1", "message": "hi"}, format="json").json()
    again = alice_client.post("/chat/sessions/s1/regenerate", {}, format="json").json()

    assert used(BudgetOwner("admin", alice.id)) == first["usage"]["total_tokens"] + again["usage"]["total_tokens"]


def test_a_budget_set_after_login_applies_to_that_login(alice, alice_client, settings):
    budget_set(BudgetOwner("admin", alice.id), Budget(worst_case(settings, "hi") - 1, "day"))

    response = ask(alice_client)

    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response.json()["error"]["code"] == "budget_exceeded"


def test_a_request_over_what_is_left_is_refused_until_the_period_resets(alice, alice_client, fake_groq, settings):
    fake_groq.configure(completion_tokens=MAX_TOKENS)
    budget_set(BudgetOwner("admin", alice.id), Budget(worst_case(settings, "hi") + 5, "day"))
    assert ask(alice_client).status_code == HTTPStatus.OK
    calls = len(fake_groq.chat_requests())

    response = alice_client.post(
        "/chat/", {"session_id": "s1", "message": "hi", "max_tokens": MAX_TOKENS}, format="json"
    )

    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response.json()["code"] == "budget_exceeded"
    now = datetime.now(UTC)
    seconds_to_midnight = 86_400 - (now.hour * 3600 + now.minute * 60 + now.second)
    assert abs(int(response["Retry-After"]) - seconds_to_midnight) <= 2
    assert len(fake_groq.chat_requests()) == calls
    assert alice_client.get("/chat/sessions").json()["count"] == 0


def test_a_refusal_says_how_much_is_left_and_that_a_smaller_max_tokens_may_fit(alice, alice_client, settings):
    budget_set(BudgetOwner("admin", alice.id), Budget(worst_case(settings, "hi") - 50, "day"))

    refused = ask(alice_client)
    fits = ask(alice_client, max_tokens=MAX_TOKENS - 100)

    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    message = refused.json()["error"]["message"]
    assert f"more than the {worst_case(settings, 'hi') - 50} left" in message
    assert "a smaller max_tokens may fit" in message
    assert fits.status_code == HTTPStatus.OK


def test_a_spent_budget_says_it_is_spent(alice, alice_client, settings):
    owner = BudgetOwner("admin", alice.id)
    budget_set(owner, Budget(worst_case(settings, "hi"), "day"))
    assert ask(alice_client).status_code == HTTPStatus.OK
    budget_set(owner, Budget(used(owner), "day"))

    refused = ask(alice_client, max_tokens=1)

    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert refused.json()["error"]["message"].startswith("The token budget this day is spent; it resets at ")


def test_a_request_refused_only_for_reservations_in_flight_gets_a_short_retry_after(
    alice, alice_tokens, fake_groq, settings
):
    budget_set(BudgetOwner("admin", alice.id), Budget(worst_case(settings, "hi") * 3 // 2, "day"))
    fake_groq.add_faults({"kind": "hang", "seconds": 60})  # held upstream until the second request is answered
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {alice_tokens['access_token']}")
    first = threading.Thread(target=ask, args=(client,))
    first.start()
    wait_for(lambda: fake_groq.held == 1)  # the first request holds its reservation upstream

    second = ask(APIClient(HTTP_AUTHORIZATION=f"Bearer {alice_tokens['access_token']}"))
    fake_groq.release()
    first.join()

    assert second.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert second.json()["error"]["code"] == "budget_exceeded"
    assert int(second["Retry-After"]) <= 2


def test_a_failed_call_costs_nothing(alice, alice_client, fake_groq, settings):
    settings.LLM_MAX_RETRIES = 0
    budget_set(BudgetOwner("admin", alice.id), Budget(10_000, "day"))
    fake_groq.add_faults({"kind": "status", "status": 500})

    assert ask(alice_client).status_code == HTTPStatus.BAD_GATEWAY
    assert used(BudgetOwner("admin", alice.id)) == 0
    assert ask(alice_client).status_code == HTTPStatus.OK  # nothing stays reserved


def test_a_stream_closed_early_is_charged_what_was_received(alice, alice_client, fake_groq):
    budget_set(BudgetOwner("admin", alice.id), Budget(10_000, "day"))
    fake_groq.configure(reply="a b c d e f g h i j k l m n o p", chunk_delay=0.05)

    response = ask(alice_client, stream=True)
    chunks = iter(response.streaming_content)
    next(chunks), next(chunks)
    response.close()
    fake_groq.wait_idle()

    charged = used(BudgetOwner("admin", alice.id))
    assert 0 < charged < MAX_TOKENS


def test_an_api_keys_budget_is_set_shown_and_patched(alice_client):
    created = alice_client.post(
        "/admin/api-keys", {"name": "script", "budget": {"tokens": 1000, "period": "month"}}, format="json"
    ).json()
    assert created["budget"]["tokens"] == 1000

    listed = alice_client.get("/admin/api-keys").json()["keys"][0]
    assert (listed["budget"]["period"], listed["budget"]["used"]) == ("month", 0)

    patched = alice_client.patch(f"/admin/api-keys/{created['id']}", {"budget": None}, format="json")
    assert patched.status_code == HTTPStatus.OK
    assert patched.json()["budget"] is None
    bad = alice_client.patch(
        f"/admin/api-keys/{created['id']}", {"budget": {"tokens": 0, "period": "day"}}, format="json"
    )
    assert bad.status_code == HTTPStatus.BAD_REQUEST


def test_another_admins_key_cannot_be_patched(alice_client, bob_client):
    key_id = bob_client.post("/admin/api-keys", {"name": "bob's"}, format="json").json()["id"]

    response = alice_client.patch(
        f"/admin/api-keys/{key_id}", {"budget": {"tokens": 5, "period": "day"}}, format="json"
    )

    assert response.status_code == HTTPStatus.NOT_FOUND


def test_a_keys_requests_count_against_the_key_and_its_admin(alice, alice_client, fake_groq, settings):
    fake_groq.configure(completion_tokens=MAX_TOKENS)
    created = alice_client.post(
        "/admin/api-keys", {"budget": {"tokens": worst_case(settings, "hi") + 5, "period": "day"}}, format="json"
    ).json()
    budget_set(BudgetOwner("admin", alice.id), Budget(100_000, "day"))
    with_key = APIClient(HTTP_AUTHORIZATION=f"Bearer {created['key']}")

    first = ask(with_key)
    second = ask(with_key)

    assert first.status_code == HTTPStatus.OK
    assert second.status_code == HTTPStatus.TOO_MANY_REQUESTS
    spent = first.json()["usage"]["total_tokens"]
    assert used(BudgetOwner("key", created["id"])) == used(BudgetOwner("admin", alice.id)) == spent
    assert ask(alice_client).status_code == HTTPStatus.OK  # the admin's own budget still has room


def test_fifty_concurrent_requests_on_two_instances_never_overspend(alice, fake_groq, settings):
    """Each reply uses its whole max_tokens, so the budget fits 10 of them; a check that is not atomic with the
    spending would let more through."""
    fake_groq.configure(completion_tokens=MAX_TOKENS, latency=0.1)
    worst = worst_case(settings, "hi")
    budget_set(BudgetOwner("admin", alice.id), Budget(10 * worst, "day"))
    with running_servers(2, HISTORY_BACKEND="redis") as urls:
        login = httpx.post(f"{urls[0]}/admin/login", json={"username": "alice", "password": ALICE_PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        responses = concurrent_chats(urls, headers, MAX_TOKENS)

    ok = [r for r in responses if r.status_code == HTTPStatus.OK]
    assert {r.status_code for r in responses} <= {HTTPStatus.OK, HTTPStatus.TOO_MANY_REQUESTS}
    assert 1 <= len(ok) <= 10
    spent = used(BudgetOwner("admin", alice.id))
    assert spent == sum(r.json()["usage"]["total_tokens"] for r in ok)
    assert spent <= 10 * worst


def test_a_periods_usage_keeps_its_expiry_after_its_first_turn_settles(alice, alice_client):
    # Settling deletes the reservation's field, the hash's only one, and the increment that follows makes it anew.
    budget_set(BudgetOwner("admin", alice.id), Budget(10_000, "day"))

    assert ask(alice_client).status_code == HTTPStatus.OK

    client = redis_client()
    (usage,) = client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}:*:budget-usage:admin:{alice.id}:*")
    now = datetime.now(UTC)
    expected = (period_end("month", now) + timedelta(days=1) - now).total_seconds()
    assert expected - 5 < client.ttl(usage) <= expected + 1


def test_an_upstream_counting_past_the_integer_limit_spends_the_budget_without_failing(alice, alice_client, fake_groq):
    budget_set(BudgetOwner("admin", alice.id), Budget(10_000, "day"))
    fake_groq.configure(completion_tokens=2**63)

    response = ask(alice_client)

    assert response.status_code == HTTPStatus.OK, response.content
    assert used(BudgetOwner("admin", alice.id)) == MAX_CALL_TOKENS
    assert ask(alice_client).status_code == HTTPStatus.TOO_MANY_REQUESTS
