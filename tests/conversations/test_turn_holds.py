"""What a turn holds (its session's lock, its admin's chat slot, its budget reservation, its Idempotency-Key) stays
held for as long as the turn runs, however long its stream lasts; a turn that loses its hold stores nothing.

The hold is made short here (a small LLM_TIMEOUT_SECONDS and TURN_HOLD_MARGIN_SECONDS), and the upstream streams
its reply for longer than that."""

from __future__ import annotations

import threading
import time
from http import HTTPStatus

import pytest
from rest_framework.test import APIClient

from accounts.budgets import Budget, BudgetOwner, budget_set, budget_status
from conversations.limits import slot_hold_seconds
from core.redis_store import redis_admin_key, redis_client
from tests.support import MAX_TOKENS, ask, chat, events_of, sent_messages, worst_case

# 400 pieces 0.15 s apart: a minute, unless the test lets the stream end (let_the_streams_end) once it has seen what
# it needs while the stream runs. Each piece comes well within the upstream's read timeout.
LONG_REPLY = " ".join(f"w{i}" for i in range(400))
SHORT_REPLY = " ".join(f"w{i}" for i in range(30))  # 4.5 s: past the hold, for a test that lets it run


@pytest.fixture(autouse=True)
def short_hold(settings, fake_groq) -> None:
    settings.LLM_TIMEOUT_SECONDS = 1.0
    settings.TURN_HOLD_MARGIN_SECONDS = 0.5
    settings.CHAT_SESSION_WAIT_SECONDS = 0
    fake_groq.configure(reply=LONG_REPLY, chunk_delay=0.15)


class Stream:
    """A streamed answer read to its end in the background, as a client reads it while others send requests."""

    def __init__(self, response) -> None:
        assert response.status_code == HTTPStatus.OK, response.content
        self.raw: list[bytes] = []
        self._thread = threading.Thread(target=lambda: self.raw.extend(response.streaming_content))
        self._thread.start()

    def body(self) -> bytes:
        self._thread.join(timeout=30)
        return b"".join(self.raw)

    def events(self) -> list[tuple[str, dict]]:
        return events_of(self.body())


def let_the_streams_end(fake_groq) -> None:
    """The rest of every reply comes at once: the test has seen what it needed while the stream ran."""
    fake_groq.configure(chunk_delay=0)


def outlive_the_hold() -> None:
    """Waits until what a turn begun now would hold without renewal (its slot lasts longest) has expired."""
    time.sleep(slot_hold_seconds() + 0.3)


def streamed_chat(client: APIClient, message: str, session_id: str = "s1", **headers) -> Stream:
    body = {"session_id": session_id, "message": message, "stream": True}
    return Stream(client.post("/chat/", body, format="json", **headers))


def stored(client: APIClient, session_id: str = "s1") -> list[str]:
    response = client.get(f"/chat/sessions/{session_id}")
    return [m["content"] for m in response.json()["messages"]] if response.status_code == HTTPStatus.OK else []


def test_a_second_message_to_a_session_is_refused_while_a_long_stream_runs(history_backend, alice_client, fake_groq):
    first = streamed_chat(alice_client, "first")
    outlive_the_hold()

    second = chat(alice_client, "second")
    let_the_streams_end(fake_groq)

    assert second.status_code == HTTPStatus.CONFLICT
    assert second.json()["code"] == "session_busy"
    assert first.events()[-1][0] == "done"
    assert stored(alice_client) == ["first", LONG_REPLY]


def test_a_message_that_waits_for_a_long_stream_is_stored_after_it(history_backend, alice_client, fake_groq, settings):
    first = streamed_chat(alice_client, "first")
    outlive_the_hold()

    settings.CHAT_SESSION_WAIT_SECONDS = 10
    let_the_streams_end(fake_groq)  # the first still streams what is left as the second arrives
    second = chat(alice_client, "second")  # waits for the session

    assert second.status_code == HTTPStatus.OK
    assert first.events()[-1][0] == "done"
    assert stored(alice_client) == ["first", LONG_REPLY, "second", LONG_REPLY]
    # The second message was answered with the first exchange as its history.
    assert sent_messages(fake_groq)[1][-3:] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": LONG_REPLY},
        {"role": "user", "content": "second"},
    ]


def test_a_long_stream_keeps_its_budget_reservation(alice, alice_client, fake_groq, settings):
    fake_groq.configure(completion_tokens=MAX_TOKENS)  # every reply uses all it may
    owner = BudgetOwner("admin", alice.id)
    budget = 2 * worst_case(settings, "hi") - 1  # room for one request in flight, not two
    budget_set(owner, Budget(budget, "day"))
    first = Stream(ask(alice_client, stream=True))
    outlive_the_hold()

    second = ask(alice_client)
    let_the_streams_end(fake_groq)

    assert second.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert second.json()["error"]["code"] == "budget_exceeded"
    assert first.body().endswith(b"data: [DONE]\n\n")
    status = budget_status(owner)
    assert status is not None and 0 < status["used"] <= budget


def test_a_long_stream_keeps_its_place_among_the_admins_chats(history_backend, alice_client, fake_groq, settings):
    settings.CHAT_MAX_CONCURRENT = 1
    first = streamed_chat(alice_client, "first", session_id="a")
    outlive_the_hold()

    second = chat(alice_client, "second", session_id="b")
    let_the_streams_end(fake_groq)

    assert second.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert second.json()["code"] == "chat_limit_exceeded"
    assert first.events()[-1][0] == "done"
    assert chat(alice_client, "third", session_id="b").status_code == HTTPStatus.OK


def test_a_long_stream_to_a_new_session_keeps_its_place_in_the_store(
    history_backend, alice_client, fake_groq, settings
):
    settings.MAX_SESSIONS = 1
    first = streamed_chat(alice_client, "first", session_id="a")
    outlive_the_hold()

    second = chat(alice_client, "second", session_id="b")
    let_the_streams_end(fake_groq)

    assert second.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert second.json()["code"] == "history_full"
    assert first.events()[-1][0] == "done"
    assert [s["session_id"] for s in alice_client.get("/chat/sessions").json()["sessions"]] == ["a"]


def test_a_retry_with_the_key_of_a_long_stream_still_running_is_a_409(alice_client, fake_groq):
    headers = {"HTTP_IDEMPOTENCY_KEY": "long-one"}
    first = streamed_chat(alice_client, "first", **headers)
    outlive_the_hold()

    retry = alice_client.post(
        "/chat/", {"session_id": "s1", "message": "first", "stream": True}, format="json", **headers
    )
    let_the_streams_end(fake_groq)

    assert retry.status_code == HTTPStatus.CONFLICT
    assert retry.json()["code"] == "idempotency_key_in_use"
    assert first.events()[-1][0] == "done"
    assert len(fake_groq.chat_requests()) == 1


def test_a_turn_whose_lock_is_taken_away_stores_nothing(alice, alice_client, fake_groq, settings):
    settings.HISTORY_BACKEND = "redis"
    fake_groq.configure(reply=SHORT_REPLY)
    first = streamed_chat(alice_client, "first")
    lock = redis_admin_key(alice.id, "conv-lock", "s1")
    assert redis_client().delete(lock) == 1  # as a Redis that lost it would

    second = chat(alice_client, "second")  # takes the session while the first still streams

    assert second.status_code == HTTPStatus.OK
    name, error = first.events()[-1]
    assert name == "error"
    assert (error["code"], error["status"]) == ("hold_lost", HTTPStatus.SERVICE_UNAVAILABLE)
    assert stored(alice_client) == ["second", SHORT_REPLY]
