"""Attacks on `POST /chat/sessions/import`, against the real Redis and the fake upstream: numbers past what a Redis
counter holds, summaries and tool calls no chat could have stored. Each attack is a 400 naming what is wrong, and
after each one a scan of Redis finds no key without a TTL that the key map does not document as permanent."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus

import pytest
from django.conf import settings

from conversations.export_serializers import MAX_IMPORTED_USAGE
from conversations.history.base import MAX_USAGE_COUNTER
from core.redis_store import redis_admin_key, redis_client
from llm_provider.wire import MAX_CALL_TOKENS
from tests.support import chat, keys_without_ttl, sent_messages

FORMAT = "chatbot-session/1"
CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}


@pytest.fixture(autouse=True)
def _redis_history(settings) -> None:
    settings.HISTORY_BACKEND = "redis"


def document(messages: list[dict] | None = None, **extra) -> dict:
    return {"format": FORMAT, "session_id": "imported", "messages": messages or [user("hi")], **extra}


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def session_keys() -> list[bytes]:
    return list(redis_client().scan_iter(match=f"{settings.REDIS_KEY_PREFIX}:*:conv:*"))


def refused(client, body: dict) -> dict:
    """Posts an import that must be refused with a 400, storing nothing and leaving no key without a TTL."""
    response = client.post("/chat/sessions/import", body, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert response.json()["code"] == "invalid"
    assert session_keys() == []
    assert keys_without_ttl() == []
    return response.json()


@pytest.mark.parametrize("field", ["prompt_tokens", "completion_tokens", "total_tokens", "requests"])
@pytest.mark.parametrize("value", [2**63, 2**63 - 1, MAX_IMPORTED_USAGE + 1])
def test_an_import_with_a_usage_counter_over_its_maximum_is_a_400_that_stores_nothing(alice_client, field, value):
    long_replies = [m for _ in range(16) for m in (user("q"), {"role": "assistant", "content": "a" * 60_000})]

    body = refused(alice_client, document(long_replies, usage={field: value}))

    assert body["detail"].startswith(f"usage: {field}:")
    assert str(MAX_IMPORTED_USAGE) in body["detail"]


def test_an_import_at_the_usage_maximum_leaves_later_turns_working(alice_client, fake_groq):
    usage = dict.fromkeys(("prompt_tokens", "completion_tokens", "total_tokens", "requests"), MAX_IMPORTED_USAGE)
    assert alice_client.post("/chat/sessions/import", document(usage=usage), format="json").status_code == 201

    for _ in range(3):
        response = chat(alice_client, "more", session_id="imported")
        assert response.status_code == HTTPStatus.OK, response.content

    assert response.json()["session_usage"]["requests"] == MAX_IMPORTED_USAGE + 3
    assert keys_without_ttl() == []


def test_a_session_counter_at_the_integer_limit_stops_there_instead_of_breaking_the_session(alice, alice_client):
    assert chat(alice_client, "one").status_code == HTTPStatus.OK
    # What an import before the bound could leave: a counter one increment away from HINCRBY's overflow.
    redis_client().hset(redis_admin_key(alice.id, "conv", "s1", "meta"), "total_tokens", 2**63 - 1)

    response = chat(alice_client, "two")

    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["session_usage"]["total_tokens"] == MAX_USAGE_COUNTER
    assert [m["content"] for m in alice_client.get("/chat/sessions/s1").json()["messages"]][-1] == "Echo: two"
    assert keys_without_ttl() == []


@pytest.mark.parametrize(("reported", "counted"), [(2**63, MAX_CALL_TOKENS), (-5, 0)])
def test_an_upstream_count_out_of_range_leaves_the_session_working(alice_client, fake_groq, reported, counted):
    fake_groq.configure(completion_tokens=reported)

    first, second = chat(alice_client, "one"), chat(alice_client, "two")

    assert (first.status_code, second.status_code) == (HTTPStatus.OK, HTTPStatus.OK), second.content
    assert second.json()["usage"]["completion_tokens"] == counted
    assert second.json()["session_usage"]["completion_tokens"] == 2 * counted
    assert alice_client.get("/chat/memory/stats").json()["usage"]["completion_tokens"] == 2 * counted
    assert keys_without_ttl() == []


def test_a_redis_script_error_is_a_500_storage_error_logged_once_not_an_outage(alice, alice_client, caplog):
    # A key of the wrong type makes the turn's script fail inside Redis: Redis answered, so it is no outage.
    meta = redis_admin_key(alice.id, "conv", "s1", "meta")
    redis_client().set(meta, "not a hash", ex=60)

    with caplog.at_level(logging.ERROR):
        response = chat(alice_client, "hi")

    assert response.status_code == HTTPStatus.INTERNAL_SERVER_ERROR
    assert response.json()["code"] == "storage_error"
    assert "Retry-After" not in response
    assert "unavailable" not in response.json()["detail"]
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    assert keys_without_ttl() == []


def test_a_summary_longer_than_a_fold_is_a_400(alice_client):
    longest = 4 * settings.HISTORY_SUMMARY_MAX_TOKENS

    body = refused(alice_client, document(summary="s" * (longest + 1)))

    assert body["detail"].startswith("summary:") and "HISTORY_SUMMARY_MAX_TOKENS" in body["detail"]
    ok = alice_client.post("/chat/sessions/import", document(summary="s" * longest), format="json")
    assert ok.status_code == HTTPStatus.CREATED


def test_a_summary_over_max_message_chars_is_a_400(alice_client, settings):
    settings.HISTORY_SUMMARY_MAX_TOKENS = 100_000
    settings.MAX_MESSAGE_CHARS = 1000

    body = refused(alice_client, document(summary="s" * 1001))

    assert body["detail"].startswith("summary:") and "MAX_MESSAGE_CHARS" in body["detail"]


def test_an_imported_summary_goes_upstream_after_the_system_prompt_even_with_summaries_off(alice_client, fake_groq):
    assert settings.HISTORY_SUMMARY is False
    alice_client.post("/chat/sessions/import", document(summary="They met in Oslo."), format="json")

    chat(alice_client, "where?", session_id="imported")

    assert {"role": "system", "content": "Summary of the earlier conversation:\nThey met in Oslo."} in sent_messages(
        fake_groq
    )[-1]


def tool_exchange(call: dict, answer: dict | None = None) -> list[dict]:
    return [
        user("look it up"),
        {"role": "assistant", "content": "", "tool_calls": [call]},
        answer or {"role": "tool", "content": "42", "tool_call_id": "call_1"},
        {"role": "assistant", "content": "It is 42."},
    ]


def with_function(**changes) -> dict:
    return {**CALL, "function": {**CALL["function"], **changes}}


@pytest.mark.parametrize(
    ("messages", "named"),
    [
        (tool_exchange(with_function(arguments={"q": "x"})), "arguments"),
        (tool_exchange(with_function(arguments="x" * 70_000)), "MAX_REQUEST_CHARS"),
        (tool_exchange({**CALL, "index": 0}), "index"),
        (tool_exchange(with_function(name="look up")), "name"),
        (tool_exchange(with_function(extra="x")), "extra"),
        (tool_exchange({**CALL, "type": "code"}), "type"),
        (tool_exchange(CALL, {"role": "tool", "content": "42", "tool_call_id": "call_9"}), "call_9"),
        (tool_exchange(CALL, {"role": "tool", "content": "4" * 4001, "tool_call_id": "call_1"}), "MAX_MESSAGE_CHARS"),
        ([user("hi"), {"role": "tool", "content": "42", "tool_call_id": "call_1"}], "call_1"),
    ],
    ids=[
        "object-arguments",
        "oversize-arguments",
        "extra-call-field",
        "bad-function-name",
        "extra-function-field",
        "not-a-function",
        "answers-no-call",
        "oversize-tool-result",
        "tool-result-without-a-call",
    ],
)
def test_an_import_with_a_tool_call_the_v1_api_would_refuse_is_a_400(alice_client, messages, named):
    body = refused(alice_client, document(messages))

    assert body["detail"].startswith("messages:")
    assert named in str(body["errors"])


def test_a_valid_tool_conversation_still_imports_and_goes_upstream(alice_client, fake_groq):
    response = alice_client.post("/chat/sessions/import", document(tool_exchange(CALL)), format="json")
    assert response.status_code == HTTPStatus.CREATED, response.content

    chat(alice_client, "and then?", session_id="imported")

    sent = fake_groq.chat_requests()[-1]["json"]["messages"]
    assert [m["role"] for m in sent][-5:] == ["user", "assistant", "tool", "assistant", "user"]
    assert sent[-4]["tool_calls"] == [CALL]
    assert keys_without_ttl() == []


def test_a_tool_call_an_upstream_stored_with_more_fields_is_exported_as_an_import_takes_it(alice, alice_client):
    call_with_extras = {**CALL, "index": 0, "function": {**CALL["function"], "extra": 1}}
    stored = [json.dumps({**m, "at": "2026-12-01T00:00:00.000Z"}) for m in tool_exchange(call_with_extras)]
    client = redis_client()
    client.rpush(redis_admin_key(alice.id, "conv", "s1", "messages"), *stored)
    client.hset(redis_admin_key(alice.id, "conv", "s1", "meta"), "created_at", "2026-12-01T00:00:00.000Z")

    exported = alice_client.get("/chat/sessions/s1/export").json()
    response = alice_client.post("/chat/sessions/import", {**exported, "session_id": "copy"}, format="json")

    assert exported["messages"][1]["tool_calls"] == [CALL]
    assert response.status_code == HTTPStatus.CREATED, response.content
