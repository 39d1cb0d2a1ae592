"""The console's pages through Django's test client: its sign-in is a login session that every way of ending
logins ends, its forms need the CSRF token, its pages carry a strict Content-Security-Policy, and it stays out of
the API's schema. The browser tests (tests/browser/test_console.py) drive the same pages in Chromium."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http import HTTPStatus

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client

from accounts.budgets import Budget, BudgetOwner, budget_set
from accounts.login_sessions import login_session_list
from accounts.selectors import api_key_list, api_keys_with_budgets
from accounts.services import admin_delete, admin_update_credentials, api_key_create
from conversations.usage_history import day_key
from core.redis_store import redis_client
from tests.support import ALICE_PASSWORD, csrf_token_of, record_usage

PAGES = ["/console/", "/console/keys", "/console/status", "/console/audit", "/console/usage"]


def sign_in(browser: Client, username: str = "alice", password: str = ALICE_PASSWORD):
    page = browser.get("/console/sign-in")
    token = csrf_token_of(page.content.decode())
    return browser.post(
        "/console/sign-in",
        {"username": username, "password": password, "csrfmiddlewaretoken": token, "next": "/console/keys"},
    )


@pytest.fixture
def console(alice) -> Client:
    browser = Client(enforce_csrf_checks=True)
    assert sign_in(browser).status_code == HTTPStatus.FOUND
    return browser


def csrf(browser: Client) -> str:
    return csrf_token_of(browser.get("/console/keys").content.decode())


def test_signing_in_starts_a_login_session_behind_an_httponly_samesite_cookie(alice):
    browser = Client(enforce_csrf_checks=True)

    response = sign_in(browser)

    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == "/console/keys"
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert len(login_session_list(alice.id)) == 1
    assert browser.get("/console/keys").status_code == HTTPStatus.OK


def test_the_cookie_is_secure_behind_https(alice, settings):
    settings.SESSION_COOKIE_SECURE = True
    response = sign_in(Client(enforce_csrf_checks=True))
    assert response.cookies["sessionid"]["secure"]


def test_a_wrong_password_signs_nobody_in_and_the_login_throttle_applies(alice, settings):
    settings.LOGIN_MAX_FAILURES_PER_USERNAME = 2
    browser = Client(enforce_csrf_checks=True)

    answers = [sign_in(browser, password="wrong-password") for _ in range(3)]

    assert [a.status_code for a in answers] == [HTTPStatus.UNAUTHORIZED] * 2 + [HTTPStatus.TOO_MANY_REQUESTS]
    assert int(answers[-1]["Retry-After"]) > 0
    assert sign_in(browser).status_code == HTTPStatus.TOO_MANY_REQUESTS  # even the right password, for now
    assert login_session_list(alice.id) == []
    assert browser.get("/console/keys").status_code == HTTPStatus.FOUND


def test_a_password_over_bcrypts_limit_is_refused_before_it_is_checked(alice):
    response = sign_in(Client(enforce_csrf_checks=True), password="é" * 40)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "72" in response.content.decode()


def test_the_console_without_its_slash_is_the_console():
    response = Client().get("/console")
    assert (response.status_code, response["Location"]) == (HTTPStatus.FOUND, "/console/")


@pytest.mark.parametrize("page", PAGES)
def test_pages_need_a_sign_in(page):
    response = Client().get(page)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/console/sign-in?next=")


@pytest.mark.parametrize("page", [*PAGES, "/console/sign-in"])
def test_pages_carry_a_content_security_policy_without_inline_code(console, page):
    response = (Client() if page == "/console/sign-in" else console).get(page)

    assert response.status_code == HTTPStatus.OK
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    assert "<script>" not in html and " style=" not in html and "<style" not in html


def end_by_logout(browser, alice):
    browser.post("/console/sign-out", {"csrfmiddlewaretoken": csrf(browser)})


def end_by_password_change(browser, alice):
    admin_update_credentials(admin=alice, new_password="another-password-2")


def end_by_revoketokens(browser, alice):
    call_command("revoketokens", "alice", stdout=None)


def end_by_deleting_the_admin(browser, alice):
    admin_delete(alice)


@pytest.mark.parametrize("end", [end_by_logout, end_by_password_change, end_by_revoketokens, end_by_deleting_the_admin])
def test_every_way_of_ending_logins_ends_the_console_at_its_next_request(console, alice, end):
    end(console, alice)

    assert console.get("/console/keys").status_code == HTTPStatus.FOUND
    assert login_session_list(alice.id) == []


def test_forms_need_the_csrf_token(console, alice):
    refused = console.post("/console/keys/create", {"name": "forged"})
    taken = console.post("/console/keys/create", {"name": "mine", "csrfmiddlewaretoken": csrf(console)})

    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert taken.status_code == HTTPStatus.OK
    page = console.get("/console/keys").content.decode()
    assert "mine" in page and "forged" not in page


def test_the_chat_endpoint_needs_the_csrf_header(console, fake_groq):
    body = json.dumps({"message": "Hi"})
    refused = console.post("/console/api/chat", body, content_type="application/json")
    taken = console.post("/console/api/chat", body, content_type="application/json", HTTP_X_CSRFTOKEN=csrf(console))

    assert refused.status_code == HTTPStatus.FORBIDDEN
    assert taken.status_code == HTTPStatus.OK
    events = b"".join(taken.streaming_content).decode()
    assert "event: delta" in events and "event: done" in events and "Echo: Hi" in events
    assert len(fake_groq.chat_requests()) == 1


def test_a_chat_error_before_the_stream_is_json_with_its_status(console):
    response = console.post(
        "/console/api/chat",
        json.dumps({"message": "Hi", "model": "no-such-model"}),
        content_type="application/json",
        HTTP_ACCEPT="application/json",
        HTTP_X_CSRFTOKEN=csrf(console),
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "invalid" and "model" in response.json()["errors"]


def test_a_key_is_revoked_only_by_its_admin(console, bob):
    key, _ = api_key_create(admin_id=bob.id, name="bob's")

    page = console.get(f"/console/keys/{key.id}/revoke")
    revoke = console.post(f"/console/keys/{key.id}/revoke", {"csrfmiddlewaretoken": csrf(console)})

    assert page.status_code == revoke.status_code == HTTPStatus.NOT_FOUND


def test_export_then_delete_then_import_a_session(console, fake_groq):
    token = csrf(console)
    body = json.dumps({"message": "Remember me", "session_id": "kept"})
    b"".join(console.post("/console/api/chat", body, content_type="application/json", HTTP_X_CSRFTOKEN=token))

    exported = console.get("/console/chat/kept/export")
    assert exported.status_code == HTTPStatus.OK
    assert exported["Content-Disposition"] == 'attachment; filename="kept.json"'
    assert console.post("/console/chat/kept/delete", {"csrfmiddlewaretoken": token}).status_code == HTTPStatus.FOUND
    assert console.get("/console/chat/kept").status_code == HTTPStatus.NOT_FOUND

    upload = SimpleUploadedFile("kept.json", exported.content, content_type="application/json")
    imported = console.post("/console/import", {"file": upload, "csrfmiddlewaretoken": token})

    assert imported.status_code == HTTPStatus.FOUND
    assert imported["Location"] == "/console/chat/kept"
    page = console.get("/console/chat/kept").content.decode()
    assert "Remember me" in page and "Echo: Remember me" in page


def test_an_import_that_is_not_an_export_is_refused(console):
    upload = SimpleUploadedFile("x.json", b"[1, 2]", content_type="application/json")
    response = console.post("/console/import", {"file": upload, "csrfmiddlewaretoken": csrf(console)})
    assert response.status_code == HTTPStatus.BAD_REQUEST


def test_the_console_is_not_in_the_api_schema(api):
    paths = api.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/console")]


@pytest.mark.parametrize("path", ["/console/api/chat", "/console/api/chat/a/regenerate", "/console/api/chat/a/edit"])
def test_the_console_chat_is_admitted_as_chats_are(console, settings, fake_groq, path):
    settings.CHAT_ADMIT_MAX_LOOP_LAG_MS = 0  # every loop runs at least 0 ms late: no new chat is taken
    body = json.dumps({"message": "Hi"})

    response = console.post(path, body, content_type="application/json", HTTP_X_CSRFTOKEN=csrf(console))

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["code"] == "server_busy"
    assert fake_groq.chat_requests() == []


def audited(admin_client) -> list[tuple[str, str, str, str]]:
    body = admin_client.get("/admin/audit").json()
    return [(e["action"], e["actor"], e["target"], e["outcome"]) for e in body["entries"]]


def test_signing_in_and_out_and_a_failed_sign_in_are_in_the_audit_log(alice, alice_client):
    browser = Client(enforce_csrf_checks=True)
    assert sign_in(browser, password="wrong-password").status_code == HTTPStatus.UNAUTHORIZED
    assert sign_in(browser).status_code == HTTPStatus.FOUND
    token = csrf(browser)
    assert browser.post("/console/sign-out", {"csrfmiddlewaretoken": token}).status_code == HTTPStatus.FOUND
    browser.post("/console/sign-out", {"csrfmiddlewaretoken": token})  # signed out already: nothing to record

    assert audited(alice_client)[:3] == [
        ("logout", alice.id, "", "success"),
        ("login.succeeded", alice.id, "alice", "success"),
        ("login.failed", "", "alice", "failure"),
    ]


def test_keys_and_sessions_changed_in_the_console_are_in_the_audit_log(alice, alice_client, console):
    created = console.post("/console/keys/create", {"name": "ci", "csrfmiddlewaretoken": csrf(console)})
    key_id = next(key.id for key in api_key_list(admin_id=alice.id))
    assert created.status_code == HTTPStatus.OK
    console.post(f"/console/keys/{key_id}/revoke", {"csrfmiddlewaretoken": csrf(console)})
    document = {"format": "chatbot-session/1", "session_id": "kept", "messages": [{"role": "user", "content": "x"}]}
    upload = SimpleUploadedFile("kept.json", json.dumps(document).encode(), content_type="application/json")
    console.post("/console/import", {"file": upload, "csrfmiddlewaretoken": csrf(console)})
    console.post("/console/chat/kept/delete", {"csrfmiddlewaretoken": csrf(console)})
    console.post("/console/chat/kept/delete", {"csrfmiddlewaretoken": csrf(console)})

    assert audited(alice_client)[:5] == [
        ("session.deleted", alice.id, "kept", "failure"),
        ("session.deleted", alice.id, "kept", "success"),
        ("session.imported", alice.id, "kept", "success"),
        ("api_key.revoked", alice.id, key_id, "success"),
        ("api_key.created", alice.id, key_id, "success"),
    ]


def test_the_audit_page_lists_the_admins_entries_filtered_by_action_and_day(alice, bob, console):
    console.post("/console/keys/create", {"name": "ci", "csrfmiddlewaretoken": csrf(console)})
    sign_in(Client(), username="bob", password="wrong-password")  # bob's failed sign-in: not alice's to see

    everything = console.get("/console/audit").content.decode()
    created = console.get("/console/audit", {"action": "api_key.created"}).content.decode()
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    later = console.get("/console/audit", {"since": tomorrow}).content.decode()
    backwards = console.get("/console/audit", {"since": tomorrow, "until": "2020-01-01"})

    assert 'data-action="login.succeeded"' in everything and 'data-action="api_key.created"' in everything
    assert 'data-action="login.failed"' not in everything
    assert 'data-action="api_key.created"' in created and 'data-action="login.succeeded"' not in created
    assert "data-action=" not in later
    assert backwards.status_code == HTTPStatus.BAD_REQUEST and "ends before it starts" in backwards.content.decode()
    assert console.get("/console/audit", {"action": "nonsense"}).status_code == HTTPStatus.BAD_REQUEST


def test_a_keys_budget_is_changed_and_removed_on_its_page_and_bad_values_change_nothing(alice, console):
    key, _ = api_key_create(admin_id=alice.id, name="ci")
    page = f"/console/keys/{key.id}/change"
    assert console.get(page).status_code == HTTPStatus.OK

    bad = console.post(page, {"budget_tokens": "-5", "budget_period": "day", "csrfmiddlewaretoken": csrf(console)})
    assert bad.status_code == HTTPStatus.BAD_REQUEST and api_keys_with_budgets(admin_id=alice.id)[0]["budget"] is None
    set_ = console.post(page, {"budget_tokens": "500", "budget_period": "month", "csrfmiddlewaretoken": csrf(console)})
    assert set_.status_code == HTTPStatus.FOUND
    budget = api_keys_with_budgets(admin_id=alice.id)[0]["budget"]
    assert (budget["tokens"], budget["period"]) == (500, "month")
    assert (
        console.post(page, {"budget_tokens": "", "csrfmiddlewaretoken": csrf(console)}).status_code == HTTPStatus.FOUND
    )
    assert api_keys_with_budgets(admin_id=alice.id)[0]["budget"] is None
    assert console.post(page, {"budget_tokens": "9"}).status_code == HTTPStatus.FORBIDDEN  # no CSRF token
    assert console.get("/console/keys/0123456789abcdef/change").status_code == HTTPStatus.NOT_FOUND


def test_the_status_and_keys_pages_show_a_budget_in_tokens_dollars_or_both(console, alice):
    key, _ = api_key_create(admin_id=alice.id, name="capped")
    budget_set(BudgetOwner("admin", alice.id), Budget(None, "day", Decimal("2.5")))
    budget_set(BudgetOwner("key", key.id, alice.id), Budget(1000, "month", Decimal("1")))

    status = console.get("/console/status").content.decode()
    keys = console.get("/console/keys").content.decode()

    assert "$0.000000 / $2.500000 a day" in " ".join(status.split())
    assert "tokens" not in status.split("Budget</dt>")[1].split("</dd>")[0]
    row = " ".join(keys.split('data-label="Budget">')[1].split("</td>")[0].split())
    assert "0 / 1000 tokens, <meter" in row
    assert "$0.000000 / $1.000000 a month, resets" in row


def test_the_usage_page_charts_tokens_and_cost_per_day_by_model_and_key_with_totals(alice, console):
    key, _ = api_key_create(admin_id=alice.id, name="nightly")
    today = datetime.now(UTC).date()
    record_usage(alice.id, today, "", "model-a", 100, 50, 1500)
    record_usage(alice.id, today - timedelta(days=3), key.id, "model-b", 1000, 200, 250_000)
    record_usage(alice.id, today - timedelta(days=40), key.id, "model-b", 7, 7, 7)  # out of the default 30 days

    page = console.get("/console/usage").content.decode()
    wider = console.get("/console/usage", {"since": (today - timedelta(days=40)).isoformat()}).content.decode()

    assert f"<title>{today} model-a: 150</title>" in page
    assert f"<title>{today - timedelta(days=3)} model-b: 1.2k</title>" in page
    assert f"<title>{today - timedelta(days=3)} nightly: $0.25</title>" in page
    assert f"<title>{today} signed in (no key): $0.0015</title>" in page
    assert 'data-tokens="1350">1,350</strong>' in page
    assert "$0.2515" in page  # the total cost, in the totals table
    assert 'data-tokens="1364">1,364</strong>' in wider
    backwards = console.get("/console/usage", {"since": today.isoformat(), "until": "2020-01-01"})
    assert backwards.status_code == HTTPStatus.BAD_REQUEST


def test_the_usage_pages_totals_show_an_unknown_cost_and_name_a_revoked_key(alice, console):
    """A model without a price makes its line's and the range's cost unknown; the other model's cost stays exact
    (micro-dollars summed as integers: 3 x $0.000001 is $0.000003, not a float's 2.9999e-06)."""
    today = datetime.now(UTC).date()
    for back in range(3):
        record_usage(alice.id, today - timedelta(days=back), "0123456789abcdef", "model-a", 10, 5, 1)
    record_usage(alice.id, today, "", "no-price", 7, 3, 0)
    redis_client().hincrby(day_key(alice.id, today), "unpriced_requests\t\tno-price", 1)

    page = " ".join(console.get("/console/usage").content.decode().split())
    by_model = page.split('id="totals-by-model"')[1].split("</table>")[0]
    by_key = page.split('id="totals-by-key"')[1].split("</table>")[0]

    assert "costing <strong>an unknown amount (a model without a price)</strong>" in page
    assert '<th scope="row">model-a</th>' in by_model and "<td>$0.000003</td>" in by_model
    assert '<th scope="row">no-price</th>' in by_model and "<td>unknown</td>" in by_model
    assert "revoked key 0123456789abcdef" in by_key and "signed in (no key)" in by_key
    assert f"<title>{today} revoked key 0123456789abcdef: 15</title>" in page


def test_a_keys_models_limits_and_expiry_are_changed_on_its_page_and_shown_in_the_table(alice, console, settings):
    settings.CHAT_ALLOWED_MODELS = ["model-a", "model-b"]
    settings.GROQ_MODEL_NAME = "model-a"
    key, _ = api_key_create(admin_id=alice.id, name="ci")
    page = f"/console/keys/{key.id}/change"
    form = {
        "models": ["model-b"],
        "requests_per_minute": "30",
        "tokens_per_minute": "",
        "expires_at": "2031-05-06T07:08",
        "budget_tokens": "",
        "csrfmiddlewaretoken": csrf(console),
    }

    assert console.post(page, form).status_code == HTTPStatus.FOUND
    table = console.get("/console/keys").content.decode()
    unknown = console.post(page, {**form, "models": ["not-a-model"], "csrfmiddlewaretoken": csrf(console)})

    rules = api_key_list(admin_id=alice.id)[0].rules
    assert (rules.models, rules.requests_per_minute, rules.tokens_per_minute) == (("model-b",), 30, None)
    assert rules.expires_at == datetime(2031, 5, 6, 7, 8, tzinfo=UTC)
    assert "<code>model-b</code>" in table and "30 requests/min" in table and "2031-05-06 07:08 UTC" in table
    assert unknown.status_code == HTTPStatus.BAD_REQUEST and api_key_list(admin_id=alice.id)[0].rules == rules
    assert 'value="model-b" checked' in console.get(page).content.decode()
