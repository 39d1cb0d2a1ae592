"""Under gunicorn, chats beyond MAX_CHATS_IN_FLIGHT get 503 at once, and health checks and logins keep answering
beside the streams in flight."""

from __future__ import annotations

import socket
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


def hold_stream(streams: ExitStack, client: httpx.Client, request: dict) -> None:
    """A stream held open until `streams` closes. Under MAX_CHATS_IN_FLIGHT it is taken; the worker's own cap on
    streams (core/admission.py, Retry-After 5) may refuse it for a moment, cut to the one stream held when the
    loop ran late as the server started on a busy machine, and raised again as the loop keeps up."""

    def taken() -> bool:
        response = streams.enter_context(client.stream(**request))
        if response.status_code == HTTPStatus.OK:
            return True
        assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE, response.status_code
        assert response.headers["Retry-After"] == "5"  # the stream cap, not MAX_CHATS_IN_FLIGHT's (1)
        return False

    wait_for(taken, what="a stream taken")


def test_chats_beyond_the_cap_get_503_while_health_and_login_keep_answering(alice, fake_groq):
    # Streams that last 30 s unless their client leaves.
    fake_groq.configure(chunk_delay=0.1, reply=" ".join(["word"] * 300))
    with running_server(MAX_CHATS_IN_FLIGHT="2", WEB_CONCURRENCY="1") as url, httpx.Client(timeout=QUICKLY) as client:
        login = {"username": "alice", "password": ALICE_PASSWORD}
        token = client.post(f"{url}/admin/login", json=login).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}

        with ExitStack() as streams:
            for _ in range(2):
                hold_stream(streams, client, completion(url, headers, stream=True))
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


def test_the_worker_refuses_a_chat_past_the_cap_from_the_socket_and_keeps_the_connection(alice, fake_groq):
    # Refused on its head alone, before gunicorn's parser or Django: even without credentials (Django would answer
    # 401), and the connection goes on to its next request.
    fake_groq.configure(chunk_delay=0.1, reply=" ".join(["word"] * 300))
    with running_server(MAX_CHATS_IN_FLIGHT="1", WEB_CONCURRENCY="1") as url, httpx.Client(timeout=QUICKLY) as client:
        token = client.post(f"{url}/admin/login", json={"username": "alice", "password": ALICE_PASSWORD})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        with client.stream(**completion(url, headers, stream=True)) as held:
            assert held.status_code == HTTPStatus.OK
            wait_for(lambda: fake_groq.in_flight == 1)
            host, port = url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=QUICKLY) as sock:
                body = b'{"message": "hi"}'
                chat = b"POST /chat/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 17\r\n\r\n"
                sock.sendall(chat + body + b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                answers = read_until(sock, b'"alive"')

        refusal, _, probe = answers.partition(b"HTTP/1.1 200")
        assert refusal.startswith(b"HTTP/1.1 503 ")
        assert b"\r\nRetry-After: 1\r\n" in refusal
        assert b'"code": "server_busy"' in refusal
        assert b"Connection: keep-alive" in refusal
        assert b"Server: gunicorn" not in refusal  # answered before gunicorn handled the request
        assert b'"alive"' in probe
        assert fake_groq.in_flight <= 1


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    received = b""
    while marker not in received:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            raise AssertionError(received) from None
        assert data, received
        received += data
    return received
