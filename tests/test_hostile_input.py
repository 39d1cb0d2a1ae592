"""Hostile input against the service under gunicorn: forged log lines, and JSON nested past Python's parser."""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from collections.abc import Iterator
from http import HTTPStatus

import httpx
import pytest

from tests.server import server_command, server_env
from tests.support import ROOT, free_port

FORGED = "2026-11-26 16:40:00,000 INFO chatbot.requests forged"


@pytest.fixture(scope="module")
def server_with_log() -> Iterator[tuple[str, tempfile._TemporaryFileWrapper]]:
    """The server, with what it logs going to a file the test reads afterwards."""
    port = free_port()
    with tempfile.NamedTemporaryFile("w+b") as log:
        process = subprocess.Popen(server_command(port), cwd=ROOT, env=server_env(), stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, log.read().decode()
                try:
                    httpx.get(f"{url}/health/live", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            yield url, log
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_a_request_path_cannot_write_a_log_line(server_with_log):
    url, log = server_with_log
    httpx.get(f"{url}/x%0A{FORGED.replace(' ', '%20')}")
    httpx.get(f"{url}/y%00z%0D%E2%80%A8w")
    httpx.get(f"{url}/health/live")  # its log line follows the ones above

    logged = _wait_for_log(log, "path=/health/live")
    assert all(not line.startswith(FORGED) for line in logged.splitlines())
    assert "path=/x\\n" + FORGED in logged
    assert "path=/y\\x00z\\r\\u2028w" in logged
    assert "\x00" not in logged


@pytest.mark.parametrize(("path", "auth"), [("/admin/login", False), ("/v1/chat/completions", True)])
def test_deeply_nested_json_is_a_400_with_one_log_line(server_with_log, alice_tokens, path, auth):
    url, log = server_with_log
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = f"Bearer {alice_tokens['access_token']}"
    start = log.seek(0, 2)

    response = httpx.post(f"{url}{path}", content=b"[" * 100_000, headers=headers)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "nested too deeply" in response.text
    logged = _wait_for_log(log, f"path={path}", start=start)
    assert len(logged.splitlines()) == 1, logged
    assert "Traceback" not in logged


def _wait_for_log(log, marker: str, start: int = 0) -> str:
    deadline = time.monotonic() + 15  # a loaded machine may write the line late
    while True:
        log.seek(start)
        logged = log.read().decode(errors="replace")
        if marker in logged or time.monotonic() > deadline:
            return logged
        time.sleep(0.05)


def test_a_disallowed_host_gets_a_400_and_one_short_log_line(api, caplog):
    with caplog.at_level(logging.DEBUG):
        response = api.get("/health/live", HTTP_HOST="evil.example")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert [record.name for record in caplog.records] == ["chatbot.requests"]
    assert all(record.exc_info is None for record in caplog.records)


def test_an_answered_5xx_is_logged_once(api, settings, caplog):
    settings.GROQ_API_KEY = ""  # the upstream health answers 503
    with caplog.at_level(logging.DEBUG):
        response = api.get("/llm/health")

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert [record.name for record in caplog.records if "llm/health" in record.getMessage()] == ["chatbot.requests"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/chat/completions",
            b'{"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "a\\ud800"}]}',
        ),
        (
            "/v1/chat/completions",
            b'{"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "hi"}], "user": "\\udc00"}',
        ),
        ("/chat/", b'{"message": "hi", "session_id": "s1", "stop": ["\\uDBFF"]}'),
    ],
)
def test_half_a_surrogate_pair_is_a_400_and_nothing_goes_upstream(alice_client, fake_groq, path, body):
    response = alice_client.generic("POST", path, body, content_type="application/json")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "lone surrogate" in response.content.decode()
    assert fake_groq.chat_requests() == []


def test_a_whole_surrogate_pair_and_an_escaped_backslash_pass(alice_client, fake_groq):
    body = b'{"message": "a \\ud83d\\ude00 and the text \\\\ud800"}'

    response = alice_client.generic("POST", "/chat/", body, content_type="application/json")

    assert response.status_code == HTTPStatus.OK
    assert fake_groq.chat_requests()[-1]["json"]["messages"][-1]["content"] == "a \U0001f600 and the text \\ud800"
