from __future__ import annotations

import time
from http import HTTPStatus

import pytest

from tests.support import drf_objects_left_to_the_collector, events_of, sent_messages, wait_for

MODEL = "openai/gpt-oss-20b"


def stream(client, message="tell me a story", **extra):
    return client.post("/chat/", {"session_id": "s1", "message": message, "stream": True, **extra}, format="json")


def test_a_stream_sends_deltas_then_the_whole_reply(history_backend, alice_client, fake_groq):
    response = stream(alice_client)

    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    assert response["X-Accel-Buffering"] == "no"
    events = events_of(b"".join(response.streaming_content))
    deltas = [data["content"] for name, data in events if name == "delta"]
    assert len(deltas) > 1
    name, done = events[-1]
    assert name == "done"
    assert done["response"] == "".join(deltas) == "Echo: tell me a story"
    assert done["session_id"] == "s1" and done["user_id"] == "alice"
    assert done["usage"]["total_tokens"] > 0
    assert fake_groq.chat_requests()[0]["json"]["stream"] is True
    messages = alice_client.get("/chat/sessions/s1").json()["messages"]
    assert [m["content"] for m in messages] == ["tell me a story", "Echo: tell me a story"]


def test_accept_event_stream_asks_for_a_stream_too(alice_client):
    response = alice_client.post(
        "/chat/", {"session_id": "s1", "message": "hi"}, format="json", HTTP_ACCEPT="text/event-stream"
    )
    assert response.streaming
    assert events_of(b"".join(response.streaming_content))[-1][0] == "done"


def test_the_first_event_arrives_before_the_upstream_finishes(alice_client, fake_groq):
    fake_groq.configure(chunk_delay=0.2)

    started = time.monotonic()
    response = stream(alice_client, "one two three four five")
    chunks = iter(response.streaming_content)
    first = next(chunks)
    first_at = time.monotonic() - started
    rest = b"".join(chunks)
    total = time.monotonic() - started

    assert b"event: delta" in first
    assert first_at < 0.5 < total
    assert b"event: done" in rest


def test_a_failure_before_the_first_piece_keeps_its_status(alice_client, fake_groq, settings):
    settings.LLM_MAX_RETRIES = 0
    fake_groq.add_faults({"kind": "status", "status": 429, "retry_after": 3})

    response = stream(alice_client)

    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response["Retry-After"] == "3"


def test_an_error_midway_is_an_error_event_and_stores_nothing(history_backend, alice_client, fake_groq):
    fake_groq.add_faults({"kind": "stream_error", "after_chunks": 2})

    response = stream(alice_client, "one two three four")
    events = events_of(b"".join(response.streaming_content))

    assert events[0][0] == "delta"
    assert events[-1] == (
        "error",
        {"detail": events[-1][1]["detail"], "code": "upstream_stream_error", "status": 502},
    )
    assert alice_client.get("/chat/sessions/s1").status_code == HTTPStatus.NOT_FOUND


def test_a_client_that_leaves_closes_the_upstream_request(history_backend, alice_client, fake_groq):
    # The reasoning comes at once, the words every 10 s: the stream cannot end before its client leaves.
    fake_groq.configure(chunk_delay=10, reasoning=True)

    response = stream(alice_client, "one two three four five six seven eight")
    next(iter(response.streaming_content))
    response.close()  # what the WSGI server does when the client has gone

    wait_for(lambda: fake_groq.disconnects, timeout=10, what="the upstream request closed")
    assert fake_groq.disconnects == 1
    assert alice_client.get("/chat/sessions/s1").status_code == HTTPStatus.NOT_FOUND
    # The session is free again: the next message goes through.
    fake_groq.configure(chunk_delay=0)
    assert alice_client.post("/chat/", {"session_id": "s1", "message": "again"}, format="json").status_code == 200


def test_quiet_streams_get_keep_alive_comments(alice_client, fake_groq, settings):
    settings.STREAM_KEEPALIVE_SECONDS = 0.1
    fake_groq.configure(chunk_delay=0.35)

    raw = b"".join(stream(alice_client, "one two three").streaming_content)

    assert b": keep-alive\n\n" in raw
    assert events_of(raw)[-1][0] == "done"


def test_streamed_turns_feed_the_next_turn(alice_client, fake_groq):
    b"".join(stream(alice_client, "first").streaming_content)
    b"".join(stream(alice_client, "second").streaming_content)

    assert sent_messages(fake_groq)[1][:2] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "Echo: first"},
    ]


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/chat/", {"session_id": "s1", "message": "hi"}),
        ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
    ],
)
def test_a_chat_answered_leaves_its_request_and_view_to_reference_counting(alice_client, path, body, stream):
    # Left to the garbage collector, each chat's request and view reach its oldest generation while the chat
    # lasts, and a worker's full collections stop its loop (core/views.py).
    def answer():
        response = alice_client.post(path, {**body, "stream": stream}, format="json")
        assert response.status_code == HTTPStatus.OK
        assert response.streaming == stream
        if stream:
            b"".join(response.streaming_content)
        return response

    assert drf_objects_left_to_the_collector(answer) == []
