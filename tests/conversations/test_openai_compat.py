"""/v1/chat/completions and /v1/models in OpenAI's shapes, stateless or with X-Session-Id memory."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from accounts.api_keys import api_key_create
from conversations.openai.wire import _data, completion_chunks
from llm_provider.types import StreamDelta
from tests.support import MODEL, chat, chunks_of, complete, sent_messages, user


def test_a_completion_in_openais_shape(alice_client):
    response = complete(alice_client, user("Hello!"))

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == MODEL
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Echo: Hello!"},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_without_a_session_the_messages_go_upstream_as_given_and_nothing_is_stored(alice_client, fake_groq):
    messages = [
        {"role": "system", "content": "Be brief."},
        user("one"),
        {"role": "assistant", "content": "uno"},
        user("two"),
    ]

    complete(alice_client, *messages)

    assert sent_messages(fake_groq) == [messages]
    assert alice_client.get("/chat/sessions").json()["count"] == 0


def test_text_parts_are_joined(alice_client, fake_groq):
    complete(alice_client, {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]})
    assert sent_messages(fake_groq) == [[user("ab")]]


def test_options_go_upstream(alice_client, fake_groq):
    complete(alice_client, user("hi"), temperature=0.2, max_completion_tokens=50, n=1, user="someone", top_p=1)

    sent = fake_groq.chat_requests()[0]["json"]
    assert sent["temperature"] == 0.2
    assert sent["max_tokens"] == 50


def test_with_a_session_the_history_is_kept_like_chat(history_backend, alice_client, fake_groq):
    complete(alice_client, {"role": "system", "content": "Be brief."}, user("first"), session="s1")
    response = complete(alice_client, {"role": "system", "content": "Be brief."}, user("second"), session="s1")

    assert response["X-Session-Id"] == "s1"
    assert sent_messages(fake_groq)[1] == [
        {"role": "system", "content": "Be brief."},
        user("first"),
        {"role": "assistant", "content": "Echo: first"},
        user("second"),
    ]
    session = alice_client.get("/chat/sessions/s1").json()
    assert [m["content"] for m in session["messages"]] == ["first", "Echo: first", "second", "Echo: second"]
    assert session["usage"]["requests"] == 2


def test_a_session_is_shared_with_chat(alice_client, fake_groq):
    chat(alice_client, "from /chat/", session_id="shared")

    complete(alice_client, user("from /v1"), session="shared")

    assert sent_messages(fake_groq)[1] == [
        user("from /chat/"),
        {"role": "assistant", "content": "Echo: from /chat/"},
        user("from /v1"),
    ]


def test_sessions_stay_isolated_per_admin(alice_client, bob_client, fake_groq):
    complete(alice_client, user("alice's secret"), session="same")

    complete(bob_client, user("hello"), session="same")

    assert sent_messages(fake_groq)[1] == [user("hello")]


def test_usage_counts_for_the_admin_with_or_without_a_session(alice_client):
    complete(alice_client, user("stateless"))
    complete(alice_client, user("kept"), session="s")

    usage = alice_client.get("/chat/memory/stats").json()["usage"]
    assert usage["requests"] == 2 and usage["total_tokens"] > 0
    assert alice_client.get("/admin/status").json()["usage"]["requests"] == 2


def test_an_api_key_works_as_the_bearer(alice):
    from rest_framework.test import APIClient

    _, raw = api_key_create(admin_id=alice.id)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert complete(client, user("hi")).status_code == HTTPStatus.OK
    assert client.get("/v1/models").status_code == HTTPStatus.OK


def test_a_stream_of_openai_chunks(alice_client):
    response = complete(alice_client, user("tell me a story"), stream=True)

    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"] == "text/event-stream"
    *chunks, done = chunks_of(response)
    assert done == "[DONE]"
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "Echo: tell me a story"
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert "usage" not in chunks[0]


@pytest.mark.parametrize("include_usage", [False, True])
def test_a_text_piece_is_the_chunk_json_dumps_makes_byte_for_byte(include_usage):
    text = 'Ünïcode "quoted" \\ \n\t\u2028 and 😀'
    chunks = completion_chunks(
        StreamDelta(text, model=MODEL),
        (piece for piece in [StreamDelta(text)]),  # a generator: the stream closes what it reads
        completion_id="chatcmpl-1",
        created=1,
        model=MODEL,
        include_usage=include_usage,
    )
    envelope = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    envelope |= {"system_fingerprint": None, **({"usage": None} if include_usage else {})}
    choice = {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}

    _role, *pieces, _done = list(chunks)

    assert pieces == [_data({**envelope, "choices": [choice]})] * 2


def test_a_stream_with_usage_ends_with_a_usage_chunk(alice_client):
    response = complete(alice_client, user("hi"), stream=True, stream_options={"include_usage": True})

    *chunks, usage_chunk, done = chunks_of(response)
    assert done == "[DONE]"
    assert all(c["usage"] is None for c in chunks)
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["total_tokens"] > 0


def test_a_streamed_turn_is_stored_in_the_session(alice_client):
    b"".join(complete(alice_client, user("hi"), session="s", stream=True).streaming_content)

    assert alice_client.get("/chat/sessions/s").json()["message_count"] == 2


def test_a_failure_midway_is_an_error_event_without_done(alice_client, fake_groq):
    fake_groq.add_faults({"kind": "stream_error", "after_chunks": 1})

    chunks = chunks_of(complete(alice_client, user("one two three"), stream=True))

    assert chunks[-1]["error"]["code"] == "upstream_stream_error"
    assert "[DONE]" not in chunks


def test_it_rejects_a_missing_token_in_openais_error_shape(api):
    response = complete(api, user("hi"))

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert error["code"] == "not_authenticated"
    assert set(error) == {"message", "type", "code", "param"}


def test_it_rejects_a_bad_api_key(api, alice):
    api.credentials(HTTP_AUTHORIZATION="Bearer cgk_wrong")

    response = complete(api, user("hi"))

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_it_rejects_an_unknown_model_as_openai_does(alice_client):
    response = complete(alice_client, user("hi"), model="gpt-4o")

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json()["error"] == {
        "message": "The model 'gpt-4o' does not exist here; see GET /v1/models.",
        "type": "invalid_request_error",
        "code": "model_not_found",
        "param": "model",
    }


def test_a_validation_error_names_the_parameter(alice_client):
    response = complete(alice_client, user("hi"), {"role": "wizard", "content": "x"})

    assert response.status_code == HTTPStatus.BAD_REQUEST
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "messages[1].role"


def test_it_refuses_parameters_groq_refuses(alice_client, fake_groq):
    for name, value in [("logprobs", True), ("logit_bias", {"50256": -100}), ("functions", []), ("foo", 1)]:
        response = complete(alice_client, user("hi"), **{name: value})

        assert response.status_code == HTTPStatus.BAD_REQUEST, name
        assert response.json()["error"]["param"] == name
    assert fake_groq.chat_requests() == []


def test_it_refuses_images(alice_client):
    image = {"type": "image_url", "image_url": {"url": "data:,"}}
    response = complete(alice_client, {"role": "user", "content": [image]})
    assert response.json()["error"]["param"] == "messages[0].content"


def test_it_refuses_n_above_one_and_too_many_tokens(alice_client, settings):
    assert complete(alice_client, user("hi"), n=2).json()["error"]["param"] == "n"
    assert complete(alice_client, user("hi"), max_tokens=settings.MAX_TOKENS + 1).json()["error"]["param"] == (
        "max_tokens"
    )


def test_it_refuses_a_bad_session_id(alice_client):
    response = complete(alice_client, user("hi"), session="no spaces")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"]["param"] == "X-Session-Id"


def test_an_upstream_rate_limit_is_a_429_with_retry_after(alice_client, fake_groq, settings):
    settings.LLM_MAX_RETRIES = 0
    fake_groq.add_faults({"kind": "status", "status": 429, "retry_after": 7})

    response = complete(alice_client, user("hi"))

    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response["Retry-After"] == "7"
    assert response.json()["error"]["type"] == "rate_limit_error"


def test_a_stream_that_fails_before_it_starts_gets_its_status(alice_client, fake_groq, settings):
    settings.LLM_MAX_RETRIES = 0
    fake_groq.add_faults({"kind": "status", "status": 503})

    response = complete(alice_client, user("hi"), stream=True)

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["error"]["type"] == "server_error"


def test_the_models_list(alice_client, settings):
    settings.CHAT_ALLOWED_MODELS = ["openai/gpt-oss-120b", MODEL]

    body = alice_client.get("/v1/models").json()

    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["openai/gpt-oss-120b", MODEL]
    assert body["data"][0]["object"] == "model"
    assert alice_client.get(f"/v1/models/{MODEL}").json()["id"] == MODEL
    assert alice_client.get("/v1/models/gpt-4o").status_code == HTTPStatus.NOT_FOUND


def test_models_need_authentication(api):
    assert api.get("/v1/models").status_code == HTTPStatus.UNAUTHORIZED


def test_an_unknown_v1_path_answers_in_openais_shape(alice_client):
    response = alice_client.post("/v1/embeddings", {}, format="json")

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json()["error"]["code"] == "unknown_url"
