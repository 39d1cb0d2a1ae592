"""Attacks on logins and tokens, performed against the service under gunicorn (as `make run` starts it) and the
real Redis: logins racing a revocation, locking an owner out, username case variants, throttle-key growth."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from http import HTTPStatus

import httpx
import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.models import AdminUser
from accounts.services import admin_create
from core.redis_store import redis_client, redis_tagged_key
from tests.server import running_server
from tests.support import wait_for

RACER_PASSWORD = "racer-password-1"
NEW_PASSWORD = "racer-password-2"
# Logins in flight at once; each one's bcrypt check (cost 12, ~0.3 s here) runs after the one before it
# (BCRYPT_MAX_CONCURRENT=1), so most are still checking the password when the revocation happens.
RACERS = 4


@pytest.fixture(scope="module")
def server(redis_topology: str) -> Iterator[str]:
    with running_server(CLIENT_IP_HEADER="X-Forwarded-For", BCRYPT_MAX_CONCURRENT="1") as url:
        yield url


@pytest.fixture
def racer(settings) -> AdminUser:
    settings.BCRYPT_ROUNDS = 12  # a slow hash keeps the logins in flight while the revocation happens
    racer = admin_create(username="racer", password=RACER_PASSWORD)
    settings.BCRYPT_ROUNDS = 4  # a new password set during the race is hashed quickly
    return racer


def _login(url: str, username: str, password: str, address: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": address} if address else {}
    # Logins in a race queue for one bcrypt slot at 12 rounds: on a busy machine that takes seconds.
    body = {"username": username, "password": password}
    return httpx.post(f"{url}/admin/login", json=body, headers=headers, timeout=60)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _attempts_counted(address: str) -> int:
    return int(redis_client().get(redis_tagged_key(f"t:{address}", "login-ip")) or 0)


def _revoke_by_api(url: str, token: str) -> None:
    # In this process: through the server, the request would queue for bcrypt behind the logins it races.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    body = {"current_password": RACER_PASSWORD, "new_password": NEW_PASSWORD}
    response = client.post("/admin/change-credentials", body, format="json")
    assert response.status_code == HTTPStatus.OK, response.content


REVOCATIONS: dict[str, Callable[[str, str], None]] = {
    "change-credentials": _revoke_by_api,
    "changeadminpassword": lambda url, token: call_command("changeadminpassword", "racer", password=NEW_PASSWORD),
    "deleteadmin": lambda url, token: call_command("deleteadmin", "racer", force=True),
    "revoketokens": lambda url, token: call_command("revoketokens", "racer"),
}


@pytest.mark.parametrize("revocation", REVOCATIONS)
def test_a_login_in_flight_during_a_revocation_gets_no_live_token(server, racer, fake_groq, revocation):
    earlier_token = _login(server, "racer", RACER_PASSWORD).json()["access_token"]

    def login_and_time() -> tuple[httpx.Response, float]:
        response = _login(server, "racer", RACER_PASSWORD)
        return response, time.monotonic()

    with ThreadPoolExecutor(RACERS) as pool:
        racers = [pool.submit(login_and_time) for _ in range(RACERS)]
        # Every login has started: each has counted its attempt, which a login that already succeeded gave back.
        wait_for(lambda: _attempts_counted("127.0.0.1") + sum(r.done() for r in racers) >= RACERS)
        # Once the first has answered, every other one has long read the admin it checks the password of,
        # and waits for its turn at bcrypt (BCRYPT_MAX_CONCURRENT=1).
        wait(racers, return_when=FIRST_COMPLETED)
        REVOCATIONS[revocation](server, earlier_token)
        revoked_at = time.monotonic()
        results = [future.result() for future in racers]

    assert any(finished > revoked_at for _, finished in results), "no login was still in flight"
    for response, _ in results:
        if response.status_code != HTTPStatus.OK:
            assert response.status_code == HTTPStatus.UNAUTHORIZED, response.text
            continue
        tokens = response.json()
        headers = _bearer(tokens["access_token"])
        chat = httpx.post(f"{server}/chat/", json={"message": "hi"}, headers=headers, timeout=10)
        info = httpx.get(f"{server}/admin/info", headers=headers)
        refresh = httpx.post(f"{server}/admin/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert (chat.status_code, info.status_code, refresh.status_code) == (401, 401, 401)
    assert fake_groq.chat_requests() == []


def test_guesses_from_one_address_do_not_lock_the_owner_out_of_another(server):
    attacker, owner = "203.0.113.9", "198.51.100.7"
    admin_create(username="erin", password="erin-password-1")

    statuses = [_login(server, variant, "wrong-password", attacker).status_code for variant in ["ERIN", "Erin "] * 5]
    assert statuses[-1] == HTTPStatus.TOO_MANY_REQUESTS  # the attacker is throttled...
    assert _login(server, "erin", "erin-password-1", attacker).status_code == HTTPStatus.TOO_MANY_REQUESTS

    response = _login(server, "erin", "erin-password-1", owner)  # ...but the owner, elsewhere, is not
    assert response.status_code == HTTPStatus.OK, response.text


def test_a_throttled_address_spraying_usernames_adds_no_throttle_keys(server, settings):
    for number in range(3 * settings.LOGIN_MAX_FAILURES_PER_IP):
        _login(server, f"nobody-{number}", "wrong-password", "192.0.2.50")

    user_keys = list(redis_client().scan_iter(match=redis_tagged_key("t:*", "login-user", "*")))
    assert len(user_keys) <= settings.LOGIN_MAX_FAILURES_PER_IP


def test_a_username_differing_only_in_case_cannot_be_created_or_taken(server, alice, bob_client):
    with pytest.raises(Exception, match="already exists"):
        call_command("createadmin", "ALICE", password="another-password-1")

    body = {"current_password": "bob-password-22", "new_username": "Alice"}
    response = bob_client.post("/admin/change-credentials", body, format="json")
    assert response.status_code == HTTPStatus.CONFLICT
    assert _login(server, "alice", "alice-password-1").status_code == HTTPStatus.OK
