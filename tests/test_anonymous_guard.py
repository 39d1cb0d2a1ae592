"""core/anonymous.py: requests without working credentials refused before Django's stack once their address is over
ANON_REQUESTS_PER_MINUTE, and at most ANON_MAX_CONCURRENT of them in a worker at once (real Redis; the worker's
cap over real HTTP under gunicorn)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http import HTTPStatus

import httpx
import pytest
from django.http import HttpResponse
from rest_framework.test import APIClient

from core.anonymous import AnonymousGuardMiddleware
from tests.conftest import ALICE_PASSWORD, login
from tests.server import running_server
from tests.support import login_headers

LIMIT = 3


@pytest.fixture
def small_limit(settings):
    settings.ANON_REQUESTS_PER_MINUTE = LIMIT


def refused_before_django(response) -> bool:
    """The request log's middleware, which runs after the guard, sets X-Request-ID on every answer it sees."""
    return "X-Request-ID" not in response


@pytest.mark.usefixtures("small_limit")
def test_an_address_over_the_limit_is_refused_before_django_with_a_canned_429(api):
    answered = [api.get("/info") for _ in range(LIMIT)]
    refused = api.get("/openapi.json")

    assert [r.status_code for r in answered] == [HTTPStatus.OK] * LIMIT
    assert not any(refused_before_django(r) for r in answered)
    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert refused_before_django(refused)
    assert refused.json()["code"] == "throttled"
    assert set(refused.json()) == {"detail", "code"}
    assert 1 <= int(refused["Retry-After"]) <= 60


@pytest.mark.usefixtures("small_limit")
def test_redis_verdict_from_other_workers_is_remembered_until_retry_after(api):
    # Each test client loads its own middleware: two clients on one address are two workers sharing Redis.
    for _ in range(LIMIT):
        assert api.get("/info").status_code == HTTPStatus.OK
    other_worker = APIClient()

    by_redis = other_worker.get("/info")
    then = other_worker.get("/info")

    assert by_redis.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert not refused_before_django(by_redis)  # this worker had counted one request: DRF's throttle refused it
    assert then.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert refused_before_django(then)
    assert int(then["Retry-After"]) <= int(by_redis["Retry-After"])


@pytest.mark.usefixtures("small_limit")
def test_a_valid_token_from_an_address_over_the_limit_is_served(api, alice):
    tokens = login(api, "alice", ALICE_PASSWORD)
    for _ in range(LIMIT):
        api.get("/info")
    assert api.get("/info").status_code == HTTPStatus.TOO_MANY_REQUESTS

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")

    assert api.get("/admin/info").status_code == HTTPStatus.OK


@pytest.mark.usefixtures("small_limit")
def test_failed_credentials_over_the_limit_are_refused_before_django(api, alice):
    tokens = login(api, "alice", ALICE_PASSWORD)
    forged = {"HTTP_AUTHORIZATION": "Bearer not-a-token"}
    failed = [api.get("/chat/sessions", **forged) for _ in range(LIMIT + 1)]

    refused = api.get("/chat/sessions", **forged)
    with_a_valid_token = api.get("/admin/info", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")

    assert [r.status_code for r in failed] == [HTTPStatus.UNAUTHORIZED] * (LIMIT + 1)
    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert refused_before_django(refused)
    # The documented price of that bound: the address's credentials wait out the minute too.
    assert with_a_valid_token.status_code == HTTPStatus.TOO_MANY_REQUESTS


@pytest.mark.usefixtures("small_limit")
def test_liveness_is_never_refused(api):
    for _ in range(LIMIT + 1):
        api.get("/info")

    assert [api.get("/health/live").status_code for _ in range(2 * LIMIT)] == [HTTPStatus.OK] * 2 * LIMIT


def test_refusals_are_counted_in_the_metrics(api, settings):
    settings.ANON_REQUESTS_PER_MINUTE = 1
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1"]
    api.get("/info")
    api.get("/info")
    api.get("/info")
    settings.ANON_REQUESTS_PER_MINUTE = 0

    text = api.get("/metrics").content.decode()

    line = next(line for line in text.splitlines() if line.startswith('chatbot_anonymous_refused_total{reason="rate"}'))
    assert float(line.split()[-1]) >= 2


def test_a_worker_serves_at_most_anon_worker_requests_per_second(settings):
    settings.ANON_WORKER_REQUESTS_PER_SECOND = 2
    guard = AnonymousGuardMiddleware(lambda request: HttpResponse())
    start = guard.refilled_at

    within_the_first_second = [guard._take_token(start + t) for t in (0.0, 0.1, 0.2)]
    half_a_second_on = guard._take_token(start + 0.7)

    assert within_the_first_second == [True, True, False]
    assert half_a_second_on is True


class HangingUpstream:
    """An upstream that accepts /models requests and answers none until released: whatever asks it stays in flight."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.asked = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.server.accept()
        with connection:
            connection.recv(65536)
            self.asked.set()
            self.release.wait(60)

    def close(self) -> None:
        self.release.set()
        self.server.close()


@pytest.fixture
def hanging_upstream() -> Iterator[HangingUpstream]:
    upstream = HangingUpstream()
    yield upstream
    upstream.close()


def test_a_worker_serves_at_most_anon_max_concurrent_anonymous_requests_at_once(hanging_upstream, alice):
    with running_server(
        WEB_CONCURRENCY="1",
        ANON_MAX_CONCURRENT="1",
        TEST_FAKE_GROQ_PORT=str(hanging_upstream.port),  # tests/settings.py makes it GROQ_BASE_URL
        LOG_LEVEL="warning",
    ) as url:
        admin = login_headers(url, "alice", ALICE_PASSWORD)
        with httpx.Client(base_url=url, timeout=30) as client:
            # /llm/health asks the upstream for its models: it holds the worker's one anonymous slot meanwhile.
            holder = threading.Thread(target=client.get, args=("/llm/health",), daemon=True)
            holder.start()
            assert hanging_upstream.asked.wait(30)

            busy = httpx.get(f"{url}/info", timeout=30)
            live = httpx.get(f"{url}/health/live", timeout=30)
            credentials = {"username": "alice", "password": ALICE_PASSWORD}
            a_login = httpx.post(f"{url}/admin/login", json=credentials, timeout=30)
            chat_side = httpx.get(f"{url}/admin/info", headers=admin, timeout=30)
            hanging_upstream.close()
            holder.join(30)
            after = httpx.get(f"{url}/info", timeout=30)

    assert busy.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert busy.json() == {"detail": busy.json()["detail"], "code": "anonymous_busy"}
    assert busy.headers["Retry-After"] == "1"
    assert "X-Request-ID" not in busy.headers
    assert live.status_code == HTTPStatus.OK
    assert a_login.status_code == HTTPStatus.OK  # logins have limits of their own
    assert chat_side.status_code == HTTPStatus.OK
    assert after.status_code == HTTPStatus.OK
