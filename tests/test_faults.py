"""Faults injected for real: a Redis server of the test's own is stopped, paused and restarted; the fake
upstream fails in the middle of a burst. The service answers clearly, recovers by itself and loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import defaultdict
from http import HTTPStatus

import pytest
import redis
from rest_framework.test import APIClient

from accounts.services import admin_create
from tests.support import free_port

PASSWORD = "carol-password-1"


class OwnRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=10)

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture
def own_redis(settings):
    server = OwnRedis()
    server.start()
    default = settings.CACHES["default"]
    # The service's default timeout, which the tests' settings raise: these tests measure how soon a fault is seen.
    timeouts = {"SOCKET_TIMEOUT": 0.5, "SOCKET_CONNECT_TIMEOUT": 0.5}
    options = {**default["OPTIONS"], **timeouts}
    settings.CACHES = {**settings.CACHES, "default": {**default, "LOCATION": server.url, "OPTIONS": options}}
    yield server
    server.resume()
    server.process.kill()
    server.process.wait()


def login(client: APIClient):
    return client.post("/admin/login", {"username": "carol", "password": PASSWORD}, format="json")


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_unavailable(response, elapsed: float) -> None:
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["code"] == "redis_unavailable"
    assert response["Retry-After"]
    assert elapsed < 1.5


def test_redis_stopped_then_restarted(own_redis):
    admin_create(username="carol", password=PASSWORD)
    api = APIClient()
    token = login(api).json()["access_token"]
    own_redis.stop()

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert_unavailable(*timed(lambda: api.get("/admin/info")))  # fails closed: neither 200 nor 401
    assert_unavailable(*timed(lambda: api.post("/chat/", {"session_id": "a", "message": "hi"}, format="json")))
    assert_unavailable(*timed(lambda: login(APIClient())))  # not "wrong password"
    health, elapsed = timed(lambda: APIClient().get("/health"))
    assert health.status_code == HTTPStatus.SERVICE_UNAVAILABLE and elapsed < 1.5

    own_redis.start()  # an empty Redis: nothing was persisted

    assert APIClient().get("/health").json()["redis_healthy"] is True
    assert api.get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED  # its login session is gone
    admin_create(username="carol", password=PASSWORD)
    assert login(APIClient()).status_code == HTTPStatus.OK


def test_redis_hanging_answers_503_within_a_second_then_recovers(own_redis):
    admin_create(username="carol", password=PASSWORD)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {login(APIClient()).json()['access_token']}")
    own_redis.pause()

    assert_unavailable(*timed(lambda: api.get("/admin/info")))
    assert_unavailable(*timed(lambda: login(APIClient())))

    own_redis.resume()

    assert api.get("/admin/info").status_code == HTTPStatus.OK
    assert login(APIClient()).status_code == HTTPStatus.OK


@pytest.mark.parametrize("backend", ["redis", "locmem"])
def test_a_concurrent_burst_with_upstream_failures_loses_nothing(backend, alice_tokens, fake_groq, settings):
    settings.HISTORY_BACKEND = backend
    settings.LLM_MAX_RETRIES = 0
    settings.CHAT_REQUESTS_PER_MINUTE = 0
    threads_count, messages_each, sessions = 50, 20, 10
    outcomes: dict[str, list[tuple[str, int]]] = defaultdict(list)
    done = threading.Event()

    def inject_failures() -> None:
        while not done.is_set():
            fake_groq.add_faults({"kind": "status", "status": 500})
            time.sleep(0.02)

    def sender(thread: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_tokens['access_token']}")
        session = f"s{thread % sessions}"
        for i in range(messages_each):
            text = f"t{thread}-m{i}"
            status = client.post("/chat/", {"session_id": session, "message": text}, format="json").status_code
            outcomes[session].append((text, status))

    injector = threading.Thread(target=inject_failures)
    injector.start()
    workers = [threading.Thread(target=sender, args=(t,)) for t in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    injector.join()

    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_tokens['access_token']}")
    statuses = [status for results in outcomes.values() for _, status in results]
    assert len(statuses) == threads_count * messages_each
    assert set(statuses) <= {HTTPStatus.OK, HTTPStatus.BAD_GATEWAY}
    assert statuses.count(HTTPStatus.BAD_GATEWAY) > 0
    for session, results in outcomes.items():
        stored = reader.get(f"/chat/sessions/{session}").json()["messages"]
        questions = [m["content"] for m in stored[::2]]
        assert [m["role"] for m in stored] == ["user", "assistant"] * len(questions)
        assert [m["content"] for m in stored[1::2]] == [f"Echo: {q}" for q in questions]
        succeeded = [text for text, status in results if status == HTTPStatus.OK]
        assert sorted(questions) == sorted(succeeded)  # every success stored, every failure absent
        for thread in {text.split("-")[0] for text in succeeded}:
            mine = [q for q in questions if q.startswith(f"{thread}-")]
            assert mine == [t for t in succeeded if t.startswith(f"{thread}-")]  # in the order sent
