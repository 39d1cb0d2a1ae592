"""The DRF browsable API: an admin logs in with a browser session through the same Redis backend."""

from __future__ import annotations

from http import HTTPStatus

from django.test import Client

from accounts.login_sessions import login_session_revoke_all
from tests.support import ALICE_PASSWORD, browser_login


def test_an_admin_logs_in_and_browses_the_api(alice):
    browser = Client(enforce_csrf_checks=True)

    response = browser_login(browser, "alice", ALICE_PASSWORD)

    assert response.status_code == HTTPStatus.FOUND
    page = browser.get("/admin/info", HTTP_ACCEPT="text/html")
    assert page.status_code == HTTPStatus.OK
    assert "alice" in page.content.decode()


def test_a_wrong_password_does_not_log_in(alice):
    browser = Client(enforce_csrf_checks=True)

    response = browser_login(browser, "alice", "wrong-password")

    assert response.status_code == HTTPStatus.OK  # the form again, with an error
    assert browser.get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED


def test_a_form_post_needs_the_csrf_token(alice):
    browser = Client(enforce_csrf_checks=True)
    browser_login(browser, "alice", ALICE_PASSWORD)

    response = browser.post("/admin/logout", {})

    assert response.status_code == HTTPStatus.FORBIDDEN


def test_revoking_an_admins_tokens_ends_its_browser_sessions(alice):
    browser = Client(enforce_csrf_checks=True)
    browser_login(browser, "alice", ALICE_PASSWORD)

    login_session_revoke_all(alice.id)

    assert browser.get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED
