from __future__ import annotations

import threading
from http import HTTPStatus

import pytest
from rest_framework.test import APIClient

from conversations.history import SessionBusy
from conversations.limits import AdminSlot, turn_hold_seconds
from conversations.stores import history_store
from core.redis_store import redis_client
from tests.support import chat, wait_for


def test_an_admin_over_its_requests_per_minute_gets_429(alice_client, bob_client, settings):
    settings.CHAT_REQUESTS_PER_MINUTE = 3
    for _ in range(3):
        assert chat(alice_client, "hi").status_code == HTTPStatus.OK

    response = chat(alice_client, "hi")

    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response.json()["code"] == "chat_limit_exceeded"
    assert "CHAT_REQUESTS_PER_MINUTE" in response.json()["detail"]
    assert 1 <= int(response["Retry-After"]) <= 60
    assert chat(bob_client, "hi").status_code == HTTPStatus.OK  # the limit is per admin
    assert alice_client.get("/chat/sessions/s1").json()["message_count"] == 6


def test_an_admin_over_its_concurrent_chats_gets_429(alice_client, alice_tokens, fake_groq, settings):
    settings.CHAT_MAX_CONCURRENT = 2
    fake_groq.add_faults(*[{"kind": "hang", "seconds": 60}] * 2)  # both held upstream until the third is answered
    results = []

    def send(session: str) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_tokens['access_token']}")
        results.append(chat(client, "hi", session_id=session).status_code)

    threads = [threading.Thread(target=send, args=(f"s{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    wait_for(lambda: fake_groq.held == 2)  # both slots taken
    third = chat(alice_client, "hi", session_id="s3")
    fake_groq.release()
    for thread in threads:
        thread.join()

    assert third.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert third["Retry-After"] == "1"
    assert results == [200, 200]
    # Slots are given back when the turns end.
    assert chat(alice_client, "hi", session_id="s3").status_code == HTTPStatus.OK


def test_a_stream_holds_its_slot_until_it_ends(alice_client, fake_groq, settings):
    settings.CHAT_MAX_CONCURRENT = 1
    fake_groq.configure(chunk_delay=0.1)
    response = alice_client.post(
        "/chat/", {"session_id": "a", "message": "one two three", "stream": True}, format="json"
    )
    chunks = iter(response.streaming_content)
    next(chunks)

    assert chat(alice_client, "hi", session_id="b").status_code == HTTPStatus.TOO_MANY_REQUESTS

    b"".join(chunks)
    assert chat(alice_client, "hi", session_id="b").status_code == HTTPStatus.OK


def test_a_body_over_the_limit_is_413(alice_client, settings):
    settings.MAX_REQUEST_BYTES = 2048

    response = alice_client.post("/chat/", {"session_id": "a", "message": "x" * 3000}, format="json")

    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert response.json()["code"] == "request_too_large"
    assert alice_client.get("/chat/sessions").json()["count"] == 0


def test_chats_beyond_the_process_cap_get_503_whoever_sends_them(alice_client, bob_client, fake_groq, settings):
    settings.MAX_CHATS_IN_FLIGHT = 1
    fake_groq.configure(chunk_delay=0.1)
    held = alice_client.post("/chat/", {"session_id": "a", "message": "one two three", "stream": True}, format="json")
    chunks = iter(held.streaming_content)
    next(chunks)

    busy = chat(bob_client, "hi", session_id="b")
    v1 = bob_client.post(
        "/v1/chat/completions",
        {"model": settings.GROQ_MODEL_NAME, "messages": [{"role": "user", "content": "hi"}]},
        format="json",
    )
    test_chat = bob_client.post("/admin/test-chat", {"message": "hi"}, format="json")

    assert busy.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert busy["Retry-After"] == "1"
    assert busy.json()["code"] == "server_busy"
    assert "MAX_CHATS_IN_FLIGHT (1)" in busy.json()["detail"]
    assert v1.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert v1.json()["error"]["code"] == "server_busy"
    assert test_chat.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert len(fake_groq.chat_requests()) == 1
    # A refused chat counts nothing against its admin.
    assert bob_client.get("/chat/memory/stats").json()["usage"]["requests"] == 0

    b"".join(chunks)
    assert chat(bob_client, "hi", session_id="b").status_code == HTTPStatus.OK


def test_a_stream_the_client_leaves_gives_its_process_slot_back(alice_client, fake_groq, settings):
    settings.MAX_CHATS_IN_FLIGHT = 1
    fake_groq.configure(chunk_delay=0.05, reply=" ".join(["word"] * 200))
    held = alice_client.post("/chat/", {"session_id": "a", "message": "hi", "stream": True}, format="json")
    next(iter(held.streaming_content))

    held.close()

    wait_for(lambda: chat(alice_client, "hi", session_id="b").status_code == HTTPStatus.OK)


def test_a_turn_that_waits_for_its_session_counts_once_and_gives_its_slot_back(history_backend, alice, settings):
    settings.CHAT_SESSION_WAIT_SECONDS = 0.2
    store = history_store()
    holder = AdminSlot(alice.id)  # its keys: the admin's counter this minute and its chats in flight
    with store.session_turn(alice.id, "s1", hold_seconds=turn_hold_seconds()):
        with pytest.raises(SessionBusy), store.session_turn(alice.id, "s1", hold_seconds=turn_hold_seconds()):
            pass  # pragma: no cover - never entered
        assert redis_client().zcard(holder.active_key) == 1  # only the holder's slot

    assert redis_client().zcard(holder.active_key) == 0
    assert int(redis_client().get(holder.keys()[0])) == 2  # the waiting turn's retries counted once
