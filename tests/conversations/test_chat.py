from __future__ import annotations

import json
import threading
import time
from http import HTTPStatus

import pytest
from django.core.checks import run_checks

from conversations.serializers import ChatResponseSerializer, chat_response_data
from conversations.services import ChatReply
from tests.fake_groq import FakeGroq
from tests.support import chat, sent_messages, wait_for


def test_the_seed_example_works(alice_client, fake_groq):
    response = alice_client.post(
        "/chat/", {"session_id": "chat123", "message": "Hello! How are you today?"}, format="json"
    )

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["response"] == "Echo: Hello! How are you today?"
    assert body["session_id"] == "chat123"
    assert body["llm_provider"] == "chatgroq"
    assert body["model"] == "openai/gpt-oss-20b"
    assert body["user_id"] == "alice"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"] > 0


def test_chat_without_the_slash_works_too(alice_client):
    assert alice_client.post("/chat", {"session_id": "a", "message": "hi"}, format="json").status_code == 200


def test_the_request_goes_upstream_as_groq_expects(alice_client, fake_groq):
    chat(alice_client, "hi")

    (request,) = fake_groq.chat_requests()
    assert request["headers"]["authorization"] == "Bearer test-key"
    body = request["json"]
    assert body["model"] == "openai/gpt-oss-20b"
    assert body["temperature"] == 0.7
    assert body["max_tokens"] == 1024  # not Groq's own host, so the widely known name
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_history_goes_upstream_with_each_turn(history_backend, alice_client, fake_groq):
    chat(alice_client, "first")
    chat(alice_client, "second")

    assert sent_messages(fake_groq)[1] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "Echo: first"},
        {"role": "user", "content": "second"},
    ]


def test_a_missing_session_id_starts_a_new_session(alice_client):
    first = chat(alice_client, "hello", session_id=None).json()["session_id"]
    second = chat(alice_client, "hello", session_id=None).json()["session_id"]

    assert first != second
    assert alice_client.get(f"/chat/sessions/{first}").json()["message_count"] == 2


def test_the_system_prompt_comes_first(alice_client, fake_groq, settings):
    settings.SYSTEM_PROMPT = "You are terse."
    chat(alice_client, "hi")
    assert sent_messages(fake_groq)[0][0] == {"role": "system", "content": "You are terse."}


def test_history_is_trimmed_to_the_newest_messages(alice_client, fake_groq, settings):
    settings.HISTORY_MAX_MESSAGES = 2
    for text in ["one", "two", "three"]:
        chat(alice_client, text)

    assert sent_messages(fake_groq)[2] == [
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "Echo: two"},
        {"role": "user", "content": "three"},
    ]


def test_request_options_are_passed_within_limits(alice_client, fake_groq, settings):
    settings.CHAT_ALLOWED_MODELS = ["openai/gpt-oss-20b", "openai/gpt-oss-120b"]

    response = chat(alice_client, "hi", model="openai/gpt-oss-120b", temperature=0.1, max_tokens=50)

    assert response.json()["model"] == "openai/gpt-oss-120b"
    body = fake_groq.chat_requests()[0]["json"]
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("openai/gpt-oss-120b", 0.1, 50)


def test_generation_options_go_upstream_as_given(alice_client, fake_groq):
    options = {
        "top_p": 0.5,
        "stop": "END",
        "seed": 42,
        "response_format": {"type": "json_object"},
        "reasoning_effort": "high",
    }

    response = chat(alice_client, "hi", **options)

    assert response.json()["response"] == '{"echo": "hi"}'
    body = fake_groq.chat_requests()[0]["json"]
    assert {name: body.get(name) for name in options} == options


def test_a_reasoning_models_thoughts_are_not_streamed_as_empty_deltas(alice_client, fake_groq):
    fake_groq.configure(reasoning=True)

    response = chat(alice_client, "hi", stream=True)

    events = b"".join(response.streaming_content).decode().split("\n\n")
    deltas = [e for e in events if e.startswith("event: delta")]
    assert deltas and all('"content": ""' not in e for e in deltas)
    assert "".join(json.loads(e.split("data: ", 1)[1])["content"] for e in deltas) == "Echo: hi"


@pytest.mark.parametrize(
    "body",
    [
        {"session_id": "s1"},
        {"session_id": "s1", "message": ""},
        {"session_id": "s1", "message": "   "},
        {"session_id": "s1", "message": "x" * 4001},
        {"session_id": "bad id!", "message": "hi"},
        {"session_id": "x" * 101, "message": "hi"},
        {"session_id": "", "message": "hi"},
        {"session_id": "s1", "message": "hi", "model": "gpt-4"},
        {"session_id": "s1", "message": "hi", "temperature": 2.5},
        {"session_id": "s1", "message": "hi", "max_tokens": 0},
        {"session_id": "s1", "message": "hi", "max_tokens": 10**6},
        {"session_id": "s1", "message": ["hi"]},
        {"session_id": "s1", "message": "hi", "top_p": 2},
        {"session_id": "s1", "message": "hi", "stop": ["a", "b", "c", "d", "e"]},
        {"session_id": "s1", "message": "hi", "seed": 1.5},
        {"session_id": "s1", "message": "hi", "response_format": {"type": "yaml"}},
        {"session_id": "s1", "message": "hi", "reasoning_effort": "max"},
    ],
)
def test_bad_input_is_400_and_changes_nothing(alice_client, fake_groq, body):
    response = alice_client.post("/chat/", body, format="json")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "invalid"
    assert fake_groq.chat_requests() == []
    assert alice_client.get("/chat/sessions").json()["count"] == 0


def test_chat_needs_a_token(api):
    assert chat(api, "hi").status_code == HTTPStatus.UNAUTHORIZED


def test_get_is_no_api_method_a_json_client_gets_405(alice_client, fake_groq):
    # Only a browser gets a page (with the POST form) for GET; the API and its schema stay POST-only.
    response = alice_client.get("/chat/")

    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert response.json()["code"] == "method_not_allowed"
    assert response["Allow"] == "POST, OPTIONS"
    assert set(alice_client.get("/openapi.json").json()["paths"]["/chat"]) == {"post"}
    assert fake_groq.chat_requests() == []


UPSTREAM_FAILURES = [
    ({"kind": "status", "status": 429, "retry_after": 7}, 429, "upstream_rate_limited"),
    ({"kind": "status", "status": 500}, 502, "upstream_error"),
    ({"kind": "status", "status": 503}, 503, "upstream_unavailable"),
    ({"kind": "malformed"}, 502, "upstream_error"),
    ({"kind": "truncated"}, 502, "upstream_error"),
    ({"kind": "status", "status": 401}, 502, "upstream_auth_failed"),
    ({"kind": "status", "status": 400, "code": "context_length_exceeded"}, 400, "context_length_exceeded"),
    ({"kind": "status", "status": 404, "code": "model_not_found"}, 503, "model_unavailable"),
    ({"kind": "status", "status": 400, "code": "model_decommissioned"}, 503, "model_unavailable"),
]


@pytest.mark.parametrize(("fault", "status", "code"), UPSTREAM_FAILURES)
def test_upstream_failures_become_clear_errors_and_store_nothing(
    history_backend, alice_client, fake_groq, settings, fault, status, code
):
    settings.LLM_MAX_RETRIES = 0
    fake_groq.add_faults({**fault, "message": "SECRET upstream text"})

    response = chat(alice_client, "hi")

    assert response.status_code == status
    body = response.json()
    assert body["code"] == code
    assert "SECRET" not in response.content.decode()
    assert alice_client.get("/chat/sessions").json()["count"] == 0
    if status == 429:
        assert response["Retry-After"] == "7"


def test_an_error_names_the_setting_to_fix(alice_client, fake_groq, settings):
    settings.GROQ_MODEL_NAME = "llama3-8b-8192"
    settings.CHAT_ALLOWED_MODELS = ["llama3-8b-8192"]
    detail = chat(alice_client, "hi").json()["detail"]
    assert "llama3-8b-8192" in detail and "GROQ_MODEL_NAME" in detail

    fake_groq.configure(api_key="another-key")
    settings.GROQ_MODEL_NAME = "openai/gpt-oss-20b"
    assert "GROQ_API_KEY" in chat(alice_client, "hi").json()["detail"]


def test_a_failed_turn_leaves_the_history_as_it_was(history_backend, alice_client, fake_groq, settings):
    settings.LLM_MAX_RETRIES = 0
    chat(alice_client, "kept")
    fake_groq.add_faults({"kind": "status", "status": 500})

    assert chat(alice_client, "lost").status_code == HTTPStatus.BAD_GATEWAY

    messages = alice_client.get("/chat/sessions/s1").json()["messages"]
    assert [m["content"] for m in messages] == ["kept", "Echo: kept"]


def test_retries_recover_from_a_rate_limit(alice_client, fake_groq, settings):
    settings.LLM_MAX_RETRIES = 1
    fake_groq.add_faults({"kind": "status", "status": 429, "retry_after": 0.2})

    started = time.monotonic()
    response = chat(alice_client, "hi")

    assert response.status_code == HTTPStatus.OK
    assert time.monotonic() - started >= 0.2
    assert len(fake_groq.chat_requests()) == 2


def test_a_hung_upstream_is_a_504_within_the_deadline(alice_client, fake_groq, settings):
    settings.LLM_TIMEOUT_SECONDS = 0.5
    fake_groq.add_faults({"kind": "hang", "seconds": 10})

    started = time.monotonic()
    response = chat(alice_client, "hi")

    assert response.status_code == HTTPStatus.GATEWAY_TIMEOUT
    assert time.monotonic() - started < 2


def test_an_unreachable_upstream_is_a_503(alice_client, settings):
    settings.GROQ_BASE_URL = "http://127.0.0.1:1/openai/v1"
    response = chat(alice_client, "hi")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["code"] == "upstream_unavailable"


def test_without_an_api_key_chat_says_so(alice_client, fake_groq, settings):
    settings.GROQ_API_KEY = ""
    response = chat(alice_client, "hi")

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "GROQ_API_KEY" in response.json()["detail"]
    assert fake_groq.chat_requests() == []


def test_any_openai_compatible_server_works_by_base_url(alice_client, settings):
    with FakeGroq(base_path="/v1", api_key="local-key") as local:
        settings.GROQ_BASE_URL = local.url
        settings.GROQ_API_KEY = "local-key"
        settings.GROQ_MODEL_NAME = "llama-3.1-8b-instant"

        response = chat(alice_client, "hi")

        assert response.status_code == HTTPStatus.OK
        assert response.json()["model"] == "llama-3.1-8b-instant"
        assert local.chat_requests()[0]["path"] == "/v1/chat/completions"


def test_admins_are_isolated(history_backend, alice_client, bob_client, fake_groq):
    chat(alice_client, "alice's secret")

    chat(bob_client, "bob here")

    assert sent_messages(fake_groq)[1] == [{"role": "user", "content": "bob here"}]
    assert [s["session_id"] for s in bob_client.get("/chat/sessions").json()["sessions"]] == ["s1"]
    bob_view = bob_client.get("/chat/sessions/s1").json()
    assert [m["content"] for m in bob_view["messages"]] == ["bob here", "Echo: bob here"]
    bob_client.delete("/chat/sessions/s1")
    assert alice_client.get("/chat/sessions/s1").json()["message_count"] == 2
    assert bob_client.delete("/chat/sessions/s1").status_code == HTTPStatus.NOT_FOUND


def test_history_expires_after_the_ttl_since_last_activity(history_backend, alice_client, fake_groq, settings):
    settings.MEMORY_TTL_SECONDS = 2
    chat(alice_client, "one")
    time.sleep(1.2)
    chat(alice_client, "two")  # activity: the TTL starts again
    time.sleep(0.9)  # past the TTL since "one" (2.1 s), 1.1 s within the one since "two"
    assert alice_client.get("/chat/sessions/s1").json()["message_count"] == 4

    time.sleep(1.3)  # past the TTL since "two"

    assert alice_client.get("/chat/sessions/s1").status_code == HTTPStatus.NOT_FOUND
    assert alice_client.get("/chat/sessions").json()["count"] == 0
    chat(alice_client, "three")
    assert sent_messages(fake_groq)[-1] == [{"role": "user", "content": "three"}]


def test_concurrent_messages_to_one_session_lose_nothing(history_backend, alice_client, alice_tokens, fake_groq):
    fake_groq.configure(latency=0.05)
    from rest_framework.test import APIClient

    def send(i: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_tokens['access_token']}")
        assert chat(client, f"message {i}").status_code == HTTPStatus.OK

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    messages = alice_client.get("/chat/sessions/s1").json()["messages"]
    assert len(messages) == 16
    users = [m["content"] for m in messages[::2]]
    assert sorted(users) == sorted(f"message {i}" for i in range(8))
    assert [m["content"] for m in messages[1::2]] == [f"Echo: {u}" for u in users]
    # Each turn saw all the turns before it.
    assert [len(sent) for sent in sent_messages(fake_groq)] == [1 + 2 * i for i in range(8)]


def test_a_session_busy_past_the_wait_is_a_409(alice_client, alice_tokens, fake_groq, settings):
    settings.CHAT_SESSION_WAIT_SECONDS = 0.1
    fake_groq.add_faults({"kind": "hang", "seconds": 60})  # held upstream until the second request is answered
    first = threading.Thread(target=chat, args=(alice_client, "slow"))
    first.start()
    # The first turn holds the session once its own request reaches the upstream (not another test's leftover).
    wait_for(lambda: any(sent[-1]["content"] == "slow" for sent in sent_messages(fake_groq)))
    from rest_framework.test import APIClient

    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_tokens['access_token']}")
    response = chat(other, "impatient")
    fake_groq.release()
    first.join()

    assert response.status_code == HTTPStatus.CONFLICT
    assert response.json()["code"] == "session_busy"


def test_a_system_check_warns_when_locmem_history_would_be_split(monkeypatch, settings):
    settings.HISTORY_BACKEND = "locmem"
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    assert any(m.id == "conversations.W001" for m in run_checks())
    settings.HISTORY_BACKEND = "redis"
    assert not any(m.id == "conversations.W001" for m in run_checks())


def test_the_reply_body_is_what_its_documented_serializer_gives():
    reply = ChatReply(
        response="Hi there",
        session_id="s1",
        llm_provider="chatgroq",
        model="openai/gpt-oss-20b",
        username="alice",
        usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        session_usage={"prompt_tokens": 6, "completion_tokens": 8, "total_tokens": 14, "requests": 2},
    )

    assert json.dumps(chat_response_data(reply)) == json.dumps(ChatResponseSerializer(reply).data)
