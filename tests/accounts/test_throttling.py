from __future__ import annotations

from http import HTTPStatus

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.support import ALICE_PASSWORD


@pytest.fixture(autouse=True)
def small_limits(settings):
    settings.LOGIN_MAX_FAILURES_PER_USERNAME = 3
    settings.LOGIN_MAX_FAILURES_PER_IP = 6
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 60


def attempt(api, username: str, password: str, **headers):
    return api.post("/admin/login", {"username": username, "password": password}, format="json", **headers)


def test_a_username_is_throttled_after_the_failures_allowed(api, alice, settings):
    for _ in range(3):
        assert attempt(api, "alice", "wrong-password").status_code == HTTPStatus.UNAUTHORIZED

    response = attempt(api, "alice", ALICE_PASSWORD)  # even the right password waits now

    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response.json()["code"] == "login_throttled"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_throttled_attempts_cost_no_bcrypt(api, alice, monkeypatch):
    for _ in range(3):
        attempt(api, "alice", "wrong-password")
    checks = []
    import bcrypt

    real_checkpw = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda *a: checks.append(1) or real_checkpw(*a))

    for _ in range(20):
        attempt(api, "alice", "wrong-password")

    assert checks == []


def test_a_success_resets_the_username_counter(api, alice):
    for _ in range(2):
        attempt(api, "alice", "wrong-password")
    assert attempt(api, "alice", ALICE_PASSWORD).status_code == HTTPStatus.OK
    for _ in range(2):
        assert attempt(api, "alice", "wrong-password").status_code == HTTPStatus.UNAUTHORIZED
    assert attempt(api, "alice", ALICE_PASSWORD).status_code == HTTPStatus.OK


def test_one_address_guessing_many_usernames_is_throttled(api, alice):
    for i in range(6):
        attempt(api, f"user{i}", "wrong-password")

    assert attempt(api, "alice", ALICE_PASSWORD).status_code == HTTPStatus.TOO_MANY_REQUESTS


def test_the_forwarded_header_counts_only_when_configured(api, alice, settings):
    spoofed = {"HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    for i in range(6):
        attempt(api, f"user{i}", "wrong-password", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}")
    # Without CLIENT_IP_HEADER the header is ignored: all six came from the same peer.
    assert attempt(api, "alice", ALICE_PASSWORD, **spoofed).status_code == HTTPStatus.TOO_MANY_REQUESTS

    settings.CLIENT_IP_HEADER = "X-Forwarded-For"
    # The proxy appends the real peer last; what the client wrote before it is not trusted.
    response = attempt(api, "alice", ALICE_PASSWORD, HTTP_X_FORWARDED_FOR="127.0.0.1, 203.0.113.9")
    assert response.status_code == HTTPStatus.OK


def test_the_browser_login_is_throttled_too(alice):
    browser = Client(raise_request_exception=False)
    for _ in range(3):
        browser.post("/api-auth/login/", {"username": "alice", "password": "wrong-password"})

    response = browser.post("/api-auth/login/", {"username": "alice", "password": ALICE_PASSWORD})

    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS


def test_simultaneous_guesses_cannot_slip_past_the_limit(alice, monkeypatch):
    import threading

    import bcrypt

    checks = []
    real_checkpw = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda *a: checks.append(1) or real_checkpw(*a))
    start = threading.Barrier(30)
    statuses = []

    def guess() -> None:
        client = APIClient()
        start.wait()
        statuses.append(attempt(client, "alice", "wrong-password").status_code)

    threads = [threading.Thread(target=guess) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(checks) == 3  # LOGIN_MAX_FAILURES_PER_USERNAME: the rest were refused before bcrypt
    assert statuses.count(HTTPStatus.TOO_MANY_REQUESTS) == 27
