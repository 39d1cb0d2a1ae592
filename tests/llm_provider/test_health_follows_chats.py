"""The upstream's health as /health, /llm/health and /admin/status report it follows what chats find at once, in
every worker and instance: a chat that cannot reach the upstream makes it unhealthy, the next one that reaches it
healthy again, whatever the cached probe said."""

from __future__ import annotations

from http import HTTPStatus

import httpx

from tests.fake_groq import Fault
from tests.server import running_servers
from tests.support import ALICE_PASSWORD, llm_health_forget, login_headers


def _reported(api, alice_client) -> tuple[bool, int, bool]:
    return (
        api.get("/health").json()["llm_healthy"],
        api.get("/llm/health").status_code,
        alice_client.get("/admin/status").json()["chatgroq_healthy"],
    )


def test_a_failed_chat_makes_health_unhealthy_at_once_and_a_good_one_healthy_again(api, alice_client, fake_groq):
    assert _reported(api, alice_client) == (True, HTTPStatus.OK, True)  # probed, and cached
    # The upstream fails every chat (an attempt and its retry), while it still lists its models.
    fake_groq.add_faults(Fault("status", status=503), Fault("status", status=503))

    failed = alice_client.post("/chat/", {"message": "hello"}, format="json")

    assert (failed.status_code, failed.json()["code"]) == (HTTPStatus.SERVICE_UNAVAILABLE, "upstream_unavailable")
    assert _reported(api, alice_client) == (False, HTTPStatus.SERVICE_UNAVAILABLE, False)
    assert api.get("/llm/health").json()["code"] == "upstream_unavailable"

    answered = alice_client.post("/chat/", {"message": "hello again"}, format="json")

    assert answered.status_code == HTTPStatus.OK
    assert _reported(api, alice_client) == (True, HTTPStatus.OK, True)


def test_a_process_that_had_not_asked_yet_reports_a_failed_chat_too(api, alice_client, fake_groq, monkeypatch):
    fake_groq.add_faults(Fault("status", status=503), Fault("status", status=503))
    failed = alice_client.post("/chat/", {"message": "hello"}, format="json")
    assert failed.json()["code"] == "upstream_unavailable"
    # As another worker that never asked: no health of its own, the chat's outcome shared through Redis.
    llm_health_forget(monkeypatch)

    assert _reported(api, alice_client) == (False, HTTPStatus.SERVICE_UNAVAILABLE, False)


def test_a_refused_request_leaves_health_as_it_was(api, alice_client, fake_groq):
    assert _reported(api, alice_client)[0] is True
    fake_groq.add_faults(Fault("status", status=429), Fault("status", status=429))

    alice_client.post("/chat/", {"message": "hello"}, format="json")

    assert _reported(api, alice_client) == (True, HTTPStatus.OK, True)


def test_every_worker_and_instance_reports_what_one_chat_found(alice, fake_groq):
    # Two instances of two workers each: a chat on one, the health asked of every worker of both.
    with running_servers(2, WEB_CONCURRENCY="2") as (first, second):
        headers = login_headers(first, "alice", ALICE_PASSWORD)

        def healths() -> set[bool]:
            return {httpx.get(f"{url}/health").json()["llm_healthy"] for url in (first, second) for _ in range(8)}

        assert healths() == {True}
        fake_groq.add_faults(Fault("status", status=503), Fault("status", status=503))
        failed = httpx.post(f"{first}/chat/", json={"message": "hello"}, headers=headers, timeout=30)
        assert failed.json()["code"] == "upstream_unavailable"
        assert healths() == {False}

        answered = httpx.post(f"{second}/chat/", json={"message": "hello again"}, headers=headers, timeout=30)
        assert answered.status_code == HTTPStatus.OK
        assert healths() == {True}
