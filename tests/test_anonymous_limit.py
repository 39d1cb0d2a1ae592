"""ANON_REQUESTS_PER_MINUTE: requests without credentials that authenticate, counted per client address in Redis."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from rest_framework.test import APIClient

from tests.support import ALICE_PASSWORD, login

LIMIT = 3


@pytest.fixture(autouse=True)
def small_limit(settings):
    settings.ANON_REQUESTS_PER_MINUTE = LIMIT


def statuses(client: APIClient, path: str, count: int, **headers: str) -> list[int]:
    return [client.get(path, **headers).status_code for _ in range(count)]


def test_an_address_over_the_limit_gets_429_with_retry_after(api):
    assert statuses(api, "/info", LIMIT) == [HTTPStatus.OK] * LIMIT

    refused = api.get("/openapi.json")

    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert refused.json()["code"] == "throttled"
    assert set(refused.json()) == {"detail", "code"}
    assert 1 <= int(refused["Retry-After"]) <= 60


def test_another_address_is_unaffected(api):
    statuses(api, "/info", LIMIT + 2)

    other = APIClient(REMOTE_ADDR="192.0.2.7")

    assert statuses(other, "/info", LIMIT) == [HTTPStatus.OK] * LIMIT
    assert other.get("/info").status_code == HTTPStatus.TOO_MANY_REQUESTS


def test_addresses_are_the_ones_the_trusted_proxy_header_gives(api, settings):
    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    first = {"HTTP_X_FORWARDED_FOR": "198.51.100.1"}
    second = {"HTTP_X_FORWARDED_FOR": "spoofed, 198.51.100.2"}

    assert statuses(api, "/info", LIMIT + 1, **first)[-1] == HTTPStatus.TOO_MANY_REQUESTS
    assert statuses(api, "/info", LIMIT, **second) == [HTTPStatus.OK] * LIMIT


def test_authenticated_requests_are_not_counted(api, alice):
    tokens = login(api, "alice", ALICE_PASSWORD)  # the login itself is anonymous: one of the three
    alice_client = APIClient()
    alice_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")

    assert statuses(alice_client, "/admin/info", 2 * LIMIT) == [HTTPStatus.OK] * 2 * LIMIT
    assert statuses(api, "/info", LIMIT) == [HTTPStatus.OK, HTTPStatus.OK, HTTPStatus.TOO_MANY_REQUESTS]
    # The address is over its limit; its admin is not.
    assert alice_client.get("/admin/info").status_code == HTTPStatus.OK


def test_invalid_credentials_do_not_escape_the_count(api):
    forged = {"HTTP_AUTHORIZATION": "Bearer not-a-token"}

    assert statuses(api, "/health", LIMIT + 1, **forged)[-1] == HTTPStatus.TOO_MANY_REQUESTS


def test_liveness_is_exempt(api):
    statuses(api, "/info", LIMIT + 1)

    assert statuses(api, "/health/live", 2 * LIMIT) == [HTTPStatus.OK] * 2 * LIMIT


def test_zero_turns_the_limit_off(api, settings):
    settings.ANON_REQUESTS_PER_MINUTE = 0

    assert statuses(api, "/info", 2 * LIMIT) == [HTTPStatus.OK] * 2 * LIMIT
