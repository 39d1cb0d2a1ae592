"""New chats are refused before Django's stack while a worker's event loop runs late (CHAT_ADMIT_MAX_LOOP_LAG_MS)
or its chats in flight fill MAX_CHATS_IN_FLIGHT; chats already running, health probes and other requests go on."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from http import HTTPStatus

import httpx
import pytest

from tests.server import running_server
from tests.support import ALICE_PASSWORD, ROOT, chat, login_headers

MODEL = "openai/gpt-oss-20b"


def test_a_worker_whose_loop_runs_late_takes_no_new_chat_and_serves_the_rest(alice_client, fake_groq, settings):
    fake_groq.configure(chunk_delay=0.05)
    held = alice_client.post("/chat/", {"session_id": "a", "message": "one two three", "stream": True}, format="json")
    chunks = iter(held.streaming_content)
    next(chunks)
    settings.CHAT_ADMIT_MAX_LOOP_LAG_MS = 0  # every loop runs at least 0 ms late: no new chat is taken

    refused = [
        chat(alice_client, "hi", session_id="b"),
        alice_client.post("/admin/test-chat", {"message": "hi"}, format="json"),
        alice_client.post("/chat/sessions/a/regenerate", {}, format="json"),
    ]
    v1 = alice_client.post(
        "/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, format="json"
    )

    for response in [*refused, v1]:
        assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
        assert response["Retry-After"] == "5"
    for response in refused:
        assert response.json()["code"] == "server_busy"
        assert "CHAT_ADMIT_MAX_LOOP_LAG_MS" in response.json()["detail"]
    assert v1.json()["error"]["code"] == "server_busy"
    assert v1.json()["error"]["type"] == "server_error"
    # The chat already running goes on to its end; the rest of the API answers.
    b"".join(chunks)
    assert alice_client.get("/chat/sessions/a").json()["message_count"] == 2
    assert alice_client.get("/health/live").status_code == HTTPStatus.OK
    assert len(fake_groq.chat_requests()) == 1
    assert alice_client.get("/chat/memory/stats").json()["usage"]["requests"] == 1

    settings.CHAT_ADMIT_MAX_LOOP_LAG_MS = 50
    assert chat(alice_client, "hi", session_id="b").status_code == HTTPStatus.OK


def test_under_gunicorn_new_chats_are_refused_at_the_lag_threshold_and_health_answers(alice, fake_groq):
    with running_server(CHAT_ADMIT_MAX_LOOP_LAG_MS="0", WEB_CONCURRENCY="1") as url, httpx.Client(timeout=10) as client:
        headers = login_headers(url, "alice", ALICE_PASSWORD)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}

        chat_reply = client.post(f"{url}/chat/", json={"message": "hi"}, headers=headers)
        v1 = client.post(f"{url}/v1/chat/completions", json=body, headers=headers)

        assert chat_reply.status_code == v1.status_code == HTTPStatus.SERVICE_UNAVAILABLE
        assert chat_reply.headers["Retry-After"] == v1.headers["Retry-After"] == "5"
        assert chat_reply.json()["code"] == v1.json()["error"]["code"] == "server_busy"
        assert client.get(f"{url}/health/live").status_code == HTTPStatus.OK
        assert client.get(f"{url}/chat/sessions", headers=headers).status_code == HTTPStatus.OK
        assert fake_groq.chat_requests() == []


@pytest.mark.one_redis  # a process of its own, without Redis
def test_the_lag_of_a_gevent_loop_held_by_work_shows_before_the_sampler_wakes():
    script = textwrap.dedent(
        """
        from core.cooperative import gevent_patch_all
        gevent_patch_all()
        import time
        from core.loop_lag import loop_lag
        assert loop_lag.seconds() == 0.0
        time.sleep(0.1)  # the sampler runs
        end = time.monotonic() + 2.0
        while time.monotonic() < end:  # work that never yields: the loop is held (a fifth of it counts at once)
            pass
        assert loop_lag.seconds() >= 0.3, loop_lag.seconds()
        deadline = time.monotonic() + 10
        while loop_lag.seconds() >= 0.3:  # the loop is free again: the sampler catches up
            assert time.monotonic() < deadline, loop_lag.seconds()
            time.sleep(0.05)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.one_redis  # a process of its own, without Redis
def test_the_lag_counts_the_wait_in_the_loops_queue_of_ready_greenlets():
    # 100 greenlets always ready, each 1 ms of work between yields: every turn of the loop runs timers at once (the
    # switch interval bounds a turn's callbacks to 5 ms), but a greenlet made ready, as a new connection's or a
    # stream's next piece, waits about 100 ms behind the others.
    script = textwrap.dedent(
        """
        from core.cooperative import gevent_patch_all
        gevent_patch_all()
        import time
        import gevent
        from core.loop_lag import loop_lag

        def busy():
            while True:
                end = time.monotonic() + 0.001
                while time.monotonic() < end:
                    pass
                gevent.sleep(0)

        loop_lag.seconds()  # the sampler starts
        ready = [gevent.spawn(busy) for _ in range(100)]
        time.sleep(1.0)
        woken = time.monotonic()
        gevent.sleep(0)
        queued = time.monotonic() - woken
        assert queued >= 0.05, queued  # the backlog this measures
        assert loop_lag.seconds() >= 0.05, (loop_lag.seconds(), queued)
        assert loop_lag.latest_seconds() >= 0.05, (loop_lag.latest_seconds(), queued)
        gevent.killall(ready)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
