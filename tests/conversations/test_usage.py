"""Usage from the upstream's `usage`: tokens and requests per admin and per session, wherever they are shown."""

from __future__ import annotations

import json

from llm_provider.pricing import cost_micros, usd
from tests.support import MODEL, chat


def test_each_reply_has_its_turns_usage_and_the_sessions_totals(history_backend, alice_client):
    first = chat(alice_client, "one").json()
    second = chat(alice_client, "two").json()

    assert set(first["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens", "cost_usd"}
    assert first["session_usage"] == {**first["usage"], "requests": 1}
    assert second["session_usage"]["requests"] == 2
    assert second["session_usage"]["total_tokens"] == first["usage"]["total_tokens"] + second["usage"]["total_tokens"]


def test_a_streamed_reply_ends_with_the_sessions_totals(history_backend, alice_client):
    chat(alice_client, "one")
    response = alice_client.post("/chat/", {"session_id": "s1", "message": "two", "stream": True}, format="json")

    done = b"".join(response.streaming_content).decode().strip().split("\n\n")[-1]

    assert done.startswith("event: done")
    assert json.loads(done.split("data: ", 1)[1])["session_usage"]["requests"] == 2


def test_sessions_list_their_usage(history_backend, alice_client):
    chat(alice_client, "a", session_id="a")
    chat(alice_client, "b", session_id="b")
    chat(alice_client, "b again", session_id="b")

    sessions = {s["session_id"]: s for s in alice_client.get("/chat/sessions").json()["sessions"]}

    assert sessions["a"]["usage"]["requests"] == 1
    assert sessions["b"]["usage"]["requests"] == 2
    assert sessions["b"]["usage"]["prompt_tokens"] > 0
    assert alice_client.get("/chat/sessions/b").json()["usage"] == sessions["b"]["usage"]


def test_admin_totals_add_up_every_session_and_stay_per_admin(alice_client, bob_client):
    replies = [chat(alice_client, "x", session_id=s).json() for s in ("a", "b")]
    chat(bob_client, "y", session_id="a")

    expected = {
        "prompt_tokens": sum(r["usage"]["prompt_tokens"] for r in replies),
        "completion_tokens": sum(r["usage"]["completion_tokens"] for r in replies),
        "total_tokens": sum(r["usage"]["total_tokens"] for r in replies),
        "requests": 2,
        "cost_usd": usd(
            sum(cost_micros(MODEL, r["usage"]["prompt_tokens"], r["usage"]["completion_tokens"]) for r in replies)
        ),
    }
    assert alice_client.get("/chat/memory/stats").json()["usage"] == expected
    assert alice_client.get("/admin/status").json()["usage"] == expected
    assert bob_client.get("/admin/status").json()["usage"]["requests"] == 1
