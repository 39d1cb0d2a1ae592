"""The human-facing pages in a real browser: Swagger UI and ReDoc load nothing from outside and work, and the
DRF browsable API lets an admin log in and chat from its HTML form."""

from __future__ import annotations

import json

import httpx

from tests.conftest import ALICE_PASSWORD

TITLE = "ChatGroq Conversational Chatbot API"


def access_token(server_url: str) -> str:
    response = httpx.post(f"{server_url}/admin/login", json={"username": "alice", "password": ALICE_PASSWORD})
    response.raise_for_status()
    return response.json()["access_token"]


def test_swagger_ui_renders_offline(page, server_url, outside_requests):
    page.goto(f"{server_url}/docs")

    page.locator(".swagger-ui .info .title", has_text=TITLE).wait_for()
    assert page.locator(".opblock").count() > 20
    assert outside_requests == []


def test_authorize_then_try_out_a_chat_in_swagger_ui(page, server_url, alice, outside_requests):
    token = access_token(server_url)
    page.goto(f"{server_url}/docs")

    page.locator(".swagger-ui .auth-wrapper button.authorize").click()
    jwt = page.locator(".auth-container", has_text="jwtAuth")
    jwt.locator("input").fill(token)
    jwt.locator("button.authorize").click()
    page.locator(".modal-ux").get_by_role("button", name="Close").first.click()

    chat = page.locator("#operations-chat-chat_create")
    chat.locator(".opblock-summary").click()
    chat.locator("button.try-out__btn").click()
    chat.locator("textarea.body-param__text").fill(json.dumps({"session_id": "swagger", "message": "Hi from Swagger"}))
    chat.locator("button.execute").click()

    live = chat.locator(".live-responses-table")
    live.locator(".response-col_status", has_text="200").wait_for()
    live.get_by_text("Echo: Hi from Swagger").first.wait_for()
    live.scroll_into_view_if_needed()
    assert outside_requests == []


def test_redoc_renders_offline(page, server_url, outside_requests):
    page.goto(f"{server_url}/redoc")

    page.locator("h1", has_text=TITLE).wait_for()
    page.locator("h2", has_text="Send a message to the chatbot").wait_for()
    assert outside_requests == []


def test_an_admin_logs_in_and_chats_in_the_browsable_api(page, server_url, alice, outside_requests):
    page.goto(f"{server_url}/api-auth/login/?next=/chat/")
    page.locator("#id_username").fill("alice")
    page.locator("#id_password").fill(ALICE_PASSWORD)
    page.locator("form#login-form [type=submit], form [type=submit]").first.click()

    page.locator(".navbar", has_text="alice").first.wait_for()
    page.locator("#id__content_type").select_option("application/json")
    page.locator("#id__content").fill(json.dumps({"session_id": "browsable", "message": "Hi from the form"}))
    page.locator("form", has=page.locator("#id__content")).locator("button", has_text="POST").click()

    page.get_by_text("HTTP 200 OK").wait_for()
    page.get_by_text("Echo: Hi from the form").first.wait_for()
    assert outside_requests == []
