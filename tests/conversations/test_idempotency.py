"""Idempotency-Key on /chat/, regenerate, edit and /v1/chat/completions: a retry gets the first answer again with no
second turn; the same key with another request is a 422, a retry while the first runs a 409; an error answer
keeps nothing; keys belong to the admin, whichever credential it uses."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http import HTTPStatus

import httpx
import openai
import pytest
from rest_framework.test import APIClient

from accounts.api_keys import api_key_create
from conversations import idempotency_store
from core.redis_store import redis_client
from tests.server import running_servers
from tests.support import MODEL, chunks_of, events_of, user, wait_for

KEY = "order-42"


def post_chat(client: APIClient, body: dict | str, key: str | None = KEY, **headers):
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post("/chat/", data, content_type="application/json", **headers)


def post_completion(client: APIClient, body: dict, key: str | None = KEY, session: str | None = None, **headers):
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    if session is not None:
        headers["HTTP_X_SESSION_ID"] = session
    return client.post("/v1/chat/completions", body, format="json", **headers)


def messages_of(client: APIClient, session_id: str = "s1") -> list[str]:
    return [m["content"] for m in client.get(f"/chat/sessions/{session_id}").json()["messages"]]


def key_client(admin_id: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(admin_id=admin_id, name='retries')[1]}")
    return client


def test_a_retry_gets_the_first_answer_without_a_second_turn(history_backend, alice_client, fake_groq):
    first = post_chat(alice_client, {"session_id": "s1", "message": "pay the invoice"})
    # The same JSON written otherwise: other key order, other spacing.
    retry = post_chat(alice_client, '{ "message" : "pay the invoice",\n "session_id":"s1" }')

    assert first.status_code == retry.status_code == HTTPStatus.OK
    assert "Idempotent-Replayed" not in first
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()
    assert len(fake_groq.chat_requests()) == 1
    assert messages_of(alice_client) == ["pay the invoice", "Echo: pay the invoice"]
    assert alice_client.get("/chat/memory/stats").json()["usage"]["requests"] == 1


def test_replays_are_counted_in_the_metrics(alice_client):
    body = {"session_id": "s1", "message": "hi"}
    post_chat(alice_client, body)
    before = replayed_count()

    post_chat(alice_client, body)

    assert replayed_count() == before + 1


def replayed_count() -> float:
    text = APIClient().get("/metrics").content.decode()
    line = next(
        (
            line
            for line in text.splitlines()
            if line.startswith('chatbot_idempotent_requests_total{outcome="replayed"}')
        ),
        None,
    )
    return float(line.split()[-1]) if line else 0.0


def test_the_same_key_with_another_body_is_a_422(alice_client, fake_groq):
    post_chat(alice_client, {"session_id": "s1", "message": "pay the invoice"})

    response = post_chat(alice_client, {"session_id": "s1", "message": "pay it twice"})

    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert response.json()["code"] == "idempotency_key_reused"
    assert len(fake_groq.chat_requests()) == 1
    assert messages_of(alice_client) == ["pay the invoice", "Echo: pay the invoice"]


def test_the_same_key_on_another_endpoint_is_a_422(alice_client):
    post_chat(alice_client, {"session_id": "s1", "message": "hi"})

    response = alice_client.post("/chat/sessions/s1/regenerate", {}, format="json", HTTP_IDEMPOTENCY_KEY=KEY)

    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY


def test_a_retry_while_the_first_is_running_is_a_409(alice_client, alice_tokens, fake_groq):
    fake_groq.add_faults({"kind": "hang", "seconds": 60})  # held upstream until the retry is answered
    body = {"session_id": "s1", "message": "slow"}
    answers = {}
    first = threading.Thread(target=lambda: answers.update(first=post_chat(alice_client, body)))
    first.start()
    wait_for(lambda: fake_groq.held == 1)

    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_tokens['access_token']}")
    during = post_chat(other, body)
    fake_groq.release()
    first.join()
    after = post_chat(other, body)

    assert during.status_code == HTTPStatus.CONFLICT
    assert during.json()["code"] == "idempotency_key_in_use"
    assert during["Retry-After"] == "1"
    assert answers["first"].status_code == HTTPStatus.OK
    assert after["Idempotent-Replayed"] == "true"
    assert after.json() == answers["first"].json()
    assert len(fake_groq.chat_requests()) == 1


def test_a_5xx_keeps_nothing_and_the_retry_is_a_new_attempt(history_backend, alice_client, fake_groq, settings):
    settings.LLM_MAX_RETRIES = 0
    fake_groq.add_faults({"kind": "status", "status": 500})
    body = {"session_id": "s1", "message": "hi"}

    failed = post_chat(alice_client, body)
    retried = post_chat(alice_client, body)
    replayed = post_chat(alice_client, body)

    assert failed.status_code == HTTPStatus.BAD_GATEWAY
    assert retried.status_code == HTTPStatus.OK and "Idempotent-Replayed" not in retried
    assert replayed["Idempotent-Replayed"] == "true"
    assert len(fake_groq.chat_requests()) == 2
    assert messages_of(alice_client) == ["hi", "Echo: hi"]


def test_a_4xx_keeps_nothing_either(alice_client, fake_groq):
    refused = post_chat(alice_client, {"session_id": "s1", "message": ""})

    answered = post_chat(alice_client, {"session_id": "s1", "message": "now with a message"})

    assert refused.status_code == HTTPStatus.BAD_REQUEST
    assert answered.status_code == HTTPStatus.OK and "Idempotent-Replayed" not in answered


def test_a_rate_limited_request_can_be_retried_with_its_key(alice_client, fake_groq, settings):
    settings.CHAT_REQUESTS_PER_MINUTE = 1
    body = {"session_id": "s1", "message": "hi"}
    post_chat(alice_client, {"session_id": "s1", "message": "first"}, key=None)

    limited = post_chat(alice_client, body)
    settings.CHAT_REQUESTS_PER_MINUTE = 0
    retried = post_chat(alice_client, body)

    assert limited.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert retried.status_code == HTTPStatus.OK and "Idempotent-Replayed" not in retried


def test_keys_belong_to_the_admin(alice_client, bob_client, fake_groq):
    alice_answer = post_chat(alice_client, {"session_id": "s1", "message": "alice"})
    bob_answer = post_chat(bob_client, {"session_id": "s1", "message": "bob"})

    assert alice_answer.status_code == bob_answer.status_code == HTTPStatus.OK
    assert "Idempotent-Replayed" not in bob_answer
    assert bob_answer.json()["response"] == "Echo: bob"
    assert len(fake_groq.chat_requests()) == 2


def test_a_token_and_an_api_key_of_one_admin_share_keys(alice, alice_client, fake_groq):
    body = {"session_id": "s1", "message": "hi"}
    first = post_chat(alice_client, body)

    by_key = post_chat(key_client(alice.id), body)
    other_body = post_chat(key_client(alice.id), {"session_id": "s1", "message": "other"})

    assert by_key["Idempotent-Replayed"] == "true"
    assert by_key.json() == first.json()
    assert other_body.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert len(fake_groq.chat_requests()) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_a_malformed_key_is_a_400_and_changes_nothing(alice_client, fake_groq, key):
    response = post_chat(alice_client, {"session_id": "s1", "message": "hi"}, key=key)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "Idempotency-Key" in response.json()["errors"]
    assert fake_groq.chat_requests() == []


def test_the_longest_key_is_accepted(alice_client):
    key = "~" * 255
    body = {"session_id": "s1", "message": "hi"}
    post_chat(alice_client, body, key=key)

    assert post_chat(alice_client, body, key=key)["Idempotent-Replayed"] == "true"


def test_an_answer_is_kept_for_the_ttl(alice, alice_client, fake_groq, settings):
    settings.IDEMPOTENCY_TTL_SECONDS = 1
    post_chat(alice_client, {"session_id": "s1", "message": "hi"})
    assert redis_client().ttl(idempotency_store.idempotency_key(alice.id, KEY)) == 1
    wait_for(lambda: not redis_client().exists(idempotency_store.idempotency_key(alice.id, KEY)))

    again = post_chat(alice_client, {"session_id": "s1", "message": "another"})

    assert again.status_code == HTTPStatus.OK and "Idempotent-Replayed" not in again


def test_a_claim_expires_if_its_process_dies(alice, alice_client, fake_groq):
    # A process that claimed the key and died before answering: its claim lapses on its own.
    idempotency_store.claim(alice.id, KEY, fingerprint="from a dead process", token="t", running_ms=100)
    wait_for(lambda: not redis_client().exists(idempotency_store.idempotency_key(alice.id, KEY)))

    response = post_chat(alice_client, {"session_id": "s1", "message": "hi"})

    assert response.status_code == HTTPStatus.OK and "Idempotent-Replayed" not in response


# --- streams ---------------------------------------------------------------------------------------


def test_a_streamed_answer_is_replayed_as_a_stream(history_backend, alice_client, fake_groq):
    body = {"session_id": "s1", "message": "tell me a story", "stream": True}
    first = events_of(b"".join(post_chat(alice_client, body).streaming_content))

    retry = post_chat(alice_client, body)

    assert retry["Idempotent-Replayed"] == "true"
    assert retry["Content-Type"] == "text/event-stream"
    replayed = events_of(b"".join(retry.streaming_content))
    assert [name for name, _ in replayed] == ["delta", "done"]
    assert replayed[0][1] == {"content": "Echo: tell me a story"}
    assert replayed[-1] == first[-1]
    assert len(fake_groq.chat_requests()) == 1
    assert messages_of(alice_client) == ["tell me a story", "Echo: tell me a story"]


def test_a_retry_takes_the_form_it_asks_for(alice_client, fake_groq):
    body = {"session_id": "s1", "message": "hi"}
    streamed = post_chat(alice_client, body, HTTP_ACCEPT="text/event-stream")
    done = events_of(b"".join(streamed.streaming_content))[-1][1]

    as_json = post_chat(alice_client, body)

    assert as_json["Idempotent-Replayed"] == "true"
    assert as_json.json() == done


def test_a_stream_that_fails_midway_keeps_nothing(alice_client, fake_groq):
    fake_groq.add_faults({"kind": "stream_error", "after_chunks": 1})
    body = {"session_id": "s1", "message": "one two three", "stream": True}
    failed = events_of(b"".join(post_chat(alice_client, body).streaming_content))

    retried = events_of(b"".join(post_chat(alice_client, body).streaming_content))

    assert failed[-1][0] == "error"
    assert retried[-1][0] == "done"
    assert len(fake_groq.chat_requests()) == 2


# --- regenerate and edit ---------------------------------------------------------------------------


def test_a_retried_regenerate_replaces_the_reply_once(history_backend, alice_client, fake_groq):
    post_chat(alice_client, {"session_id": "s1", "message": "one"}, key=None)
    fake_groq.configure(reply="another answer")

    first = alice_client.post("/chat/sessions/s1/regenerate", {}, format="json", HTTP_IDEMPOTENCY_KEY=KEY)
    retry = alice_client.post("/chat/sessions/s1/regenerate", {}, format="json", HTTP_IDEMPOTENCY_KEY=KEY)

    assert first.status_code == HTTPStatus.OK
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()
    assert len(fake_groq.chat_requests()) == 2
    assert alice_client.get("/chat/sessions/s1").json()["usage"]["requests"] == 2


def test_a_retried_edit_is_replayed_and_another_session_is_another_request(alice_client, fake_groq):
    for session_id in ("s1", "s2"):
        post_chat(alice_client, {"session_id": session_id, "message": "one"}, key=None)

    def edit(session_id: str):
        return alice_client.post(
            f"/chat/sessions/{session_id}/edit", {"message": "uno"}, format="json", HTTP_IDEMPOTENCY_KEY=KEY
        )

    first, retry, elsewhere = edit("s1"), edit("s1"), edit("s2")

    assert retry["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()
    assert elsewhere.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert messages_of(alice_client, "s2") == ["one", "Echo: one"]


# --- /v1/chat/completions --------------------------------------------------------------------------


def test_a_retried_completion_gets_the_first_one(history_backend, alice_client, fake_groq):
    body = {"model": MODEL, "messages": [user("Hello!")]}
    first = post_completion(alice_client, body, session="s1")
    retry = post_completion(alice_client, body, session="s1")

    assert retry["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()
    assert retry["X-Session-Id"] == "s1"
    assert len(fake_groq.chat_requests()) == 1
    assert messages_of(alice_client) == ["Hello!", "Echo: Hello!"]


def test_another_session_header_is_another_request(alice_client, fake_groq):
    body = {"model": MODEL, "messages": [user("Hello!")]}
    post_completion(alice_client, body, session="s1")

    for session in ("s2", None):
        response = post_completion(alice_client, body, session=session)
        assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
        assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert len(fake_groq.chat_requests()) == 1


def test_v1_errors_about_keys_take_openais_shape(alice_client, fake_groq):
    response = post_completion(alice_client, {"model": MODEL, "messages": [user("hi")]}, key="")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"]["param"] == "Idempotency-Key"


@pytest.mark.parametrize("include_usage", [False, True])
def test_a_streamed_completion_is_replayed_as_the_same_chunks(alice_client, fake_groq, include_usage):
    body = {"model": MODEL, "messages": [user("tell me a story")], "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    first = chunks_of(post_completion(alice_client, body))

    retry = post_completion(alice_client, body)

    assert retry["Idempotent-Replayed"] == "true"
    replayed = chunks_of(retry)
    assert replayed[-1] == "[DONE]"
    assert {c["id"] for c in replayed[:-1]} == {first[0]["id"]}
    assert {c["created"] for c in replayed[:-1]} == {first[0]["created"]}

    def text(chunks: list) -> str:
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1] if c["choices"])

    assert text(replayed) == text(first) == "Echo: tell me a story"
    assert replayed[-2 if not include_usage else -3]["choices"][0]["finish_reason"] == "stop"
    if include_usage:
        assert replayed[-2]["usage"] == first[-2]["usage"]
    assert len(fake_groq.chat_requests()) == 1


def test_a_streamed_tool_call_is_replayed(alice_client, fake_groq):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    body = {"model": MODEL, "messages": [user("find it")], "tools": tools, "stream": True}
    chunks_of(post_completion(alice_client, body))

    replayed = chunks_of(post_completion(alice_client, body))

    calls = [call for c in replayed[:-1] if c["choices"] for call in c["choices"][0]["delta"].get("tool_calls", [])]
    assert [(call["index"], call["function"]["name"]) for call in calls] == [(0, "lookup")]
    assert json.loads(calls[0]["function"]["arguments"]) == {"text": "find it"}
    assert replayed[-2]["choices"][0]["finish_reason"] == "tool_calls"


# --- two gunicorn instances on one Redis, and OpenAI's SDK -------------------------------------------


@pytest.fixture(scope="module")
def instances(redis_topology: str) -> Iterator[tuple[str, str]]:
    with running_servers(2, HISTORY_BACKEND="redis") as (first, second):
        yield first, second


def test_a_key_holds_across_instances(instances, alice, fake_groq):
    first, second = instances
    headers = {"Authorization": f"Bearer {api_key_create(admin_id=alice.id, name='x')[1]}", "Idempotency-Key": KEY}
    body = {"session_id": "s1", "message": "hi"}

    answered = httpx.post(f"{first}/chat/", json=body, headers=headers, timeout=30)
    replayed = httpx.post(f"{second}/chat/", json=body, headers=headers, timeout=30)

    assert answered.status_code == HTTPStatus.OK
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == answered.json()
    assert len(fake_groq.chat_requests()) == 1


def test_openais_sdk_reads_a_replayed_stream(instances, alice, fake_groq):
    key = api_key_create(admin_id=alice.id, name="sdk")[1]
    client = openai.OpenAI(base_url=f"{instances[0]}/v1", api_key=key, max_retries=0)

    def ask():
        return client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=[user("tell me a story")],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"Idempotency-Key": KEY},
        )

    first, retry = list(ask().parse()), ask()
    replayed = list(retry.parse())

    assert retry.headers["Idempotent-Replayed"] == "true"
    assert "".join(c.choices[0].delta.content or "" for c in replayed if c.choices) == "Echo: tell me a story"
    assert [c.id for c in replayed] == [first[0].id] * len(replayed)
    assert replayed[-2].choices[0].finish_reason == "stop"
    assert replayed[-1].usage == first[-1].usage
    assert len(fake_groq.chat_requests()) == 1


def test_the_schema_documents_the_key_and_the_replay_header(api):
    paths = api.get("/openapi.json").json()["paths"]

    for path in (
        "/chat",
        "/chat/sessions/{session_id}/regenerate",
        "/chat/sessions/{session_id}/edit",
        "/v1/chat/completions",
    ):
        operation = paths[path]["post"]
        assert "Idempotency-Key" in [p["name"] for p in operation["parameters"] if p["in"] == "header"]
        assert "Idempotent-Replayed" in operation["responses"]["200"]["headers"]
        assert operation["responses"]["422"]["content"] == operation["responses"]["400"]["content"]
        assert "Idempotency-Key" in operation["responses"]["409"]["description"]
    assert "Idempotency-Key" not in json.dumps(paths["/admin/test-chat"])
