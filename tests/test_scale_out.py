"""Two instances of the service (gunicorn, as `make run` starts it, on two ports) sharing one Redis with
HISTORY_BACKEND=redis: what one instance does, the other sees."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import httpx
import pytest

from tests.server import running_servers
from tests.support import ALICE_PASSWORD, login_headers


@pytest.fixture(scope="module")
def instances(redis_topology: str) -> Iterator[tuple[str, str]]:
    with running_servers(2, HISTORY_BACKEND="redis") as (first, second):
        yield first, second


def chat(url: str, headers: dict[str, str], message: str, session_id: str = "shared") -> httpx.Response:
    return httpx.post(f"{url}/chat/", json={"session_id": session_id, "message": message}, headers=headers, timeout=30)


def test_a_conversation_started_on_one_instance_continues_on_the_other(instances, alice, fake_groq):
    first, second = instances
    headers = login_headers(first, "alice", ALICE_PASSWORD)

    assert chat(first, headers, "My name is Alice.").status_code == HTTPStatus.OK
    answer = chat(second, headers, "What is my name?")

    assert answer.status_code == HTTPStatus.OK, answer.text
    sent = [m["content"] for m in fake_groq.chat_requests()[-1]["json"]["messages"]]
    assert sent == ["My name is Alice.", "Echo: My name is Alice.", "What is my name?"]
    stored = httpx.get(f"{first}/chat/sessions/shared", headers=headers).json()
    assert stored["message_count"] == 4


def test_a_token_revoked_on_one_instance_is_refused_by_the_other(instances, alice):
    first, second = instances
    headers = login_headers(second, "alice", ALICE_PASSWORD)
    assert httpx.get(f"{first}/admin/info", headers=headers).status_code == HTTPStatus.OK

    assert httpx.post(f"{second}/admin/logout", headers=headers).status_code == HTTPStatus.OK

    refused = httpx.get(f"{first}/admin/info", headers=headers)
    assert refused.status_code == HTTPStatus.UNAUTHORIZED
    assert refused.json()["code"] == "token_revoked"


def test_two_instances_writing_one_session_lose_no_turn(instances, alice, fake_groq):
    first, second = instances
    headers = login_headers(first, "alice", ALICE_PASSWORD)
    fake_groq.configure(latency=0.02)  # turns overlap, so the session lock has work to do
    messages = [f"message {i}" for i in range(16)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda i: chat((first, second)[i % 2], headers, messages[i]), range(len(messages))))

    assert [a.status_code for a in answers] == [HTTPStatus.OK] * len(messages)
    stored = httpx.get(f"{second}/chat/sessions/shared", headers=headers).json()["messages"]
    assert len(stored) == 2 * len(messages)
    assert Counter(m["content"] for m in stored if m["role"] == "user") == Counter(messages)
    # Each answer directly follows its own question: no turn interleaved with another.
    for question, reply in zip(stored[::2], stored[1::2], strict=True):
        assert (question["role"], reply["role"]) == ("user", "assistant")
        assert reply["content"] == f"Echo: {question['content']}"
    # Every turn saw the whole history written before it, wherever that was written.
    history_lengths = sorted(len(r["json"]["messages"]) for r in fake_groq.chat_requests())
    assert history_lengths == [2 * i + 1 for i in range(len(messages))]
