"""GET /metrics: Prometheus text, protected by an address allow-list or a token, right across gunicorn workers."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import threading
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest
from rest_framework.test import APIClient

from tests.server import running_server
from tests.support import ALICE_PASSWORD, ROOT, scrape, value


def chat(client: APIClient, message: str = "hi"):
    return client.post("/chat/", {"session_id": "m", "message": message}, format="json")


def test_requests_are_counted_and_timed_per_route_and_status(alice_client):
    before = scrape()
    chat(alice_client)
    alice_client.get("/chat/sessions/nope")

    after = scrape()

    ok = {"method": "POST", "endpoint": "chat", "status": "200"}
    assert value(after, "chatbot_http_requests_total", **ok) - value(before, "chatbot_http_requests_total", **ok) == 1
    missing = {"method": "GET", "endpoint": "chat-session-detail", "status": "404"}
    assert value(after, "chatbot_http_requests_total", **missing) > value(
        before, "chatbot_http_requests_total", **missing
    )
    assert value(after, "chatbot_http_request_duration_seconds_count", **ok) >= 1


def test_paths_never_become_labels(alice_client):
    alice_client.get("/no/such/path/zqxj-path-marker")
    text = scrape()
    assert "zqxj-path-marker" not in text
    assert value(text, "chatbot_http_requests_total", method="GET", endpoint="unmatched", status="404") >= 1


def test_upstream_latency_errors_and_retries(alice_client, fake_groq, settings):
    settings.LLM_MAX_RETRIES = 1
    before = scrape()
    fake_groq.add_faults({"kind": "status", "status": 503, "retry_after": 0})

    assert chat(alice_client).status_code == HTTPStatus.OK  # the retry succeeds

    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("chatbot_upstream_errors_total", kind="upstream_unavailable") == 1
    assert delta("chatbot_upstream_retries_total", kind="upstream_unavailable") == 1
    assert delta("chatbot_upstream_request_duration_seconds_count", operation="chat", outcome="ok") == 1
    assert (
        delta("chatbot_upstream_request_duration_seconds_count", operation="chat", outcome="upstream_unavailable") == 1
    )
    assert delta("chatbot_llm_tokens_total", type="prompt") > 0
    assert delta("chatbot_llm_tokens_total", type="completion") > 0


def test_an_error_inside_a_stream_is_counted(alice_client, fake_groq):
    before = scrape()
    fake_groq.add_faults({"kind": "stream_error", "after_chunks": 1})

    response = alice_client.post("/chat/", {"message": "one two three", "stream": True}, format="json")
    b"".join(response.streaming_content)

    kind = {"kind": "upstream_stream_error"}
    assert (
        value(scrape(), "chatbot_upstream_errors_total", **kind)
        - value(before, "chatbot_upstream_errors_total", **kind)
        == 1
    )


def test_logins_succeeded_failed_and_throttled(api, alice, settings):
    settings.LOGIN_MAX_FAILURES_PER_USERNAME = 2
    before = scrape()

    api.post("/admin/login", {"username": "alice", "password": ALICE_PASSWORD}, format="json")
    for _ in range(3):
        api.post("/admin/login", {"username": "alice", "password": "wrong-password"}, format="json")

    after = scrape()

    def delta(outcome: str) -> float:
        return value(after, "chatbot_logins_total", outcome=outcome) - value(
            before, "chatbot_logins_total", outcome=outcome
        )

    assert (delta("succeeded"), delta("failed"), delta("throttled")) == (1, 2, 1)


def test_sessions_stored_and_redis_up_are_read_when_scraped(alice_client):
    chat(alice_client)

    text = scrape()

    assert value(text, "chatbot_sessions_stored") == 1
    assert value(text, "chatbot_redis_up") == 1


def test_metrics_still_answer_when_redis_is_down(redis_down):
    text = scrape()
    assert value(text, "chatbot_redis_up") == 0


def test_it_refuses_an_address_outside_the_allow_list():
    response = APIClient(REMOTE_ADDR="203.0.113.7").get("/metrics")

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json()["code"] == "metrics_forbidden"


def test_an_allowed_network_and_a_token_let_a_scraper_in(settings):
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.0.0.0/8")]
    settings.METRICS_TOKEN = "a-long-enough-metrics-token"

    assert APIClient(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == HTTPStatus.OK
    assert APIClient(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == HTTPStatus.FORBIDDEN
    outsider = APIClient(REMOTE_ADDR="203.0.113.7")
    assert outsider.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == HTTPStatus.FORBIDDEN
    assert (
        outsider.get("/metrics", HTTP_AUTHORIZATION="Bearer a-long-enough-metrics-token").status_code == HTTPStatus.OK
    )


def test_it_answers_prometheus_text_whatever_the_accept_header():
    response = APIClient().get("/metrics", HTTP_ACCEPT="text/plain")

    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"].startswith("text/plain")


def test_counts_add_up_across_gunicorn_workers(tmp_path: Path):
    metrics_dir = tmp_path / "metrics"
    with running_server(HISTORY_BACKEND="redis", WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)) as url:
        statuses: list[int] = []

        def hit(count: int) -> None:
            for _ in range(count):
                # A new connection each time, so that either worker may accept it.
                statuses.append(httpx.get(f"{url}/info", headers={"Connection": "close"}).status_code)

        threads = [threading.Thread(target=hit, args=(10,)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [HTTPStatus.OK] * 60  # an assert inside a thread would not fail the test
        scrapes = [httpx.get(f"{url}/metrics", headers={"Connection": "close"}).text for _ in range(4)]

        workers_that_counted = {path.stem.rsplit("_", 1)[-1] for path in metrics_dir.glob("counter_*.db")}

    for text in scrapes:
        assert value(text, "chatbot_http_requests_total", method="GET", endpoint="info", status="200") == 60
    assert len(workers_that_counted) == 2


@pytest.mark.parametrize("setting", ["METRICS_ALLOWED_IPS=not-an-address", "METRICS_TOKEN=short"])
def test_a_bad_metrics_setting_stops_startup(setting):
    name, raw = setting.split("=", 1)
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", name: raw},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode != 0
    assert name in result.stderr
