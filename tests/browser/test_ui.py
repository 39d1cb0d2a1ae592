"""The human-facing pages in a real browser: Swagger UI and ReDoc load nothing from outside and work, and the
DRF browsable API lets an admin log in and chat from its HTML form."""

from __future__ import annotations

import json

import httpx
from django.urls import reverse

from system.views import ROOT_LINKS
from tests.browser.conftest import ARTIFACTS
from tests.support import ALICE_PASSWORD

TITLE = "ChatGroq Conversational Chatbot API"


def access_token(server_url: str) -> str:
    response = httpx.post(f"{server_url}/admin/login", json={"username": "alice", "password": ALICE_PASSWORD})
    response.raise_for_status()
    return response.json()["access_token"]


def scripts_ready(page) -> None:
    """The browsable API's raw-data form is sent by DRF's ajax-form.js, with the CSRF header; clicked before that
    script has bound it (a page still loading on a busy machine), the browser sends the form itself, without a CSRF
    token, and the answer is 403."""
    page.wait_for_function("document.readyState === 'complete'")


def test_swagger_ui_renders_offline(page, server_url, outside_requests):
    page.goto(f"{server_url}/docs")

    page.locator(".swagger-ui .info .title", has_text=TITLE).wait_for()
    assert page.locator(".opblock").count() > 20
    assert outside_requests == []


def test_authorize_then_try_out_a_chat_in_swagger_ui(page, server_url, alice, outside_requests):
    token = access_token(server_url)
    page.goto(f"{server_url}/docs")

    page.locator(".swagger-ui .auth-wrapper button.authorize").click()
    # One Bearer field, for a JWT or an API key: no cookie box for the browser session, no second key scheme.
    schemes = page.locator(".modal-ux .auth-container")
    schemes.first.wait_for()
    assert schemes.count() == 1
    jwt = schemes.filter(has_text="jwtAuth")
    assert "Bearer" in jwt.inner_text()
    dialog = page.locator(".modal-ux").inner_text()
    assert not any(name in dialog for name in ("sessionid", "cookieAuth", "apiKeyAuth"))
    assert jwt.locator("input").count() == 1
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


def test_an_admin_logs_in_and_sends_the_prefilled_chat_message_in_the_browsable_api(
    page, server_url, alice, outside_requests
):
    page.goto(f"{server_url}/api-auth/login/?next=/chat/")
    page.locator("#id_username").fill("alice")
    page.locator("#id_password").fill(ALICE_PASSWORD)
    page.locator("form#login-form [type=submit], form [type=submit]").first.click()

    # GET /chat/ in a browser is the page of the POST form, not a 405, and the form holds a working example.
    page.locator(".navbar", has_text="alice").first.wait_for()
    page.locator(".response-info", has_text="HTTP 200 OK").wait_for()
    content = page.locator("#id__content")
    assert json.loads(content.input_value()) == {"message": "Hello! How are you today?", "session_id": "chat123"}
    assert page.locator("#id__content_type").input_value() == "application/json"
    scripts_ready(page)
    page.locator("form", has=content).locator("button", has_text="POST").click()

    page.locator(".request-info", has_text="POST").wait_for()
    page.locator(".response-info", has_text="HTTP 200 OK").wait_for()
    page.locator(".response-info", has_text="Echo: Hello! How are you today?").wait_for()

    # The next message goes on in the session just used, not back in the example's.
    content = page.locator("#id__content")
    content.fill(json.dumps({"session_id": "from-the-browser", "message": "First"}))
    scripts_ready(page)
    page.locator("form", has=content).locator("button", has_text="POST").click()
    page.locator(".response-info", has_text="Echo: First").wait_for()
    assert json.loads(page.locator("#id__content").input_value())["session_id"] == "from-the-browser"
    assert outside_requests == []


def test_the_root_links_every_endpoint_and_the_docs_in_a_browser(page, server_url, outside_requests):
    page.goto(f"{server_url}/")

    page.locator(".response-info", has_text="HTTP 200 OK").wait_for()
    for route in ROOT_LINKS.values():
        assert page.locator(f'.response-info a[href="{server_url}{reverse(route)}"]').count() == 1, route
    page.locator(f'.response-info a[href="{server_url}/docs"]').click()
    page.locator(".swagger-ui .info .title", has_text=TITLE).wait_for()
    assert outside_requests == []


def test_redoc_asks_no_cdn_for_its_logo(page, server_url, outside_requests):
    blocked = []
    page.on("console", lambda message: blocked.append(message.text) if message.type == "error" else None)
    page.on("request", lambda request: None if "127.0.0.1" in request.url else outside_requests.append(request.url))
    page.goto(f"{server_url}/redoc")

    page.locator("h1", has_text=TITLE).wait_for()
    logo = page.locator("a[href='https://redocly.com/redoc/'] img")
    logo.wait_for(state="attached")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=logo.element_handle())

    assert logo.get_attribute("src").startswith("data:image/svg+xml,")
    assert outside_requests == []
    assert blocked == []


def test_json_wraps_at_phone_width_in_the_browsable_api(browser, server_url, alice):
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    token = access_token(server_url)
    try:
        # A long unbroken value (a token) and long lines of text.
        page.set_extra_http_headers({"Authorization": f"Bearer {token}"})
        for path in ("/llm/providers", "/admin/info", "/"):
            page.goto(f"{server_url}{path}")
            page.locator(".response-info", has_text="HTTP 200 OK").wait_for()
            page.evaluate(f"document.querySelector('.response-info pre').append({json.dumps(token)})")

            overflowing = page.evaluate(
                "[...document.querySelectorAll('pre')].filter(pre => pre.scrollWidth > pre.clientWidth + 1).length"
            )
            page_width = page.evaluate("document.documentElement.scrollWidth")
            assert overflowing == 0, path
            assert page_width <= 375, path
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "json_at_phone_width.png"))
        context.close()
