"""The chat endpoints validate with request serializers lent from a pool per process (core/shortcuts.py). Django's
test client answers one request at a time, so these requests all share one serializer each."""

from __future__ import annotations

from http import HTTPStatus

from tests.support import chat, complete, user


def test_a_chat_takes_nothing_from_the_options_of_the_chat_before(alice_client, fake_groq, settings):
    first = chat(alice_client, "one", temperature=0.1, top_p=0.5, stop=["x"], seed=7)
    second = chat(alice_client, "two")

    assert first.status_code == second.status_code == HTTPStatus.OK
    sent = [r["json"] for r in fake_groq.chat_requests()]
    assert (sent[0]["temperature"], sent[0]["top_p"], sent[0]["stop"], sent[0]["seed"]) == (0.1, 0.5, ["x"], 7)
    assert sent[1]["temperature"] == settings.TEMPERATURE
    assert not {"top_p", "stop", "seed"} & set(sent[1])


def test_a_refused_chat_leaves_no_error_behind(alice_client):
    refused = chat(alice_client, "one", temperature=9)
    answered = chat(alice_client, "two")
    refused_again = chat(alice_client, "")

    assert refused.status_code == HTTPStatus.BAD_REQUEST
    assert "temperature" in refused.json()["detail"]
    assert answered.status_code == HTTPStatus.OK
    assert refused_again.status_code == HTTPStatus.BAD_REQUEST
    assert "temperature" not in refused_again.json()["detail"]
    assert "message" in refused_again.json()["detail"]


def test_a_changed_limit_applies_to_the_next_chat(alice_client, settings):
    assert chat(alice_client, "x" * 20).status_code == HTTPStatus.OK

    settings.MAX_MESSAGE_CHARS = 10

    assert chat(alice_client, "x" * 20).status_code == HTTPStatus.BAD_REQUEST


def test_a_completion_takes_nothing_from_the_request_before(alice_client, fake_groq):
    tool = {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}
    first = complete(alice_client, user("one"), top_p=0.5, tools=[tool], max_tokens=30)
    second = complete(alice_client, user("two"))

    assert first.status_code == second.status_code == HTTPStatus.OK
    sent = [r["json"] for r in fake_groq.chat_requests()]
    assert sent[0]["top_p"] == 0.5 and sent[0]["tools"]
    assert not {"top_p", "tools"} & set(sent[1])
    assert sent[1]["messages"] == [user("two")]
