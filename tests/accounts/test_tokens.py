from __future__ import annotations

import base64
import json
import time
from http import HTTPStatus

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.admins import admin_get
from accounts.services import admin_delete
from tests.support import wait_for

PROTECTED = "/admin/info"


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def sign(claims: dict, key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key or settings.SIMPLE_JWT["SIGNING_KEY"], algorithm=algorithm)


def get_with(token: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get(PROTECTED)


def assert_refused(response) -> None:
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert set(response.json()) == {"detail", "code"}


def test_a_valid_token_is_accepted(alice_tokens):
    assert get_with(alice_tokens["access_token"]).status_code == HTTPStatus.OK


def test_it_rejects_a_missing_token(api):
    assert_refused(api.get(PROTECTED))


@pytest.mark.parametrize("header", ["Bearer", "Bearer garbage", "Bearer a.b.c", "Basic YWRtaW46YWRtaW4xMjM="])
def test_it_rejects_garbage(api, alice, header):
    api.credentials(HTTP_AUTHORIZATION=header)
    assert_refused(api.get(PROTECTED))


def test_it_rejects_alg_none(alice_tokens):
    forged = jwt.encode(claims_of(alice_tokens["access_token"]), None, algorithm="none")
    assert_refused(get_with(forged))


def test_it_rejects_a_token_signed_with_a_public_string(alice_tokens):
    forged = sign(claims_of(alice_tokens["access_token"]), key="your-super-secret-key-min-32-characters-long")
    assert_refused(get_with(forged))


def test_it_rejects_a_token_without_exp(alice_tokens):
    claims = claims_of(alice_tokens["access_token"])
    del claims["exp"]
    assert_refused(get_with(sign(claims)))


def test_it_rejects_an_expired_token_with_a_code_of_its_own(alice_tokens):
    claims = claims_of(alice_tokens["access_token"]) | {"exp": int(time.time()) - 5}
    response = get_with(sign(claims))

    assert_refused(response)
    assert response.json()["code"] == "token_expired"
    assert "/admin/refresh" in response.json()["detail"]


def test_a_token_accepted_before_is_refused_once_it_expires(alice_tokens):
    claims = claims_of(alice_tokens["access_token"]) | {"exp": int(time.time()) + 2}
    token = sign(claims)
    assert get_with(token).status_code == HTTPStatus.OK  # verified once, and remembered by its bytes

    wait_for(lambda: time.time() > claims["exp"])
    response = get_with(token)

    assert_refused(response)
    assert response.json()["code"] == "token_expired"


def test_a_token_accepted_before_is_refused_at_once_when_its_login_is_revoked(alice_client, alice_tokens):
    assert get_with(alice_tokens["access_token"]).status_code == HTTPStatus.OK
    alice_client.post("/admin/logout")

    response = get_with(alice_tokens["access_token"])

    assert_refused(response)
    assert response.json()["code"] == "token_revoked"


def test_an_expired_token_with_a_forged_signature_is_not_called_expired(alice_tokens):
    claims = claims_of(alice_tokens["access_token"]) | {"exp": int(time.time()) - 5}
    response = get_with(sign(claims, key="another-key-that-is-long-enough-0123456789"))

    assert_refused(response)
    assert response.json()["code"] == "token_not_valid"


def test_an_expired_refresh_token_says_so(api, alice_tokens):
    claims = claims_of(alice_tokens["refresh_token"]) | {"exp": int(time.time()) - 5}
    response = api.post("/admin/refresh", {"refresh_token": sign(claims)}, format="json")

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["code"] == "token_expired"


@pytest.mark.parametrize("claim", ["iss", "aud"])
def test_it_rejects_a_token_for_another_issuer_or_audience(alice_tokens, claim):
    claims = claims_of(alice_tokens["access_token"]) | {claim: "someone-else"}
    assert_refused(get_with(sign(claims)))


def test_it_rejects_a_refresh_token_used_as_an_access_token(alice_tokens):
    assert_refused(get_with(alice_tokens["refresh_token"]))


def test_it_rejects_a_token_whose_session_claim_was_swapped(alice_tokens, bob, api):
    bob_tokens = api.post("/admin/login", {"username": "bob", "password": "bob-password-22"}, format="json").json()
    claims = claims_of(alice_tokens["access_token"]) | {"sid": claims_of(bob_tokens["access_token"])["sid"]}
    assert_refused(get_with(sign(claims)))


def test_it_rejects_the_token_of_a_deleted_admin(alice, alice_tokens):
    admin_delete(admin_get(alice.id))
    assert_refused(get_with(alice_tokens["access_token"]))


def test_logout_revokes_the_access_token(alice_client, alice_tokens):
    response = alice_client.post("/admin/logout")

    assert response.status_code == HTTPStatus.OK
    assert_refused(get_with(alice_tokens["access_token"]))
    refreshed = APIClient().post("/admin/refresh", {"refresh_token": alice_tokens["refresh_token"]}, format="json")
    assert refreshed.status_code == HTTPStatus.UNAUTHORIZED


def test_logout_also_revokes_a_refresh_token_from_another_login(api, alice_client, alice_tokens):
    other = api.post("/admin/login", {"username": "alice", "password": "alice-password-1"}, format="json").json()

    alice_client.post("/admin/logout", {"refresh_token": other["refresh_token"]}, format="json")

    assert_refused(get_with(other["access_token"]))


def test_logout_refuses_another_admins_refresh_token(api, alice_client, bob):
    other = api.post("/admin/login", {"username": "bob", "password": "bob-password-22"}, format="json").json()

    response = alice_client.post("/admin/logout", {"refresh_token": other["refresh_token"]}, format="json")

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert get_with(other["access_token"]).status_code == HTTPStatus.OK


def test_refresh_gives_a_working_access_token(api, alice_tokens):
    response = api.post("/admin/refresh/", {"refresh_token": alice_tokens["refresh_token"]}, format="json")

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert get_with(body["access_token"]).status_code == HTTPStatus.OK
    assert claims_of(body["access_token"])["sid"] == claims_of(alice_tokens["access_token"])["sid"]


@pytest.mark.parametrize("body", [{}, {"refresh_token": "garbage"}])
def test_refresh_rejects_bad_input(api, body):
    response = api.post("/admin/refresh", body, format="json")
    assert response.status_code in (HTTPStatus.BAD_REQUEST, HTTPStatus.UNAUTHORIZED)


def test_refresh_rejects_an_access_token(api, alice_tokens):
    response = api.post("/admin/refresh", {"refresh_token": alice_tokens["access_token"]}, format="json")
    assert response.status_code == HTTPStatus.UNAUTHORIZED


def test_authenticated_requests_answer_503_when_redis_is_down(alice_tokens, redis_down):
    response = get_with(alice_tokens["access_token"])
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["code"] == "redis_unavailable"


def refused_detail(authorization: str) -> str:
    response = APIClient(HTTP_AUTHORIZATION=authorization).get(PROTECTED)
    assert_refused(response)
    return response.json()["detail"]


@pytest.mark.parametrize("token", ["not-a-token", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0", "a.b.c"])
def test_a_malformed_token_is_called_malformed(token):
    detail = refused_detail(f"Bearer {token}")

    assert detail.startswith("The access token is malformed: a token is three base64url parts")


def test_a_cut_short_token_is_called_malformed(alice_tokens):
    detail = refused_detail(f"Bearer {alice_tokens['access_token'][:40]}")

    assert "malformed" in detail and "Given token not valid" not in detail


def test_a_forged_signature_says_the_signature_does_not_match(alice_tokens):
    claims = claims_of(alice_tokens["access_token"])
    detail = refused_detail(f"Bearer {sign(claims, key='another-key-that-is-long-enough-0123456789')}")

    assert detail.startswith("The access token's signature does not match")
    assert "JWT_SIGNING_KEY" in detail


def test_a_refresh_token_sent_as_an_access_token_says_where_it_goes(alice_tokens):
    detail = refused_detail(f"Bearer {alice_tokens['refresh_token']}")

    assert detail.startswith("This is a refresh token: send it to POST /admin/refresh")


def test_an_access_token_sent_to_refresh_says_so(api, alice_tokens):
    response = api.post("/admin/refresh", {"refresh_token": alice_tokens["access_token"]}, format="json")

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json() == {
        "detail": "This is an access token: POST /admin/refresh takes the refresh_token that login returned.",
        "code": "token_not_valid",
    }


def test_another_issuers_token_says_it_was_issued_for_another_service(alice_tokens):
    claims = claims_of(alice_tokens["access_token"]) | {"iss": "someone-else"}

    assert "issued for another service" in refused_detail(f"Bearer {sign(claims)}")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("{token}", "The Authorization header has no `Bearer` prefix"),
        ("bearer {token}", "must be written `Bearer`, not `bearer`"),
        ("Token {token}", "uses the `Token` scheme, which this API does not take"),
        ("Basic YWRtaW46YWRtaW4xMjM=", "uses the `Basic` scheme"),
    ],
)
def test_a_header_without_the_bearer_prefix_says_so(alice_tokens, header, expected):
    response = APIClient(HTTP_AUTHORIZATION=header.format(token=alice_tokens["access_token"])).get(PROTECTED)

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["code"] == "not_authenticated"
    assert expected in response.json()["detail"]
    assert "send `Authorization: Bearer <token>`" in response.json()["detail"]


def test_no_header_still_says_no_credentials_were_provided():
    response = APIClient().get(PROTECTED)

    assert response.json() == {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}


def test_a_token_signed_with_another_algorithm_says_so_without_echoing_what_it_was_sent(alice_tokens):
    claims = claims_of(alice_tokens["access_token"])
    hs512 = jwt.encode(claims, settings.SIMPLE_JWT["SIGNING_KEY"] + "x" * 64, algorithm="HS512")
    header = base64.urlsafe_b64encode(json.dumps({"alg": "<script>" * 100, "typ": "JWT"}).encode()).rstrip(b"=")
    odd = ".".join([header.decode(), alice_tokens["access_token"].split(".", 1)[1]])

    assert refused_detail(f"Bearer {hs512}").startswith("The access token is signed with HS512, not HS256")
    assert refused_detail(f"Bearer {odd}").startswith("The access token is signed with ?, not HS256")
