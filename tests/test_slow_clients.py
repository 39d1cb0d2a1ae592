"""Slow and idle clients against the service as `make run` starts it: whatever they hold, a fresh
`GET /health/live` is answered within a second, and ordinary requests still work."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from urllib.parse import urlsplit

import httpx
import pytest

from tests.server import running_server
from tests.support import ALICE_PASSWORD

READ_TIMEOUT = 2  # REQUEST_READ_TIMEOUT_SECONDS here, so a deadline passes within a test
WRITE_TIMEOUT = 2  # RESPONSE_WRITE_TIMEOUT_SECONDS here
PROBE_TIMEOUT = 5.0
BIG_STATIC = "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"  # 1.5 MB


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    timeouts = {"REQUEST_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT), "RESPONSE_WRITE_TIMEOUT_SECONDS": str(WRITE_TIMEOUT)}
    # running_server reads the server's output only when it fails to start: a log line per request would fill
    # the pipe within this module and stall the server.
    with running_server(LOG_LEVEL="warning", **timeouts) as url:
        yield url


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def live_latencies(url: str, seconds: float) -> list[float]:
    """Fresh connections asking for /health/live one after another for `seconds`: each one's time to answer."""
    samples: list[float] = []
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        started = time.monotonic()
        try:
            response = httpx.get(f"{url}/health/live", timeout=PROBE_TIMEOUT)
            assert response.status_code == HTTPStatus.OK
        except httpx.TimeoutException:
            pass
        samples.append(round(time.monotonic() - started, 3))
        time.sleep(0.05)
    return samples


def assert_answered_promptly(samples: list[float]) -> None:
    """Probes that waited behind the slow clients would wait for their deadline (READ_TIMEOUT, or PROBE_TIMEOUT):
    most of them. On a loaded machine a probe or two may be slow; the median says which it is."""
    assert statistics.median(samples) < 0.5, samples
    assert max(samples) < PROBE_TIMEOUT, samples


@contextmanager
def connections(url: str, count: int, first: bytes = b"", *, receive_buffer: int = 0) -> Iterator[list[socket.socket]]:
    """`count` connections that each sent `first`, closed on the way out."""
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            if receive_buffer:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.connect(address(url))
            if first:
                sock.sendall(first)
            opened.append(sock)
        yield opened
    finally:
        for sock in opened:
            sock.close()


@contextmanager
def trickling(socks: list[socket.socket], piece: bytes, every: float = 0.5, at_most: float = 20.0) -> Iterator[None]:
    """Sends `piece` on every connection each `every` seconds, for `at_most` seconds or until the block ends."""
    stop = threading.Event()

    def trickle() -> None:
        ends = time.monotonic() + at_most
        while not stop.wait(every) and time.monotonic() < ends:
            for sock in socks:
                with contextlib.suppress(OSError):  # the server gave up on it: what the defence is for
                    sock.send(piece)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def request_head(method: str, path: str, *headers: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]).encode()


def read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """One response from a raw socket."""
    sock.settimeout(timeout)
    data = receive_until(sock, b"", lambda data: b"\r\n\r\n" in data)
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(receive_until(sock, body, lambda data: data.endswith(b"0\r\n\r\n")))
    else:
        length = int(headers.get("content-length", "0"))
        body = receive_until(sock, body, lambda data: len(data) >= length)
    return int(lines[0].split()[1]), headers, body


def receive_until(sock: socket.socket, data: bytes, done: Callable[[bytes], bool]) -> bytes:
    while not done(data):
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


def receive_all(sock: socket.socket) -> tuple[int, bool]:
    """Bytes received until the server closed the connection, and whether it did within a few seconds."""
    received, ends = 0, time.monotonic() + 5
    sock.settimeout(1)
    while time.monotonic() < ends:
        try:
            chunk = sock.recv(1024 * 1024)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received, True
        if not chunk:
            return received, True
        received += len(chunk)
    return received, False


def dechunk(data: bytes) -> bytes:
    body = b""
    while True:
        size, data = data.split(b"\r\n", 1)
        if not int(size, 16):
            return body
        body, data = body + data[: int(size, 16)], data[int(size, 16) + 2 :]


def login_body() -> bytes:
    return json.dumps({"username": "alice", "password": ALICE_PASSWORD}).encode()


def test_slow_header_senders_do_not_delay_other_requests(server_url):
    with (
        connections(server_url, 300, b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n") as socks,
        trickling(socks, b"X-Slow: 1\r\n"),
    ):
        samples = live_latencies(server_url, 3)

    assert_answered_promptly(samples)


def test_idle_connections_do_not_delay_other_requests(server_url):
    with connections(server_url, 400):
        samples = live_latencies(server_url, 3)

    assert_answered_promptly(samples)


def test_slow_body_senders_do_not_delay_other_requests(server_url):
    head = request_head("POST", "/admin/login", "Content-Type: application/json", "Content-Length: 1000")
    with connections(server_url, 300, head + b'{"username": "') as socks, trickling(socks, b"a"):
        samples = live_latencies(server_url, 3)

    assert_answered_promptly(samples)


def test_clients_that_never_close_do_not_delay_other_requests(server_url):
    with connections(server_url, 20, request_head("GET", "/health/live", "Connection: close")):
        samples = live_latencies(server_url, 3)

    assert_answered_promptly(samples)


def test_a_client_that_never_reads_is_dropped_after_the_write_timeout(server_url):
    # On loopback the kernel buffers a whole 1.5 MB response (up to 4 MB); four pipelined ones stall the writer.
    size = len(httpx.get(f"{server_url}{BIG_STATIC}").content)
    with connections(server_url, 1, request_head("GET", BIG_STATIC) * 4, receive_buffer=4096) as (sock,):
        time.sleep(WRITE_TIMEOUT + 1.5)  # not reading meanwhile is the point
        received, closed = receive_all(sock)

    assert closed
    assert received < 4 * size


def test_a_request_not_sent_in_time_is_answered_408(server_url):
    with connections(server_url, 1, b"GET /health/live HTTP/1.1\r\n") as (sock,), trickling([sock], b"X-Slow: 1\r\n"):
        started = time.monotonic()
        status, headers, _ = read_response(sock, timeout=READ_TIMEOUT + 3)
        waited = time.monotonic() - started

    assert status == HTTPStatus.REQUEST_TIMEOUT
    assert headers["connection"] == "close"
    assert waited < READ_TIMEOUT + 1.5  # deadlines are checked at least once a second


def test_a_kept_alive_connection_serves_requests_in_turn_and_pipelined(server_url):
    with connections(server_url, 1) as (sock,):
        sock.sendall(request_head("GET", "/health/live"))
        assert read_response(sock)[0] == HTTPStatus.OK
        sock.sendall(request_head("GET", "/health/live") + request_head("GET", "/info"))
        # Both answers may come in one read: read until the second one's JSON body has ended.
        sock.settimeout(5)
        both = receive_until(sock, b"", lambda data: data.count(b"HTTP/1.1 ") == 2 and data.endswith(b"}"))

    first, second = both.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 ") and second.startswith(b"200 ")
    assert json.loads(second.split(b"\r\n\r\n", 1)[1])["version"]


def test_a_post_body_arriving_in_pieces_is_read_whole(server_url, alice):
    body = login_body()
    head = request_head("POST", "/admin/login", "Content-Type: application/json", f"Content-Length: {len(body)}")
    with connections(server_url, 1, head[:20]) as (sock,):
        for piece in (head[20:], body[:10], body[10:]):
            time.sleep(0.2)
            sock.sendall(piece)
        status, _, answer = read_response(sock)

    assert status == HTTPStatus.OK
    assert "access_token" in json.loads(answer)


def test_a_client_expecting_100_continue_gets_it_before_sending_the_body(server_url, alice):
    body = login_body()
    head = request_head(
        "POST", "/admin/login", "Content-Type: application/json", f"Content-Length: {len(body)}", "Expect: 100-continue"
    )
    with connections(server_url, 1, head) as (sock,):
        sock.settimeout(1)
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        status, _, answer = read_response(sock)

    assert status == HTTPStatus.OK
    assert "access_token" in json.loads(answer)


def test_a_body_over_the_limit_is_refused_before_it_is_sent(server_url):
    head = request_head("POST", "/admin/login", "Content-Type: application/json", "Content-Length: 100000000")
    with connections(server_url, 1, head) as (sock,):
        status, _, answer = read_response(sock)

    assert status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert json.loads(answer)["code"] == "request_too_large"


def test_a_chunked_request_body_is_refused_with_411(server_url):
    # Django reads a WSGI body by its Content-Length only: a chunked body would reach the view empty.
    head = request_head("POST", "/admin/login", "Content-Type: application/json", "Transfer-Encoding: chunked")
    with connections(server_url, 1, head + b"2\r\n{}\r\n0\r\n\r\n") as (sock,):
        status, _, answer = read_response(sock)

    assert status == HTTPStatus.LENGTH_REQUIRED
    assert json.loads(answer)["code"] == "length_required"


def test_headers_that_never_end_are_refused_with_431(server_url):
    with connections(server_url, 1, b"GET /health/live HTTP/1.1\r\n" + b"X-Long: a\r\n" * 8000) as (sock,):
        status, _, answer = read_response(sock)

    assert status == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    assert json.loads(answer)["code"] == "headers_too_large"


def test_bodies_past_the_request_buffer_are_refused_with_503():
    # Bodies wait in memory until whole: at most REQUEST_BUFFER_BYTES of them per worker, here 2 KiB.
    head = request_head("POST", "/admin/login", "Content-Type: application/json", "Content-Length: 1024")
    with (
        running_server(REQUEST_BUFFER_BYTES="2048", MAX_REQUEST_BYTES="1024", LOG_LEVEL="warning") as url,
        connections(url, 3, head + b"x" * 600) as socks,
    ):
        refused, _, _ = select.select(socks, [], [], 5)
        status, _, answer = read_response(refused[0])
        kept = [sock for sock in socks if sock not in refused]
        for sock in kept:
            sock.sendall(b"x" * 424)
        statuses = [read_response(sock)[0] for sock in kept]

    assert len(refused) == 1
    assert status == HTTPStatus.SERVICE_UNAVAILABLE
    assert json.loads(answer)["code"] == "server_busy"
    assert statuses == [HTTPStatus.BAD_REQUEST] * 2  # read whole: the body is just not JSON


def test_a_chat_streams_through_the_server(server_url, alice):
    token = httpx.post(f"{server_url}/admin/login", json={"username": "alice", "password": ALICE_PASSWORD})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    with httpx.stream(
        "POST", f"{server_url}/chat/", json={"message": "one two three", "stream": True}, headers=headers, timeout=10
    ) as response:
        text = "".join(response.iter_text())

    assert response.status_code == HTTPStatus.OK
    assert "event: delta" in text
    assert "event: done" in text
