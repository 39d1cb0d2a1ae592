"""API keys: created once, stored hashed, attributable to their admin, revocable; accepted as a Bearer token."""

from __future__ import annotations

import hashlib
import io
from http import HTTPStatus

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.api_keys import api_key_create, api_key_list
from accounts.budgets import Budget, BudgetOwner, budget_set, budget_status
from accounts.login_sessions import login_session_revoke_all
from accounts.services import admin_delete, admin_update_credentials
from core.redis_store import redis_client


def key_client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_an_admin_creates_a_key_and_uses_it(alice_client):
    response = alice_client.post("/admin/api-keys", {"name": "script"}, format="json")

    assert response.status_code == HTTPStatus.CREATED
    created = response.json()
    assert created["key"].startswith("cgk_") and len(created["key"]) > 40
    assert created["prefix"] == created["key"][:8]
    assert created["name"] == "script" and created["last_used"] is None
    info = key_client(created["key"]).get("/admin/info")
    assert info.status_code == HTTPStatus.OK
    assert info.json()["username"] == "alice"


def test_the_key_is_shown_once_and_stored_only_as_a_digest(alice_client):
    created = alice_client.post("/admin/api-keys", {}, format="json").json()

    listing = alice_client.get("/admin/api-keys").json()

    assert listing["count"] == 1
    assert "key" not in listing["keys"][0]
    assert listing["keys"][0]["id"] == created["id"]
    client = redis_client()
    stored = b" ".join(client.dump(name) or b"" for name in client.scan_iter(f"{settings.REDIS_KEY_PREFIX}:*"))
    assert created["key"].encode() not in stored
    assert hashlib.sha256(created["key"].encode()).hexdigest().encode() in stored


def test_using_a_key_records_when_it_was_last_used(alice, alice_client):
    _, raw = api_key_create(admin_id=alice.id, name="")

    key_client(raw).get("/admin/info")

    (listed,) = alice_client.get("/admin/api-keys").json()["keys"]
    assert listed["last_used"] is not None


def test_it_rejects_an_unknown_key(alice):
    response = key_client("cgk_not-a-real-key").get("/admin/info")

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json()["code"] == "invalid_api_key"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_key_stops_working(alice_client):
    created = alice_client.post("/admin/api-keys", {}, format="json").json()

    assert alice_client.delete(f"/admin/api-keys/{created['id']}").status_code == HTTPStatus.NO_CONTENT

    assert key_client(created["key"]).get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED
    assert alice_client.get("/admin/api-keys").json()["count"] == 0


def test_an_admin_cannot_see_or_revoke_anothers_keys(alice, bob_client):
    key, raw = api_key_create(admin_id=alice.id)

    assert bob_client.get("/admin/api-keys").json()["count"] == 0
    assert bob_client.delete(f"/admin/api-keys/{key.id}").status_code == HTTPStatus.NOT_FOUND
    assert key_client(raw).get("/admin/info").status_code == HTTPStatus.OK


def test_a_key_cannot_manage_keys(alice):
    _, raw = api_key_create(admin_id=alice.id)

    response = key_client(raw).post("/admin/api-keys", {}, format="json")

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert key_client(raw).get("/admin/api-keys").status_code == HTTPStatus.FORBIDDEN


def test_with_a_key_no_login_is_current_and_logout_ends_none(alice, alice_client):
    _, raw = api_key_create(admin_id=alice.id)

    listing = key_client(raw).get("/admin/sessions").json()
    response = key_client(raw).post("/admin/logout")

    assert listing["count"] == 1 and not listing["sessions"][0]["current"]
    assert response.json() == {"message": "Logged out."}
    assert alice_client.get("/admin/info").status_code == HTTPStatus.OK
    assert key_client(raw).get("/admin/info").status_code == HTTPStatus.OK


def test_revoking_tokens_keeps_keys_but_deleting_the_admin_revokes_them(alice, bob):
    _, raw = api_key_create(admin_id=alice.id)

    login_session_revoke_all(alice.id)
    assert key_client(raw).get("/admin/info").status_code == HTTPStatus.OK

    admin_delete(alice)
    assert key_client(raw).get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED
    assert api_key_list(alice.id) == []


def test_a_password_change_keeps_keys_and_revoketokens_with_api_keys_revokes_them(alice, bob):
    _, alice_key = api_key_create(admin_id=alice.id)
    _, bob_key = api_key_create(admin_id=bob.id)

    admin_update_credentials(admin=alice, new_password="alice-password-2")
    assert key_client(alice_key).get("/admin/info").status_code == HTTPStatus.OK

    out, _ = run("revoketokens", "alice", "--api-keys")
    assert "1 API key(s)" in out
    assert key_client(alice_key).get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED
    assert key_client(bob_key).get("/admin/info").status_code == HTTPStatus.OK


def test_a_renamed_admin_keeps_its_keys_under_its_new_name(alice):
    _, raw = api_key_create(admin_id=alice.id)

    admin_update_credentials(admin=alice, new_username="alicia")

    assert key_client(raw).get("/admin/info").json()["username"] == "alicia"


def test_a_jwt_still_works_beside_keys(alice_client):
    assert alice_client.get("/admin/info").status_code == HTTPStatus.OK


def test_api_keys_need_authentication(api):
    assert api.get("/admin/api-keys").status_code == HTTPStatus.UNAUTHORIZED
    assert api.post("/admin/api-keys", {}, format="json").status_code == HTTPStatus.UNAUTHORIZED


def test_a_key_name_is_at_most_100_characters(alice_client):
    response = alice_client.post("/admin/api-keys", {"name": "x" * 101}, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST


def test_createapikey_prints_a_working_key(alice):
    out, err = run("createapikey", "alice", "--name", "cron")

    raw = out.strip()
    assert raw.startswith("cgk_")
    assert "not shown again" in err
    assert key_client(raw).get("/admin/info").json()["username"] == "alice"
    assert api_key_list(alice.id)[0].name == "cron"


def test_listapikeys_shows_ids_and_owners_but_no_keys(alice, bob):
    alice_key, alice_raw = api_key_create(admin_id=alice.id, name="a-key")
    bob_key, _ = api_key_create(admin_id=bob.id, name="b-key")

    everyone, _ = run("listapikeys")
    alices, _ = run("listapikeys", "alice")

    assert alice_key.id in everyone and bob_key.id in everyone and "bob" in everyone
    assert alice_key.id in alices and bob_key.id not in alices
    assert alice_raw not in everyone
    assert "never" in alices


def test_revokeapikey_revokes_by_id(alice):
    key, raw = api_key_create(admin_id=alice.id)

    out, _ = run("revokeapikey", key.id)

    assert "Revoked" in out
    assert key_client(raw).get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED
    with pytest.raises(CommandError, match="No API key"):
        run("revokeapikey", key.id)


def test_deleteadmin_revokes_the_admins_keys(alice, bob):
    _, raw = api_key_create(admin_id=alice.id)

    run("deleteadmin", "alice")

    assert key_client(raw).get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED


def test_the_schema_offers_one_bearer_scheme_for_a_token_or_a_key(api):
    schemes = api.get("/openapi.json").json()["components"]["securitySchemes"]
    assert list(schemes) == ["jwtAuth"]  # no separate API key scheme, no session cookie box
    assert schemes["jwtAuth"]["scheme"] == "bearer"
    assert "API key" in schemes["jwtAuth"]["description"]


def test_listapikeys_shows_each_keys_last_use_budget_and_usage(alice, fake_groq):
    budgeted, raw = api_key_create(admin_id=alice.id, name="budgeted")
    plain, _ = api_key_create(admin_id=alice.id, name="plain")
    budget_set(BudgetOwner("key", budgeted.id, alice.id), Budget(50_000, "day"))
    body = {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "hi"}]}
    assert key_client(raw).post("/v1/chat/completions", body, format="json").status_code == HTTPStatus.OK
    used = budget_status(BudgetOwner("key", budgeted.id, alice.id))

    out, _ = run("listapikeys", "alice")

    header, *rows = out.splitlines()
    assert "LAST USED" in header and "BUDGET" in header and "USED THIS PERIOD" in header
    (budgeted_row,) = [row for row in rows if row.startswith(budgeted.id)]
    (plain_row,) = [row for row in rows if row.startswith(plain.id)]
    assert used is not None and used["used"] > 0
    assert " 50000/day " in budgeted_row
    assert f" {used['used']} (resets {used['resets_at']}) " in budgeted_row
    assert "never" not in budgeted_row
    (last_used,) = [key.last_used for key in api_key_list(alice.id) if key.id == budgeted.id]
    assert last_used and f" {last_used} " in budgeted_row
    assert " never " in plain_row and plain_row.split()[-3:] == ["-", "-", "plain"]
