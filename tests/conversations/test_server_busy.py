"""Under gunicorn, chats beyond MAX_CHATS_IN_FLIGHT get 503 at once, and health checks and logins keep answering
beside the streams in flight."""

from __future__ import annotations

from contextlib import ExitStack
from http import HTTPStatus

import httpx

from tests.server import running_server
from tests.support import ALICE_PASSWORD, wait_for

MODEL = "openai/gpt-oss-20b"
QUICKLY = 2.0  # seconds; a request queued behind the streams would wait for a whole one


def completion(url: str, headers: dict[str, str], *, stream: bool) -> dict:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return {"method": "POST", "url": f"{url}/v1/chat/completions", "json": body, "headers": headers}


def assert_busy(response: httpx.Response) -> httpx.Response:
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE, response.text
    assert response.headers["Retry-After"] == "1"
    return response


def test_chats_beyond_the_cap_get_503_while_health_and_login_keep_answering(alice, fake_groq):
    # Streams that last 30 s unless their client leaves.
    fake_groq.configure(chunk_delay=0.1, reply=" ".join(["word"] * 300))
    with running_server(MAX_CHATS_IN_FLIGHT="2", WEB_CONCURRENCY="1") as url, httpx.Client(timeout=QUICKLY) as client:
        login = {"username": "alice", "password": ALICE_PASSWORD}
        token = client.post(f"{url}/admin/login", json=login).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}

        with ExitStack() as streams:
            for _ in range(2):
                held = streams.enter_context(client.stream(**completion(url, headers, stream=True)))
                assert held.status_code == HTTPStatus.OK
            wait_for(lambda: fake_groq.in_flight == 2)

            v1 = assert_busy(client.request(**completion(url, headers, stream=False)))
            assert v1.json()["error"]["code"] == "server_busy"
            assert_busy(client.request(**completion(url, headers, stream=True)))
            chat = assert_busy(client.post(f"{url}/chat/", json={"message": "hi", "stream": True}, headers=headers))
            assert chat.json()["code"] == "server_busy"
            assert client.get(f"{url}/health/live").status_code == HTTPStatus.OK
            assert client.post(f"{url}/admin/login", json=login).status_code == HTTPStatus.OK
            assert client.get(f"{url}/docs").status_code == HTTPStatus.OK
            assert fake_groq.in_flight == 2

        # The clients left: their streams end, and chats are answered again.
        wait_for(lambda: client.request(**completion(url, headers, stream=False)).status_code == HTTPStatus.OK)
