from __future__ import annotations

import statistics
import time
from http import HTTPStatus

import jwt
import pytest
from django.conf import settings

from accounts.services import admin_create
from tests.support import ALICE_PASSWORD


def test_it_logs_in_answering_in_the_documented_shape(api, alice):
    response = api.post("/admin/login", {"username": "alice", "password": ALICE_PASSWORD}, format="json")

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["username"] == "alice"
    assert body["refresh_expires_in"] == 86400
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == alice.id
    assert claims["iss"] == claims["aud"] == "chatbot-api"
    assert claims["exp"] - claims["iat"] == 3600


def test_it_answers_with_a_trailing_slash_too(api, alice):
    response = api.post("/admin/login/", {"username": "alice", "password": ALICE_PASSWORD}, format="json")
    assert response.status_code == HTTPStatus.OK


@pytest.mark.parametrize("username", ["alice", "mallory"])
def test_it_rejects_bad_credentials_with_one_answer(api, alice, username):
    response = api.post("/admin/login", {"username": username, "password": "wrong-password"}, format="json")

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json() == {"detail": "Invalid username or password.", "code": "invalid_credentials"}
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_unknown_and_known_usernames_take_similar_time(api, settings):
    # Rounds enough for bcrypt to be most of a login's CPU, so that a login skipping the dummy check for an
    # unknown username would take a fraction of a known one's (about a tenth here), well outside the band.
    settings.BCRYPT_ROUNDS = 8
    settings.LOGIN_MAX_FAILURES_PER_USERNAME = settings.LOGIN_MAX_FAILURES_PER_IP = 100
    admin_create(username="carol", password=ALICE_PASSWORD)  # hashed with those rounds, as the dummy check is

    def median_seconds(username: str) -> float:
        # This thread's CPU time, which the bcrypt check is nearly all of: other work on the machine moves it
        # much less than it moves the wall clock.
        samples = []
        for _ in range(11):
            started = time.thread_time()
            api.post("/admin/login", {"username": username, "password": "wrong-password"}, format="json")
            samples.append(time.thread_time() - started)
        return statistics.median(samples)

    median_seconds("mallory")  # warm the dummy hash
    known, unknown = median_seconds("carol"), median_seconds("mallory")
    assert 0.7 < unknown / known < 1.4


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "alice"},
        {"password": "x"},
        {"username": "", "password": "x"},
        {"username": ["alice"], "password": "x"},
        {"username": "a" * 151, "password": "x"},
        {"username": "alice", "password": "é" * 37},  # 74 bytes: over bcrypt's limit
    ],
)
def test_it_rejects_malformed_bodies_with_400(api, alice, body):
    response = api.post("/admin/login", body, format="json")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "invalid"


def test_it_refuses_a_password_longer_than_bcrypt_reads_before_checking_it(api, alice):
    response = api.post("/admin/login", {"username": "alice", "password": "é" * 37}, format="json")

    assert response.json()["detail"] == "password: Password must be at most 72 bytes long (UTF-8)."


def test_it_rejects_a_body_that_is_not_json(api, alice):
    response = api.post("/admin/login", "{not json", content_type="application/json")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert set(response.json()) >= {"detail", "code"}


def test_it_answers_503_when_redis_is_down(api, redis_down):
    response = api.post("/admin/login", {"username": "alice", "password": ALICE_PASSWORD}, format="json")

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["code"] == "redis_unavailable"
    assert response["Retry-After"] == "5"


def test_the_access_token_expires_after_the_configured_minutes(api, alice):
    body = api.post("/admin/login", {"username": "alice", "password": ALICE_PASSWORD}, format="json").json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == settings.ACCESS_TOKEN_EXPIRE_MINUTES * 60


def test_a_json_login_sent_without_its_content_type_is_a_415_that_says_what_to_send(api, alice):
    body = '{"username":"alice", "password":"alice-password-1"}'  # what curl -d sends as a form

    response = api.post("/admin/login", body, content_type="application/x-www-form-urlencoded")

    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    assert "Content-Type: application/json" in response.json()["detail"]


def test_a_real_form_login_still_works(api, alice):
    response = api.post("/admin/login", {"username": "alice", "password": "alice-password-1"}, format="multipart")
    assert response.status_code == HTTPStatus.OK


def test_the_default_admin_comes_back_after_redis_restarts_empty(api, settings):
    # No admin at all, as after a Redis without persistence restarted under a running service.
    response = api.post(
        "/admin/login",
        {"username": settings.DEFAULT_ADMIN_USERNAME, "password": settings.DEFAULT_ADMIN_PASSWORD},
        format="json",
    )

    assert response.status_code == HTTPStatus.OK, response.content


def test_no_default_admin_comes_back_while_other_admins_exist(api, alice, settings):
    response = api.post(
        "/admin/login",
        {"username": settings.DEFAULT_ADMIN_USERNAME, "password": settings.DEFAULT_ADMIN_PASSWORD},
        format="json",
    )

    assert response.status_code == HTTPStatus.UNAUTHORIZED
