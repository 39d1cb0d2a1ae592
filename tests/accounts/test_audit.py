"""The audit log (accounts/audit.py), against the real Redis: what each action records, who may read it, and that a
flood of failed logins can neither grow it without limit nor push out what admins did."""

from __future__ import annotations

import getpass
import io
import json
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import bcrypt
from django.conf import settings
from django.core.management import call_command
from rest_framework.test import APIClient

from core.redis_store import redis_client, redis_key
from tests.support import ALICE_PASSWORD, MODEL, chat


def entries(client: APIClient, **query) -> list[dict]:
    response = client.get("/admin/audit", query)
    assert response.status_code == HTTPStatus.OK, response.content
    body = response.json()
    assert body["count"] == len(body["entries"])
    return body["entries"]


def actions(client: APIClient, **query) -> list[str]:
    return [entry["action"] for entry in entries(client, **query)]


def auditlog(*args: str) -> list[dict]:
    out = io.StringIO()
    call_command("auditlog", *args, stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def stream_length(kind: str) -> int:
    return redis_client().xlen(redis_key("audit", kind, datetime.now(UTC).date().isoformat()))


def failed_login(api: APIClient, username: str, address: str = "203.0.113.7") -> int:
    response = api.post(
        "/admin/login", {"username": username, "password": "wrong-password"}, format="json", REMOTE_ADDR=address
    )
    return response.status_code


def test_a_login_and_a_failed_one_are_recorded_with_the_username_typed_the_address_and_request_id(api, alice):
    api.post(
        "/admin/login",
        {"username": "alice", "password": ALICE_PASSWORD},
        format="json",
        REMOTE_ADDR="198.51.100.4",
        HTTP_X_REQUEST_ID="req-login-1",
    )
    api.post(
        "/admin/login",
        {"username": "ALICE\n2026-12-04 INFO forged", "password": "wrong"},
        format="json",
        REMOTE_ADDR="198.51.100.5",
        HTTP_X_REQUEST_ID="req-login-2",
    )

    logged = auditlog()
    succeeded, failed = logged[-2:]
    assert succeeded["action"] == "login.succeeded"
    assert (succeeded["actor_kind"], succeeded["actor"], succeeded["subject"]) == ("admin", alice.id, alice.id)
    assert (succeeded["client"], succeeded["request_id"], succeeded["outcome"]) == (
        "198.51.100.4",
        "req-login-1",
        "success",
    )
    assert failed["action"] == "login.failed"
    assert (failed["actor_kind"], failed["actor"], failed["outcome"]) == ("client", "", "failure")
    # Escaped as the log lines are: no line break reaches a reader of the log.
    assert failed["target"] == "ALICE\\n2026-12-04 INFO forged"
    assert (failed["client"], failed["request_id"], failed["count"]) == ("198.51.100.5", "req-login-2", 1)
    assert datetime.fromisoformat(failed["time"]) > datetime.now(UTC) - timedelta(minutes=1)


def test_each_admin_action_through_the_api_is_recorded_with_its_outcome(api, alice, alice_tokens, settings):
    settings.HISTORY_BACKEND = "redis"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_tokens['access_token']}")
    created = client.post("/admin/api-keys", {"name": "report"}, format="json").json()
    changes = {"budget": {"tokens": 1000, "period": "day"}, "tokens_per_minute": 500}
    assert client.patch(f"/admin/api-keys/{created['id']}", changes, format="json").status_code == HTTPStatus.OK
    client.delete(f"/admin/api-keys/{created['id']}")
    client.delete("/admin/api-keys/0123456789abcdef")
    refreshed = api.post("/admin/refresh", {"refresh_token": alice_tokens["refresh_token"]}, format="json")
    assert refreshed.status_code == HTTPStatus.OK
    api.post("/admin/refresh", {"refresh_token": "not-a-token"}, format="json")
    assert chat(client, "hi", session_id="s1").status_code == HTTPStatus.OK
    document = {"format": "chatbot-session/1", "session_id": "imported", "messages": [{"role": "user", "content": "x"}]}
    assert client.post("/chat/sessions/import", document, format="json").status_code == HTTPStatus.CREATED
    client.delete("/chat/sessions/s1")
    client.post("/admin/change-credentials", {"new_password": "another-password-2"}, format="json")
    assert client.post("/admin/logout", {}, format="json").status_code == HTTPStatus.UNAUTHORIZED  # revoked above

    recorded = [(e["action"], e["target"], e["outcome"], e["detail"]) for e in auditlog() if e["actor"] == alice.id]
    assert recorded == [
        ("login.succeeded", "alice", "success", ""),
        ("api_key.created", created["id"], "success", ""),
        ("api_key.changed", created["id"], "success", "budget,tokens_per_minute"),
        ("api_key.revoked", created["id"], "success", ""),
        ("api_key.revoked", "0123456789abcdef", "failure", "not_found"),
        ("session.imported", "imported", "success", ""),
        ("session.deleted", "s1", "success", ""),
        ("credentials.changed", "", "success", "new_password"),
    ]
    refreshes = [(e["actor_kind"], e["subject"], e["outcome"]) for e in auditlog("--action", "token.refreshed")]
    assert refreshes == [("client", alice.id, "success"), ("client", "", "failure")]


def test_logout_and_a_revoked_login_are_recorded(api, alice, alice_client):
    sessions = alice_client.get("/admin/sessions").json()["sessions"]
    alice_client.delete("/admin/sessions/unknown")
    assert alice_client.post("/admin/logout", {}, format="json").status_code == HTTPStatus.OK

    recorded = [(e["action"], e["target"], e["outcome"]) for e in entries(fresh_client(api, alice))][1:4]
    assert recorded == [
        ("logout", "", "success"),
        ("login_session.revoked", "unknown", "failure"),
        ("login.succeeded", "alice", "success"),
    ]
    assert sessions


def fresh_client(api: APIClient, admin) -> APIClient:
    tokens = api.post("/admin/login", {"username": admin.username, "password": ALICE_PASSWORD}, format="json").json()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    return client


def test_an_admin_sees_only_entries_by_or_about_itself(api, alice, alice_client, bob_client):
    failed_login(api, "alice")
    failed_login(api, "Alice")  # no admin's name: logins are by the exact username
    failed_login(api, "bob")
    bob_client.post("/admin/api-keys", {"name": "bobs"}, format="json")
    call_command("revoketokens", "alice", stdout=io.StringIO())  # by an operator, about alice

    seen = entries(fresh_client(api, alice))
    assert [entry["action"] for entry in seen] == [
        "login.succeeded",
        "logins.revoked",
        "login.failed",
        "login.succeeded",
    ]
    assert seen[1]["actor_kind"] == "os"
    assert seen[2]["target"] == "alice"
    assert "api_key.created" in actions(bob_client)
    assert "api_key.created" not in {entry["action"] for entry in seen}


def test_the_list_filters_by_action_and_time_and_limit(api, alice, alice_client):
    alice_client.post("/admin/api-keys", {"name": "one"}, format="json")
    alice_client.post("/admin/api-keys", {"name": "two"}, format="json")

    assert actions(alice_client, action="api_key.created") == ["api_key.created"] * 2
    assert actions(alice_client, limit=1) == ["api_key.created"]
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert actions(alice_client, **{"from": later}) == []
    earlier = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert actions(alice_client, to=earlier) == []
    assert actions(alice_client, to="0102-12-06T08:06:25Z") == []  # before 1970: no stream id, and nothing to list
    assert len(actions(alice_client, **{"from": earlier})) == 3
    bad = alice_client.get("/admin/audit", {"action": "everything", "limit": 0})
    assert bad.status_code == HTTPStatus.BAD_REQUEST
    assert bad.json()["code"] == "invalid"


def test_the_log_is_append_only_through_the_api_and_not_for_api_keys(alice_client):
    for method in ("post", "put", "patch", "delete"):
        assert getattr(alice_client, method)("/admin/audit").status_code == HTTPStatus.METHOD_NOT_ALLOWED
    raw = alice_client.post("/admin/api-keys", {"name": "k"}, format="json").json()["key"]
    by_key = APIClient()
    by_key.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert by_key.get("/admin/audit").status_code == HTTPStatus.FORBIDDEN
    assert APIClient().get("/admin/audit").status_code == HTTPStatus.UNAUTHORIZED


def test_management_commands_are_recorded_as_the_operating_system_user():
    out = io.StringIO()
    call_command("createadmin", "carol", "--password", "carol-password-1", stdout=out)
    call_command("setbudget", "carol", "--tokens", "500", stdout=out)
    created = io.StringIO()
    call_command("createapikey", "carol", "--rpm", "60", stdout=out, stderr=created)
    key_id = created.getvalue().split()[3]
    call_command("updateapikey", key_id, "--tpm", "1000", "--models", "none", stdout=out)
    call_command("setlimits", "carol", "--rpm", "30", "--tpm", "5000", stdout=out)
    call_command("changeadminpassword", "carol", "--password", "carol-password-2", stdout=out)
    call_command("deleteadmin", "carol", "--force", stdout=out)

    logged = auditlog()
    assert [entry["action"] for entry in logged] == [
        "admin.created",
        "budget.set",
        "api_key.created",
        "api_key.changed",
        "limits.set",
        "credentials.changed",
        "admin.deleted",
    ]
    assert {(entry["actor_kind"], entry["actor"], entry["client"]) for entry in logged} == {
        ("os", getpass.getuser(), "local")
    }
    assert logged[1]["detail"] == "500/day"
    assert (logged[3]["target"], logged[3]["detail"]) == (key_id, "models,tokens_per_minute")
    assert logged[4]["detail"] == "rpm=30,tpm=5000"
    assert len({entry["subject"] for entry in logged}) == 1
    assert [entry["action"] for entry in auditlog("--action", "admin.deleted")] == ["admin.deleted"]
    assert auditlog("--from", (datetime.now(UTC) + timedelta(minutes=1)).isoformat()) == []


def test_each_day_expires_after_the_retention(alice_client):
    alice_client.post("/admin/api-keys", {"name": "k"}, format="json")
    key = redis_key("audit", "admin", datetime.now(UTC).date().isoformat())
    ttl_days = redis_client().ttl(key) / 86400
    assert settings.AUDIT_RETENTION_DAYS < ttl_days <= settings.AUDIT_RETENTION_DAYS + 1


def test_repeated_failures_from_one_address_are_aggregated_and_cost_one_bcrypt_check_each(
    api, alice, settings, monkeypatch
):
    settings.LOGIN_MAX_FAILURES_PER_USERNAME = settings.LOGIN_MAX_FAILURES_PER_IP = 1000
    checks = []
    real_checkpw = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda *args: checks.append(1) or real_checkpw(*args))

    for _ in range(40):
        assert failed_login(api, "alice") == HTTPStatus.UNAUTHORIZED

    assert len(checks) == 40
    failed = auditlog("--action", "login.failed")
    assert [entry["count"] for entry in failed] == [1, 2, 4, 8, 16, 32]


def test_a_flood_of_failed_logins_is_bounded_and_keeps_what_admins_did(api, alice, alice_client, settings):
    settings.AUDIT_MAX_ENTRIES_PER_DAY = 100
    settings.LOGIN_MAX_FAILURES_PER_IP = 3
    alice_client.post("/admin/api-keys", {"name": "before the flood"}, format="json")
    # Many addresses, each trying many usernames until it is throttled.
    statuses = [failed_login(api, f"user{n}", address=f"10.0.{n % 40}.1") for n in range(600)]

    assert statuses.count(HTTPStatus.TOO_MANY_REQUESTS) > 400
    assert stream_length("client") == 100
    assert "api_key.created" in actions(alice_client)
    throttled = auditlog("--action", "login.throttled")
    assert throttled and {entry["count"] & (entry["count"] - 1) for entry in throttled} == {0}


def test_deleting_an_openai_conversation_or_a_stored_response_is_recorded(alice, alice_client):
    conversation = alice_client.post("/v1/conversations", {}, format="json").json()
    response = alice_client.post("/v1/responses", {"model": MODEL, "input": "hi"}, format="json")
    assert response.status_code == HTTPStatus.OK, response.content
    response_id = response.json()["id"]

    assert alice_client.delete(f"/v1/conversations/{conversation['id']}").status_code == HTTPStatus.OK
    assert alice_client.delete(f"/v1/conversations/{conversation['id']}").status_code == HTTPStatus.NOT_FOUND
    assert alice_client.delete(f"/v1/responses/{response_id}").status_code == HTTPStatus.OK

    recorded = [(e["action"], e["target"], e["outcome"]) for e in entries(alice_client)][:3]
    assert recorded == [
        ("response.deleted", response_id, "success"),
        ("session.deleted", conversation["id"], "failure"),
        ("session.deleted", conversation["id"], "success"),
    ]
