"""Without GROQ_API_KEY the service starts: it warns once at startup, and each chat then answers 503 and logs only
its request line."""

from __future__ import annotations

import logging
from http import HTTPStatus
from pathlib import Path

import httpx

from tests.server import running_server
from tests.support import ALICE_PASSWORD

WARNING = "GROQ_API_KEY is not set: chats will answer 503 llm_not_configured until GROQ_API_KEY is set"


def test_gunicorn_warns_once_at_start_and_each_chat_logs_one_line(alice, fake_groq, tmp_path: Path):
    log_path = tmp_path / "server.log"
    env = {"GROQ_API_KEY": "", "HISTORY_BACKEND": "redis", "WEB_CONCURRENCY": "2"}
    with log_path.open("w+b") as log, running_server(log=log, **env) as url:
        login = httpx.post(f"{url}/admin/login", json={"username": "alice", "password": ALICE_PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}", "Connection": "close"}
        for stream in (False, True, False, True):  # new connections, so that both workers answer
            body = {"session_id": "s", "message": "hi", "stream": stream}
            response = httpx.post(f"{url}/chat/", json=body, headers=headers)
            assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
            assert response.json()["code"] == "llm_not_configured"

    lines = log_path.read_text().splitlines()
    warnings = [line for line in lines if WARNING in line]
    assert len(warnings) == 1 and " WARNING llm_provider.services " in warnings[0]
    chats = [line for line in lines if "path=/chat/" in line]
    assert len(chats) == 4 and all("status=503" in line for line in chats)
    assert [line for line in lines if " WARNING " in line or " ERROR " in line] == warnings
    assert not any("Traceback" in line for line in lines)
    assert fake_groq.chat_requests() == []


def test_a_chat_without_a_key_logs_only_its_request_line(alice_client, settings, caplog):
    settings.GROQ_API_KEY = ""

    with caplog.at_level(logging.DEBUG):
        response = alice_client.post("/chat/", {"session_id": "s", "message": "hi"}, format="json")

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    detail = response.json()["detail"]
    assert "GROQ_API_KEY" in detail and ".env" in detail and "restart the server" in detail
    assert [record.name for record in caplog.records] == ["chatbot.requests"]
    assert caplog.records[0].exc_info is None
