"""How many sessions are kept: MAX_SESSIONS_PER_ADMIN per admin (its least recently used go first) and
MAX_CACHE_SIZE in all (a full store refuses new sessions), so no admin's activity drops another admin's session."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import httpx
import pytest
from rest_framework.test import APIClient

from tests.server import running_server
from tests.support import ALICE_PASSWORD, BOB_PASSWORD, chat, wait_for


@pytest.fixture
def caps(settings):
    def set_caps(*, total: int, per_admin: int) -> None:
        settings.MAX_SESSIONS = total
        settings.MAX_SESSIONS_PER_ADMIN = per_admin

    return set_caps


def session_ids(client: APIClient) -> set[str]:
    return {s["session_id"] for s in client.get("/chat/sessions").json()["sessions"]}


def open_sessions(client: APIClient, *names: str) -> None:
    for name in names:
        response = chat(client, f"hello {name}", name)
        assert response.status_code == HTTPStatus.OK, response.content


def test_bob_opening_many_sessions_never_evicts_alices(history_backend, caps, alice_client, bob_client):
    caps(total=6, per_admin=3)
    open_sessions(alice_client, "a1", "a2")

    open_sessions(bob_client, *(f"b{i}" for i in range(10)))

    assert session_ids(alice_client) == {"a1", "a2"}
    assert alice_client.get("/chat/sessions/a1").json()["message_count"] == 2
    assert session_ids(bob_client) == {"b7", "b8", "b9"}


def test_an_admin_at_its_cap_loses_only_its_own_least_recently_used_session(
    history_backend, caps, alice_client, bob_client
):
    caps(total=100, per_admin=3)
    open_sessions(bob_client, "b1")
    open_sessions(alice_client, "a1", "a2", "a3")
    open_sessions(alice_client, "a1")  # a2 is now alice's least recently used

    open_sessions(alice_client, "a4")

    assert session_ids(alice_client) == {"a1", "a3", "a4"}
    assert alice_client.get("/chat/sessions/a2").status_code == HTTPStatus.NOT_FOUND
    assert session_ids(bob_client) == {"b1"}
    assert alice_client.get("/chat/memory/stats").json()["sessions_stored"] == 4


def test_a_full_store_refuses_new_sessions_and_keeps_the_ones_it_has(
    history_backend, caps, alice_client, bob_client, fake_groq, settings
):
    caps(total=3, per_admin=2)
    settings.LLM_MAX_RETRIES = 0
    fake_groq.add_faults({"kind": "status", "status": 500})
    assert chat(alice_client, "fails", "a0").status_code == HTTPStatus.BAD_GATEWAY  # takes no place
    open_sessions(alice_client, "a1", "a2")
    open_sessions(bob_client, "b1")
    asked = len(fake_groq.chat_requests())

    refused = chat(bob_client, "hello", "b2")

    assert refused.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert refused.json()["code"] == "history_full"
    assert 0 < int(refused["Retry-After"]) <= settings.MEMORY_TTL_SECONDS
    assert len(fake_groq.chat_requests()) == asked  # refused before the model was asked
    open_sessions(bob_client, "b1")  # an existing session goes on
    open_sessions(alice_client, "a3")  # alice is at her cap: a3 takes her a1's place, the store does not grow
    assert session_ids(alice_client) == {"a2", "a3"}
    assert alice_client.get("/chat/memory/stats").json()["sessions_stored"] == 3
    assert bob_client.delete("/chat/sessions/b1").status_code == HTTPStatus.NO_CONTENT
    open_sessions(bob_client, "b2")  # the deleted session's place is free again


def test_every_way_of_opening_a_session_is_refused_when_the_store_is_full(
    history_backend, caps, alice_client, bob_client
):
    caps(total=1, per_admin=1)
    open_sessions(alice_client, "a1")

    streamed = bob_client.post("/chat/", {"session_id": "b1", "message": "hi", "stream": True}, format="json")
    openai = bob_client.post(
        "/v1/chat/completions",
        {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "hi"}]},
        format="json",
        HTTP_X_SESSION_ID="b1",
    )

    assert streamed.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert streamed.json()["code"] == "history_full"
    assert openai.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert "Retry-After" in openai
    assert chat(bob_client, "no session, nothing stored", session_id=None).status_code == HTTPStatus.SERVICE_UNAVAILABLE
    stateless = bob_client.post(
        "/v1/chat/completions",
        {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "hi"}]},
        format="json",
    )
    assert stateless.status_code == HTTPStatus.OK


def test_concurrent_new_sessions_never_take_more_places_than_there_are(
    history_backend, caps, alice_tokens, bob_client, fake_groq, settings
):
    caps(total=4, per_admin=4)
    settings.CHAT_REQUESTS_PER_MINUTE = 0
    fake_groq.configure(latency=0.5)  # every turn is admitted while all the others are still in flight
    alice_client = APIClient()
    alice_client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_tokens['access_token']}")
    turns = [(client, f"{name}{i}") for i in range(4) for client, name in ((alice_client, "a"), (bob_client, "b"))]

    with ThreadPoolExecutor(len(turns)) as pool:
        statuses = list(pool.map(lambda turn: chat(turn[0], "hello", turn[1]).status_code, turns))

    assert sorted(statuses) == [HTTPStatus.OK] * 4 + [HTTPStatus.SERVICE_UNAVAILABLE] * 4
    assert len(session_ids(alice_client) | session_ids(bob_client)) == 4
    assert bob_client.get("/chat/memory/stats").json()["sessions_stored"] == 4


def test_an_expired_session_gives_its_place_back(history_backend, caps, alice_client, bob_client, settings):
    caps(total=1, per_admin=1)
    settings.MEMORY_TTL_SECONDS = 1
    open_sessions(alice_client, "a1")
    assert chat(bob_client, "hello", "b1").status_code == HTTPStatus.SERVICE_UNAVAILABLE

    wait_for(lambda: chat(bob_client, "hello", "b1").status_code == HTTPStatus.OK, timeout=10)

    assert session_ids(alice_client) == set()


@pytest.mark.parametrize("backend", ["locmem", "redis"])
def test_the_reported_case_one_admin_opening_sessions_under_gunicorn(backend, alice, bob, fake_groq):
    """Under gunicorn with MAX_CACHE_SIZE=50 at startup, bob opening sessions never pushes alice's out."""
    with running_server(HISTORY_BACKEND=backend, MAX_CACHE_SIZE="50") as url, httpx.Client(base_url=url) as http:

        def login(username: str, password: str) -> dict[str, str]:
            token = http.post("/admin/login", json={"username": username, "password": password}).json()
            return {"Authorization": f"Bearer {token['access_token']}"}

        def open_session(headers: dict[str, str], session_id: str) -> None:
            response = http.post("/chat/", json={"session_id": session_id, "message": "hi"}, headers=headers)
            assert response.status_code == HTTPStatus.OK, response.text

        alice_headers, bob_headers = login("alice", ALICE_PASSWORD), login("bob", BOB_PASSWORD)
        open_session(alice_headers, "a1")
        open_session(alice_headers, "a2")

        for i in range(60):
            open_session(bob_headers, f"b{i}")

        alice_sessions = http.get("/chat/sessions", headers=alice_headers).json()["sessions"]
        bob_sessions = http.get("/chat/sessions", headers=bob_headers).json()["sessions"]
        assert {s["session_id"] for s in alice_sessions} == {"a1", "a2"}
        # The default per-admin cap is a tenth of MAX_CACHE_SIZE.
        assert {s["session_id"] for s in bob_sessions} == {f"b{i}" for i in range(55, 60)}
