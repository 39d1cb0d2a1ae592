"""The service as `make run` starts it: gunicorn with gunicorn.conf.py, in a process of its own."""

from __future__ import annotations

import socket
import subprocess
import uuid
from http import HTTPStatus

import httpx
import pytest

from tests.server import running_server, server_command, server_env
from tests.support import ALICE_PASSWORD, ROOT, free_port, login


@pytest.fixture(scope="module")
def server_url():
    with running_server() as url:
        yield url


def test_a_logout_in_one_process_is_seen_by_another(server_url, api, alice):
    tokens = login(api, "alice", ALICE_PASSWORD)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    first = httpx.get(f"{server_url}/admin/info", headers=headers)
    assert first.status_code == HTTPStatus.OK, first.text

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    api.post("/admin/logout")

    response = httpx.get(f"{server_url}/admin/info", headers=headers)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["code"] == "token_revoked"


def test_the_server_logs_in_and_serves_docs(server_url, alice):
    response = httpx.post(f"{server_url}/admin/login", json={"username": "alice", "password": ALICE_PASSWORD})
    assert response.status_code == HTTPStatus.OK
    assert httpx.get(f"{server_url}/docs").status_code == HTTPStatus.OK


def start_and_wait(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        server_command(free_port()), cwd=ROOT, env=server_env(**env), capture_output=True, text=True, timeout=30
    )


def test_a_test_server_answers_on_after_logging_more_than_a_pipe_holds(server_url):
    # Each request is logged (about 170 bytes); 500 of them write more than the 64 KiB a pipe holds, which stalled a
    # server whose output went to a pipe that no test read.
    with httpx.Client(base_url=server_url, timeout=5) as client:
        statuses = {client.get("/health/live").status_code for _ in range(500)}
    assert statuses == {HTTPStatus.OK}


def test_the_server_refuses_to_start_without_redis():
    result = start_and_wait(TEST_REDIS_URL="redis://:secret-pw@127.0.0.1:1/0")

    assert result.returncode != 0
    assert "Redis is not reachable" in result.stderr
    assert "secret-pw" not in result.stderr
    assert "redis-server" in result.stderr


def test_the_server_refuses_a_weak_default_password_in_production():
    prefix = f"test-empty-{uuid.uuid4().hex[:8]}"  # no admin exists under this prefix
    result = start_and_wait(TEST_REDIS_KEY_PREFIX=prefix, DEBUG="false", DEFAULT_ADMIN_PASSWORD="admin123")

    assert result.returncode != 0
    assert "DEFAULT_ADMIN_PASSWORD" in result.stderr


def test_the_server_stops_on_a_bad_setting():
    result = start_and_wait(TEMPERATURE="abc")

    assert result.returncode != 0
    assert "TEMPERATURE" in result.stderr


def test_a_port_in_use_stops_startup_saying_to_set_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            server_command(port), cwd=ROOT, env=server_env(), capture_output=True, text=True, timeout=60
        )

    assert result.returncode != 0
    assert "PORT=" in result.stderr + result.stdout


def test_an_instance_keeps_no_control_socket_that_another_on_the_host_would_share(tmp_path):
    with running_server(HOME=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path)) as url:
        assert httpx.get(f"{url}/health/live").status_code == HTTPStatus.OK
        assert not list(tmp_path.rglob("*.ctl"))
