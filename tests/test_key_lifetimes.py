"""Every key the service writes keeps the lifetime the Redis key map (docs/architecture.md) gives it: after the
broad flows, on the real Redis, the only keys without a TTL are of the families the key map documents as
permanent (TTL "none")."""

from __future__ import annotations

from http import HTTPStatus

from django.test import Client
from rest_framework.test import APIClient

from accounts.budgets import Budget, BudgetOwner, budget_set
from conversations.usage import usage_key
from core.redis_store import redis_admin_key, redis_client
from tests.support import ALICE_PASSWORD, browser_login, keys_without_ttl

MODEL = "openai/gpt-oss-20b"


def test_the_broad_flows_leave_no_key_without_the_ttl_the_key_map_gives_it(alice, alice_client, settings):
    settings.HISTORY_BACKEND = "redis"
    settings.HISTORY_SUMMARY = True
    settings.HISTORY_MAX_MESSAGES = 2
    budget_set(BudgetOwner("admin", alice.id), Budget(100_000, "day"))
    created = alice_client.post(
        "/admin/api-keys", {"name": "script", "budget": {"tokens": 100_000, "period": "month"}}, format="json"
    ).json()
    with_key = APIClient(HTTP_AUTHORIZATION=f"Bearer {created['key']}")
    request = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}

    def chat(text: str, session_id: str = "s1", **extra) -> object:
        return alice_client.post("/chat/", {"session_id": session_id, "message": text, **extra}, format="json")

    def export_delete_import() -> object:
        document = alice_client.get("/chat/sessions/s1/export").json()
        alice_client.delete("/chat/sessions/s1")
        alice_client.post("/chat/sessions/import", {**document, "session_id": "s4"}, format="json")
        alice_client.delete("/chat/sessions/s4")
        return alice_client.post("/chat/sessions/import", document, format="json")

    def responses() -> object:
        first = alice_client.post("/v1/responses", {"model": MODEL, "input": "one"}, format="json")
        assert first.status_code == HTTPStatus.OK, first.content
        body = {"model": MODEL, "input": "two", "previous_response_id": first.json()["id"]}
        alice_client.post("/v1/responses", body, format="json")
        return alice_client.post("/v1/conversations", {"metadata": {"topic": "keys"}}, format="json")

    def logins() -> object:
        failed = APIClient().post("/admin/login", {"username": "alice", "password": "wrong"}, format="json")
        assert failed.status_code == HTTPStatus.UNAUTHORIZED
        assert browser_login(Client(), "alice", ALICE_PASSWORD).status_code == HTTPStatus.FOUND
        second = APIClient().post("/admin/login", {"username": "alice", "password": ALICE_PASSWORD}, format="json")
        return APIClient(HTTP_AUTHORIZATION=f"Bearer {second.json()['access_token']}").post("/admin/logout")

    steps = {
        # The first turn of a period settles a budget whose usage hash held only its reservation.
        "a first budgeted chat": lambda: chat("one"),
        "a first request of a key with a budget": lambda: with_key.post("/v1/chat/completions", request, format="json"),
        "more turns, one folding a summary": lambda: [chat("two"), chat("three")][-1],
        "a stream": lambda: chat("tell", stream=True),
        "a regeneration": lambda: alice_client.post("/chat/sessions/s1/regenerate", {}, format="json"),
        "an edit": lambda: alice_client.post("/chat/sessions/s1/edit", {"message": "four"}, format="json"),
        "an idempotent chat and its retry": lambda: [chat("hi", "s2", HTTP_IDEMPOTENCY_KEY="k1") for _ in "12"][-1],
        "a key's stream": lambda: with_key.post("/v1/chat/completions", {**request, "stream": True}, format="json"),
        "a /v1 session": lambda: alice_client.post(
            "/v1/chat/completions", request, format="json", HTTP_X_SESSION_ID="s3"
        ),
        "a key's idempotent request": lambda: with_key.post(
            "/v1/chat/completions", request, format="json", HTTP_IDEMPOTENCY_KEY="k2"
        ),
        "a chain of responses and a conversation": responses,
        "export, delete and import": export_delete_import,
        "reads": lambda: [alice_client.get(p) for p in ("/chat/sessions", "/chat/memory/stats", "/admin/status")][-1],
        "logins": logins,
        "a key revoked": lambda: alice_client.delete(f"/admin/api-keys/{created['id']}"),
    }
    for step, run in steps.items():
        response = run()
        assert response.status_code < 300, (step, response.content)
        if response.streaming:
            assert b"event: error" not in b"".join(response.streaming_content), step
        assert keys_without_ttl() == [], f"after {step}"


def test_the_scan_allows_only_the_families_the_key_map_documents_as_permanent(alice):
    client = redis_client()
    client.hset(usage_key(alice.id), "requests", 1)  # the key map: TTL none
    unexpected = redis_admin_key(alice.id, "budget-usage", f"admin:{alice.id}", "2026-01")
    client.hset(unexpected, "used", 1)  # the key map: until a day after the month ends

    assert keys_without_ttl() == [unexpected]
