"""Regenerate and edit the last exchange; export a session and import it back, on both history stores."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from tests.support import chat, sent_messages

pytestmark = pytest.mark.usefixtures("history_backend")


def messages_of(client, session_id: str = "s1") -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in client.get(f"/chat/sessions/{session_id}").json()["messages"]]


def regenerate(client, session_id: str = "s1", **body):
    return client.post(f"/chat/sessions/{session_id}/regenerate", body, format="json")


def edit(client, message: str, session_id: str = "s1", **body):
    return client.post(f"/chat/sessions/{session_id}/edit", {"message": message, **body}, format="json")


def test_regenerate_replaces_the_last_reply(alice_client, fake_groq):
    chat(alice_client, "one")
    chat(alice_client, "two")
    fake_groq.configure(reply="another answer")

    response = regenerate(alice_client, temperature=0.1)

    assert response.status_code == HTTPStatus.OK
    assert response.json()["response"] == "another answer"
    assert messages_of(alice_client) == [
        ("user", "one"),
        ("assistant", "Echo: one"),
        ("user", "two"),
        ("assistant", "another answer"),
    ]
    assert sent_messages(fake_groq)[-1] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "Echo: one"},
        {"role": "user", "content": "two"},
    ]
    assert fake_groq.chat_requests()[-1]["json"]["temperature"] == 0.1


def test_edit_replaces_the_last_user_message_and_answers_it(alice_client, fake_groq):
    chat(alice_client, "one")
    chat(alice_client, "two")

    response = edit(alice_client, "deux")

    assert response.json()["response"] == "Echo: deux"
    assert messages_of(alice_client) == [
        ("user", "one"),
        ("assistant", "Echo: one"),
        ("user", "deux"),
        ("assistant", "Echo: deux"),
    ]


def test_the_session_usage_counts_every_call(alice_client):
    chat(alice_client, "one")

    body = regenerate(alice_client).json()

    assert body["session_usage"]["requests"] == 2


def test_a_streamed_regenerate(alice_client, fake_groq):
    chat(alice_client, "one")
    fake_groq.configure(reply="a streamed answer")

    response = regenerate(alice_client, stream=True)

    events = b"".join(response.streaming_content).decode()
    assert "event: done" in events
    assert messages_of(alice_client)[-1] == ("assistant", "a streamed answer")


@pytest.mark.parametrize(("upstream", "expected"), [(429, 429), (500, 502), (503, 503)])
def test_an_upstream_failure_changes_nothing(alice_client, fake_groq, settings, upstream, expected):
    settings.LLM_MAX_RETRIES = 0
    chat(alice_client, "one")
    before = alice_client.get("/chat/sessions/s1").json()
    fake_groq.add_faults({"kind": "status", "status": upstream}, {"kind": "status", "status": upstream})

    assert regenerate(alice_client).status_code == expected
    assert edit(alice_client, "changed").status_code == expected
    assert alice_client.get("/chat/sessions/s1").json() == before


def test_an_unknown_session_is_a_404_and_creates_nothing(alice_client, fake_groq):
    assert regenerate(alice_client, "nope").status_code == HTTPStatus.NOT_FOUND
    assert edit(alice_client, "hi", "nope").status_code == HTTPStatus.NOT_FOUND
    assert fake_groq.chat_requests() == []
    assert alice_client.get("/chat/sessions").json()["count"] == 0


def test_another_admins_session_is_not_found(alice_client, bob_client):
    chat(alice_client, "one")

    assert regenerate(bob_client).status_code == HTTPStatus.NOT_FOUND
    assert messages_of(alice_client) == [("user", "one"), ("assistant", "Echo: one")]


def test_edit_validates_like_chat(alice_client, fake_groq, settings):
    chat(alice_client, "one")

    assert edit(alice_client, "x" * (settings.MAX_MESSAGE_CHARS + 1)).status_code == HTTPStatus.BAD_REQUEST
    assert edit(alice_client, "fine", top_p=3).status_code == HTTPStatus.BAD_REQUEST
    assert len(fake_groq.chat_requests()) == 1


def test_export_then_import_gives_back_the_conversation(alice_client, fake_groq):
    chat(alice_client, "one")
    chat(alice_client, "two")
    document = alice_client.get("/chat/sessions/s1/export").json()

    assert document["format"] == "chatbot-session/1"
    assert document["summary"] is None
    assert [(m["role"], m["content"]) for m in document["messages"]] == messages_of(alice_client)
    assert all(m["created_at"] for m in document["messages"])

    alice_client.delete("/chat/sessions/s1")
    imported = alice_client.post("/chat/sessions/import", document, format="json")

    assert imported.status_code == HTTPStatus.CREATED
    assert imported.json()["session_id"] == "s1"
    again = alice_client.get("/chat/sessions/s1/export").json()
    assert again == document
    chat(alice_client, "three")
    assert [m["content"] for m in sent_messages(fake_groq)[-1]] == ["one", "Echo: one", "two", "Echo: two", "three"]


def test_an_import_without_an_id_gets_a_new_one(alice_client):
    document = {"format": "chatbot-session/1", "messages": [{"role": "user", "content": "hi"}]}

    response = alice_client.post("/chat/sessions/import", document, format="json")

    session_id = response.json()["session_id"]
    assert response.status_code == HTTPStatus.CREATED
    assert messages_of(alice_client, session_id) == [("user", "hi")]


def test_an_import_keeps_the_session_usage_but_not_the_admins(alice_client):
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "requests": 1}
    document = {"format": "chatbot-session/1", "session_id": "old", "messages": [{"role": "user", "content": "hi"}]}

    alice_client.post("/chat/sessions/import", {**document, "usage": usage}, format="json")

    assert alice_client.get("/chat/sessions/old").json()["usage"] == {**usage, "cost_usd": None}
    assert alice_client.get("/chat/memory/stats").json()["usage"]["total_tokens"] == 0


def test_importing_over_an_existing_session_is_a_409_and_changes_nothing(alice_client):
    chat(alice_client, "one")
    document = {"format": "chatbot-session/1", "session_id": "s1", "messages": [{"role": "user", "content": "x"}]}

    response = alice_client.post("/chat/sessions/import", document, format="json")

    assert response.status_code == HTTPStatus.CONFLICT
    assert messages_of(alice_client) == [("user", "one"), ("assistant", "Echo: one")]


@pytest.mark.parametrize(
    "document",
    [
        {"format": "chatbot-session/2", "messages": [{"role": "user", "content": "hi"}]},
        {"messages": [{"role": "user", "content": "hi"}]},
        {"format": "chatbot-session/1", "messages": []},
        {"format": "chatbot-session/1", "messages": [{"role": "system", "content": "hi"}]},
        {"format": "chatbot-session/1", "messages": [{"role": "user", "content": "x" * 4001}]},
        {"format": "chatbot-session/1", "messages": [{"role": "user", "content": "hi", "created_at": "yesterday"}]},
        {"format": "chatbot-session/1", "messages": [{"role": "tool", "content": "hi"}]},
        {"format": "chatbot-session/1", "session_id": "import", "messages": [{"role": "user", "content": "hi"}]},
        {"format": "chatbot-session/1", "session_id": "bad id", "messages": [{"role": "user", "content": "hi"}]},
        {"format": "chatbot-session/1", "usage": {"total_tokens": -1}, "messages": [{"role": "user", "content": "h"}]},
    ],
)
def test_a_bad_document_is_a_400_and_stores_nothing(alice_client, document):
    response = alice_client.post("/chat/sessions/import", document, format="json")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert alice_client.get("/chat/sessions").json()["count"] == 0


def test_an_import_keeps_the_newest_stored_messages(alice_client):
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(250)]
    document = {"format": "chatbot-session/1", "session_id": "long", "messages": messages}

    alice_client.post("/chat/sessions/import", document, format="json")

    stored = messages_of(alice_client, "long")
    assert len(stored) == 200
    assert stored[-1] == ("assistant", "m249")


def test_an_import_respects_the_per_admin_cap(alice_client, settings):
    settings.MAX_SESSIONS_PER_ADMIN = 2
    for name in ("a", "b", "c"):
        document = {"format": "chatbot-session/1", "session_id": name, "messages": [{"role": "user", "content": name}]}
        assert alice_client.post("/chat/sessions/import", document, format="json").status_code == HTTPStatus.CREATED

    assert sorted(s["session_id"] for s in alice_client.get("/chat/sessions").json()["sessions"]) == ["b", "c"]


def test_import_is_no_session_id_for_chat(alice_client):
    assert chat(alice_client, "hi", session_id="import").status_code == HTTPStatus.BAD_REQUEST


def test_reading_or_clearing_a_session_called_import_is_a_404_like_any_unknown_session(alice_client):
    assert alice_client.get("/chat/sessions/import").status_code == HTTPStatus.NOT_FOUND
    assert alice_client.delete("/chat/sessions/import/").status_code == HTTPStatus.NOT_FOUND
    assert alice_client.put("/chat/sessions/import", {}, format="json").status_code == HTTPStatus.METHOD_NOT_ALLOWED


def test_export_of_an_unknown_session_is_a_404(alice_client):
    assert alice_client.get("/chat/sessions/nope/export").status_code == HTTPStatus.NOT_FOUND


def test_a_tool_conversation_survives_export_and_import(alice_client):
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "42", "tool_call_id": "call_1"},
        {"role": "assistant", "content": "It is 42."},
    ]
    document = {"format": "chatbot-session/1", "session_id": "t", "messages": messages}

    alice_client.post("/chat/sessions/import", document, format="json")

    exported = alice_client.get("/chat/sessions/t/export").json()["messages"]
    assert [{k: v for k, v in m.items() if k != "created_at"} for m in exported] == messages


def test_a_sessions_messages_carry_their_time_as_created_at_and_as_at(alice_client, fake_groq):
    assert chat(alice_client, "hi", session_id="timed").status_code == HTTPStatus.OK
    detail = alice_client.get("/chat/sessions/timed").json()
    export = alice_client.get("/chat/sessions/timed/export").json()
    assert [m["created_at"] for m in detail["messages"]] == [m["at"] for m in detail["messages"]]
    assert [m["created_at"] for m in detail["messages"]] == [m["created_at"] for m in export["messages"]]
