"""Groq's x-ratelimit-* headers: kept from the latest upstream answer, shown in /admin/status and /metrics."""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path

import httpx
import pytest

from llm_provider import rate_limits
from llm_provider.rate_limits import rate_limits_observe
from llm_provider.services import upstream_rate_limits
from tests.fake_groq import LIMIT_REQUESTS, LIMIT_TOKENS, FakeGroq, go_duration
from tests.server import running_server
from tests.support import ALICE_PASSWORD, samples, scrape, value


@pytest.fixture(autouse=True)
def _nothing_observed(monkeypatch) -> None:
    monkeypatch.setattr(rate_limits, "_latest", None)


def chat(client, message: str = "hi"):
    return client.post("/chat/", {"session_id": "limits", "message": message}, format="json")


def test_status_shows_null_before_the_upstream_has_answered(alice_client, settings):
    settings.GROQ_API_KEY = ""  # the status's health check then asks the upstream nothing

    body = alice_client.get("/admin/status").json()

    assert body["upstream_rate_limits"] is None


def test_status_shows_the_latest_answers_headers(alice_client, fake_groq: FakeGroq):
    reply = chat(alice_client)
    assert reply.status_code == HTTPStatus.OK

    limits = alice_client.get("/admin/status").json()["upstream_rate_limits"]

    # The status's own health check (GET /models) is the latest answer: two requests, the chat's tokens.
    assert len(fake_groq.requests) == 2
    used_tokens = reply.json()["usage"]["total_tokens"]
    assert limits == {
        "limit_requests": LIMIT_REQUESTS,
        "remaining_requests": LIMIT_REQUESTS - 2,
        "reset_requests": go_duration(86_400 * 2 / LIMIT_REQUESTS),
        "limit_tokens": LIMIT_TOKENS,
        "remaining_tokens": LIMIT_TOKENS - used_tokens,
        "reset_tokens": go_duration(60 * used_tokens / LIMIT_TOKENS),
        "observed_at": limits["observed_at"],
    }
    assert limits["observed_at"].endswith("+00:00")


def test_a_429_answer_is_observed_and_shows_in_metrics(alice_client, fake_groq: FakeGroq, settings):
    settings.LLM_MAX_RETRIES = 0
    chat(alice_client)
    fake_groq.add_faults({"kind": "status", "status": 429, "retry_after": 1})

    assert chat(alice_client).status_code == HTTPStatus.TOO_MANY_REQUESTS

    text = scrape()
    assert value(text, "chatbot_upstream_ratelimit_remaining", kind="requests") == LIMIT_REQUESTS - 2
    assert value(text, "chatbot_upstream_ratelimit_limit", kind="requests") == LIMIT_REQUESTS
    assert value(text, "chatbot_upstream_ratelimit_limit", kind="tokens") == LIMIT_TOKENS
    assert upstream_rate_limits()["remaining_requests"] == LIMIT_REQUESTS - 2


def test_an_answer_without_the_headers_keeps_the_last_view():
    rate_limits_observe({"x-ratelimit-remaining-requests": "7", "x-ratelimit-reset-tokens": "7.66s"})
    rate_limits_observe({"content-type": "application/json"})  # another OpenAI-compatible server

    limits = upstream_rate_limits()
    assert limits is not None
    assert (limits["remaining_requests"], limits["reset_tokens"], limits["limit_requests"]) == (7, "7.66s", None)


def test_metrics_show_the_latest_answer_whichever_gunicorn_worker_saw_it(alice, fake_groq: FakeGroq, tmp_path: Path):
    env = {"HISTORY_BACKEND": "redis", "WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    with running_server(**env) as url:
        login = httpx.post(f"{url}/admin/login", json={"username": "alice", "password": ALICE_PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}", "Connection": "close"}
        for number in range(6):  # new connections, so that both workers answer some
            sent = httpx.post(f"{url}/chat/", json={"session_id": f"s{number}", "message": "hi"}, headers=headers)
            assert sent.status_code == HTTPStatus.OK, sent.text
        scrapes = [httpx.get(f"{url}/metrics", headers={"Connection": "close"}).text for _ in range(4)]

    assert len(fake_groq.chat_requests()) == 6
    for text in scrapes:
        remaining = [v for (name, labels), v in samples(text).items() if name == "chatbot_upstream_ratelimit_remaining"]
        # One series per kind (not one per worker), holding the value of the last of the six answers.
        assert len(remaining) == 2
        assert value(text, "chatbot_upstream_ratelimit_remaining", kind="requests") == LIMIT_REQUESTS - 6
