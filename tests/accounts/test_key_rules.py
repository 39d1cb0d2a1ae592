"""API keys with their own rules (models, requests and tokens per minute, expiry) and an admin's own limits, against
real Redis and the fake upstream."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

from django.core.management import call_command
from rest_framework.test import APIClient

from tests.support import MAX_TOKENS, ask, complete, user, worst_case

MODEL = "openai/gpt-oss-20b"


def key_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def new_key(admin_client: APIClient, **rules) -> tuple[dict, APIClient]:
    response = admin_client.post("/admin/api-keys", {"name": "k", **rules}, format="json")
    assert response.status_code == HTTPStatus.CREATED, response.content
    created = response.json()
    return created, key_client(created["key"])


def test_rules_are_set_on_create_shown_in_the_list_and_changed_by_patch(alice_client):
    expires = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    created, _ = new_key(
        alice_client, models=[MODEL], requests_per_minute=5, tokens_per_minute=9000, expires_at=expires.isoformat()
    )
    listed = alice_client.get("/admin/api-keys").json()["keys"][0]
    assert listed["models"] == [MODEL] and listed["requests_per_minute"] == 5
    assert listed["tokens_per_minute"] == 9000 and listed["last_used_at"] is None
    assert datetime.fromisoformat(listed["expires_at"].replace("Z", "+00:00")) == expires

    changed = alice_client.patch(f"/admin/api-keys/{created['id']}", {"tokens_per_minute": None}, format="json")

    assert changed.status_code == HTTPStatus.OK, changed.content
    assert changed.json()["tokens_per_minute"] is None and changed.json()["requests_per_minute"] == 5
    assert changed.json()["models"] == [MODEL]


def test_an_unknown_model_is_refused_when_the_key_is_made(alice_client):
    response = alice_client.post("/admin/api-keys", {"models": ["no/such-model"]}, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST


def test_an_expired_key_gets_401_api_key_expired(alice_client):
    created, client = new_key(alice_client)
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    changed = alice_client.patch(f"/admin/api-keys/{created['id']}", {"expires_at": past}, format="json")
    assert changed.status_code == HTTPStatus.OK

    response = client.get("/admin/info")

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["code"] == "api_key_expired"


def test_a_model_the_key_may_not_use_is_403_naming_the_allowed_ones(alice_client, fake_groq, settings):
    settings.CHAT_ALLOWED_MODELS = [MODEL, "other/model"]
    _, client = new_key(alice_client, models=["other/model"])

    response = complete(client, user("hi"), model=MODEL)

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["error"]["code"] == "model_not_allowed"
    assert "other/model" in response.json()["error"]["message"]
    assert not fake_groq.requests


def test_a_fallback_model_the_key_may_not_use_is_skipped(alice_client, fake_groq, settings):
    third = "llama-3.1-8b-instant"
    settings.CHAT_ALLOWED_MODELS = [MODEL, "openai/gpt-oss-120b", third]
    settings.GROQ_FALLBACK_MODELS, settings.LLM_MAX_RETRIES = ["openai/gpt-oss-120b", third], 0
    _, client = new_key(alice_client, models=[MODEL, third])
    fake_groq.add_faults({"kind": "status", "status": 503})

    response = complete(client, user("hi"), model=MODEL)

    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["model"] == third
    assert [r["json"]["model"] for r in fake_groq.chat_requests()] == [MODEL, third]


def test_a_key_without_an_allowed_fallback_gets_the_models_own_failure(alice_client, fake_groq, settings):
    settings.CHAT_ALLOWED_MODELS = [MODEL, "openai/gpt-oss-120b"]
    settings.GROQ_FALLBACK_MODELS, settings.LLM_MAX_RETRIES = ["openai/gpt-oss-120b"], 0
    _, client = new_key(alice_client, models=[MODEL])
    fake_groq.add_faults({"kind": "status", "status": 503})

    response = complete(client, user("hi"), model=MODEL)

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert [r["json"]["model"] for r in fake_groq.chat_requests()] == [MODEL]


def test_a_key_over_its_tokens_per_minute_gets_429_with_retry_after(alice_client, fake_groq, settings):
    per_request = worst_case(settings, "hi")
    _, client = new_key(alice_client, tokens_per_minute=per_request + per_request // 2)

    fake_groq.configure(completion_tokens=MAX_TOKENS)  # a reply that used all it could: settled near its worst case
    first = ask(client)
    assert first.status_code == HTTPStatus.OK, first.content
    assert int(first["x-ratelimit-limit-tokens"]) == per_request + per_request // 2
    # Counted as reserved (the worst case) when the request was let through.
    assert int(first["x-ratelimit-remaining-tokens"]) == per_request // 2
    second = ask(client)

    assert second.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert second.json()["error"]["code"] == "rate_limited"
    assert 0 < float(second["Retry-After"]) <= 60


def test_a_refusal_by_one_limit_holds_nothing_against_the_others(alice_client, fake_groq, settings):
    """The budgets and the per-minute limits are reserved by one script: when the per-minute limit refuses, the
    budget's reservation is given back; when the budget refuses, the per-minute limits count nothing."""
    per_request = worst_case(settings, "hi")
    budget = {"tokens": per_request * 10, "period": "day"}
    created, client = new_key(alice_client, tokens_per_minute=per_request - 1, budget=budget)
    refused = ask(client)
    assert refused.json()["error"]["code"] == "rate_limited"
    alice_client.patch(f"/admin/api-keys/{created['id']}", {"tokens_per_minute": None}, format="json")
    # All of the budget is left: ten requests' worst cases fit, the first refusal took none of it.
    for _ in range(10):
        fake_groq.configure(completion_tokens=MAX_TOKENS)
        assert ask(client).status_code == HTTPStatus.OK

    created, client = new_key(alice_client, requests_per_minute=1, budget={"tokens": 1, "period": "day"})
    assert ask(client).json()["error"]["code"] == "budget_exceeded"
    alice_client.patch(f"/admin/api-keys/{created['id']}", {"budget": None}, format="json")
    answered = ask(client)  # the request the budget refused was not counted against the requests per minute
    assert answered.status_code == HTTPStatus.OK, answered.content
    assert answered["x-ratelimit-remaining-requests"] == "0"


def test_a_key_over_its_requests_per_minute_gets_429_and_headers_count_down(alice_client, fake_groq):
    _, client = new_key(alice_client, requests_per_minute=2)

    first, second = complete(client, user("a")), complete(client, user("b"))
    third = complete(client, user("c"))

    assert first["x-ratelimit-limit-requests"] == "2"
    assert (first["x-ratelimit-remaining-requests"], second["x-ratelimit-remaining-requests"]) == ("1", "0")
    assert first["x-ratelimit-reset-requests"].endswith("s")
    assert third.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert third.json()["error"]["code"] == "rate_limited"


def test_every_chat_answer_carries_the_admins_request_limit(alice_client, fake_groq, settings):
    settings.CHAT_REQUESTS_PER_MINUTE = 50
    response = alice_client.post("/chat/", {"message": "hi"}, format="json")
    assert response.status_code == HTTPStatus.OK
    assert response["x-ratelimit-limit-requests"] == "50"
    assert int(response["x-ratelimit-remaining-requests"]) < 50


def test_setlimits_sets_an_admins_own_limits(alice, alice_client, fake_groq, settings):
    out = io.StringIO()
    call_command("setlimits", "alice", "--rpm", "1", "--tpm", "100000", stdout=out)
    assert "1 requests" in out.getvalue()
    # A new login copies them; a live one had them set too.
    first = alice_client.post("/chat/", {"message": "hi"}, format="json")
    second = alice_client.post("/chat/", {"message": "hi"}, format="json")

    assert first.status_code == HTTPStatus.OK, first.content
    assert first["x-ratelimit-limit-requests"] == "1" and first["x-ratelimit-limit-tokens"] == "100000"
    assert second.status_code == HTTPStatus.TOO_MANY_REQUESTS


def test_createapikey_and_updateapikey_set_the_rules(alice, alice_client):
    out, err = io.StringIO(), io.StringIO()
    call_command("createapikey", "alice", "--models", MODEL, "--rpm", "7", stdout=out, stderr=err)
    key_id = alice_client.get("/admin/api-keys").json()["keys"][0]["id"]
    call_command("updateapikey", key_id, "--tpm", "500", "--rpm", "none", stdout=out)

    listed = alice_client.get("/admin/api-keys").json()["keys"][0]

    assert (listed["models"], listed["requests_per_minute"], listed["tokens_per_minute"]) == ([MODEL], None, 500)


def test_streams_and_responses_carry_the_headers_too(alice_client, fake_groq):
    _, client = new_key(alice_client, requests_per_minute=10, tokens_per_minute=100000)

    answers = {
        "chat stream": client.post("/chat/", {"message": "hi", "stream": True}, format="json"),
        "v1 stream": complete(client, user("hi"), stream=True),
        "responses": client.post("/v1/responses", {"model": MODEL, "input": "hi"}, format="json"),
        "responses stream": client.post(
            "/v1/responses", {"model": MODEL, "input": "hi", "stream": True}, format="json"
        ),
    }

    for name, response in answers.items():
        assert response.status_code == HTTPStatus.OK, name
        if response.streaming:
            b"".join(response.streaming_content)
        assert response["x-ratelimit-limit-requests"] == "10", name
        assert response["x-ratelimit-limit-tokens"] == "100000", name
        assert int(response["x-ratelimit-remaining-tokens"]) < 100000, name


def test_the_schema_documents_the_rules_and_the_headers(api):
    schema = api.get("/openapi.json").json()
    paths, components = schema["paths"], schema["components"]["schemas"]

    assert "patch" in paths["/admin/api-keys/{key_id}"]
    for name in ("ApiKeyCreateRequestRequest", "PatchedApiKeyUpdateRequestRequest", "ApiKeyInfo"):
        assert {"models", "requests_per_minute", "tokens_per_minute", "expires_at"} <= set(
            components[name]["properties"]
        )
    assert "last_used_at" in components["ApiKeyInfo"]["properties"]
    for path in ("/chat", "/v1/chat/completions", "/v1/responses"):
        assert "x-ratelimit-remaining-tokens" in paths[path]["post"]["responses"]["200"]["headers"]
