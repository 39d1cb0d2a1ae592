from __future__ import annotations

import re
from datetime import datetime, timedelta
from http import HTTPStatus

import pytest
from rest_framework.test import APIClient

from accounts.admins import admin_get, admin_get_by_username
from accounts.api_keys import api_key_create
from tests.support import ALICE_PASSWORD, login


def test_info_describes_the_admin(alice, alice_client):
    response = alice_client.get("/admin/info")

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["id"] == alice.id
    assert body["username"] == "alice"
    assert body["created_at"] and body["last_updated"]
    assert body["active_logins"] == body["active_sessions"] == 1


def test_change_credentials_works_as_the_documented_example(api, alice, alice_client, alice_tokens):
    response = alice_client.post(
        "/admin/change-credentials",
        {"new_username": "newadmin", "new_password": "newsecurepass", "current_password": ALICE_PASSWORD},
        format="json",
    )

    assert response.status_code == HTTPStatus.OK
    assert response.json()["username"] == "newadmin"
    # Every old token is revoked; the new credentials work and keep the same admin id.
    assert alice_client.get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED
    refresh = api.post("/admin/refresh", {"refresh_token": alice_tokens["refresh_token"]}, format="json")
    assert refresh.status_code == HTTPStatus.UNAUTHORIZED
    assert api.post("/admin/login", {"username": "alice", "password": ALICE_PASSWORD}, format="json").status_code == 401
    tokens = login(api, "newadmin", "newsecurepass")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert api.get("/admin/info").json()["id"] == alice.id


def test_change_credentials_needs_the_current_password(alice, alice_client):
    response = alice_client.post(
        "/admin/change-credentials", {"new_password": "another-password", "current_password": "wrong"}, format="json"
    )

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "wrong_password"
    assert alice_client.get("/admin/info").status_code == HTTPStatus.OK
    assert admin_get(alice.id).last_updated == alice.last_updated


def test_the_documented_example_without_current_password_works_just_after_login(alice, alice_client):
    body = {"new_username": "newadmin", "new_password": "newsecurepass"}  # as docs/api.md's example sends it

    response = alice_client.post("/admin/change-credentials", body, format="json")

    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["username"] == "newadmin"


def test_an_older_login_must_send_the_current_password(alice, alice_client, settings):
    settings.RECENT_LOGIN_SECONDS = 0
    body = {"new_username": "newadmin", "new_password": "newsecurepass"}

    response = alice_client.post("/admin/change-credentials", body, format="json")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "current_password_required"
    assert admin_get(alice.id).username == "alice"


def test_an_api_key_must_send_the_current_password(alice):
    _, raw = api_key_create(admin_id=alice.id)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    response = client.post("/admin/change-credentials", {"new_password": "newsecurepass"}, format="json")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "current_password_required"
    assert admin_get(alice.id).password_hash == alice.password_hash


@pytest.mark.parametrize(
    "body",
    [
        {"new_password": "another-password", "current_password": ""},
        {"current_password": ALICE_PASSWORD},
        {"current_password": ALICE_PASSWORD, "new_password": "short"},
        {"current_password": ALICE_PASSWORD, "new_password": "é" * 40},
        {"current_password": ALICE_PASSWORD, "new_username": "has space"},
        {"current_password": ALICE_PASSWORD, "new_username": ""},
    ],
)
def test_change_credentials_rejects_bad_input_and_changes_nothing(alice, alice_client, body):
    response = alice_client.post("/admin/change-credentials", body, format="json")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert admin_get(alice.id).username == "alice"
    assert alice_client.get("/admin/info").status_code == HTTPStatus.OK


@pytest.mark.parametrize(
    ("new_password", "message"),
    [
        ("short", "new_password: Password must be at least 8 characters long."),
        ("é" * 40, "new_password: Password must be at most 72 bytes long (UTF-8)."),
        (
            "change-me-too-12-chars",
            "new_password: Password is a well-known default or an example from the documentation; choose another.",
        ),
    ],
)
def test_change_credentials_says_why_a_new_password_is_refused(alice_client, new_password, message):
    body = {"current_password": ALICE_PASSWORD, "new_password": new_password}

    response = alice_client.post("/admin/change-credentials", body, format="json")

    assert response.json()["detail"] == message


def test_change_credentials_refuses_a_taken_username(alice, bob, alice_client):
    response = alice_client.post(
        "/admin/change-credentials", {"new_username": "bob", "current_password": ALICE_PASSWORD}, format="json"
    )

    assert response.status_code == HTTPStatus.CONFLICT
    assert admin_get_by_username("bob").id == bob.id
    assert admin_get_by_username("alice").id == alice.id


def test_sessions_lists_live_logins_and_revokes_one(api, alice, alice_client):
    other = login(APIClient(), "alice", ALICE_PASSWORD)

    listing = alice_client.get("/admin/sessions").json()

    assert listing["count"] == 2
    current = [s for s in listing["sessions"] if s["current"]]
    others = [s for s in listing["sessions"] if not s["current"]]
    assert len(current) == len(others) == 1
    assert set(current[0]) == {"id", "created_at", "expires_at", "last_activity", "current"}

    assert alice_client.delete(f"/admin/sessions/{others[0]['id']}").status_code == HTTPStatus.NO_CONTENT
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {other['access_token']}")
    assert api.get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED
    assert alice_client.get("/admin/sessions/").json()["count"] == 1


def test_sessions_and_admins_carry_utc_timestamps_to_the_second(alice_client):
    (session,) = alice_client.get("/admin/sessions").json()["sessions"]
    info = alice_client.get("/admin/info").json()

    stamps = [session[name] for name in ("created_at", "expires_at", "last_activity")]
    stamps += [info["created_at"], info["last_updated"]]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", stamp) for stamp in stamps), stamps
    lifetime = datetime.fromisoformat(session["expires_at"]) - datetime.fromisoformat(session["created_at"])
    assert lifetime == timedelta(days=1)


def test_sessions_cannot_revoke_another_admins_login(alice_client, bob):
    bob_tokens = login(APIClient(), "bob", "bob-password-22")
    bob_client = APIClient()
    bob_client.credentials(HTTP_AUTHORIZATION=f"Bearer {bob_tokens['access_token']}")
    bob_sid = bob_client.get("/admin/sessions").json()["sessions"][0]["id"]

    assert alice_client.delete(f"/admin/sessions/{bob_sid}").status_code == HTTPStatus.NOT_FOUND
    assert bob_client.get("/admin/info").status_code == HTTPStatus.OK


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/admin/logout"),
        ("get", "/admin/info"),
        ("post", "/admin/change-credentials"),
        ("get", "/admin/sessions"),
        ("delete", "/admin/sessions/abc"),
    ],
)
def test_admin_endpoints_need_a_token(api, method, path):
    response = getattr(api, method)(path)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert "WWW-Authenticate" in response
