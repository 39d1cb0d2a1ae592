"""A Redis that lost the service's data (restarted without persistence, or flushed) is reported at once: a warning
in the log and in /health, and a token refused because its login went with the data says so."""

from __future__ import annotations

import logging
from http import HTTPStatus

import httpx

from core.redis_store import redis_client
from tests.server import running_server
from tests.support import ALICE_PASSWORD, login_headers, redis_keys


def _lose_the_data() -> None:
    """What a restart without persistence does to this run's keys."""
    redis_client().delete(*redis_keys())


def test_health_and_the_log_say_when_redis_lost_the_data(api, alice, caplog):
    assert api.get("/health").json()["redis_warning"] is None

    _lose_the_data()
    with caplog.at_level(logging.WARNING, logger="core.store_marker"):
        report = api.get("/health").json()

    assert "lost the service's data" in report["redis_warning"]
    assert report["redis_healthy"] is True
    assert any("lost the service's data" in record.getMessage() for record in caplog.records)


def test_a_token_whose_login_went_with_the_data_says_so(api, alice_client):
    assert alice_client.get("/admin/status").status_code == HTTPStatus.OK
    api.get("/health")  # this process has seen the store (as the server does at start)

    _lose_the_data()
    refused = alice_client.get("/admin/status")

    assert refused.status_code == HTTPStatus.UNAUTHORIZED
    assert refused.json()["code"] == "token_revoked"
    assert "Redis lost its data" in refused.json()["detail"]


def test_a_token_revoked_by_a_logout_says_only_that(api, alice_tokens, alice_client):
    assert alice_client.get("/admin/status").status_code == HTTPStatus.OK
    assert (
        alice_client.post("/admin/logout", {"refresh": alice_tokens["refresh_token"]}, format="json").status_code < 300
    )

    refused = alice_client.get("/admin/status")

    assert refused.json()["code"] == "token_revoked"
    assert "Redis lost" not in refused.json()["detail"]


def test_a_server_knows_from_its_start_that_a_later_empty_redis_lost_its_data(alice):
    with running_server() as url:
        headers = login_headers(url, "alice", ALICE_PASSWORD)
        assert httpx.get(f"{url}/admin/status", headers=headers).status_code == HTTPStatus.OK

        _lose_the_data()
        refused = httpx.get(f"{url}/admin/status", headers=headers)
        health = httpx.get(f"{url}/health").json()

    assert refused.json()["code"] == "token_revoked"
    assert "Redis lost its data" in refused.json()["detail"]
    assert "lost the service's data" in health["redis_warning"]
