"""The browsable API's forms: every endpoint that takes a body shows a form pre-filled with an example, also when
the endpoint takes only POST."""

from __future__ import annotations

import html
import json
import re
from http import HTTPStatus

import pytest

from accounts.api_key_views import API_KEY_EXAMPLE
from tests.support import ALICE_PASSWORD, login


def raw_form_content(page: str) -> dict:
    textarea = re.search(r'<textarea[^>]*id="id__content"[^>]*>(.*?)</textarea>', page, re.S)
    assert textarea, "no raw data form on the page"
    return json.loads(html.unescape(textarea.group(1)))


@pytest.mark.parametrize(
    ("path", "example"),
    [
        ("/chat/", {"message": "Hello! How are you today?", "session_id": "chat123"}),
        ("/admin/test-chat", {"message": "Test message"}),
        ("/admin/login", {"username": "admin", "password": "admin123"}),
        ("/admin/refresh", {"refresh_token": "YOUR_REFRESH_TOKEN"}),
        ("/admin/logout", {"refresh_token": "YOUR_REFRESH_TOKEN"}),
        (
            "/admin/change-credentials",
            {"new_password": "YOUR_NEW_PASSWORD", "current_password": "YOUR_CURRENT_PASSWORD"},
        ),
        ("/admin/api-keys", API_KEY_EXAMPLE),
        ("/chat/sessions/s1/regenerate", {}),
        ("/chat/sessions/s1/edit", {"message": "Say it in French."}),
        (
            "/chat/sessions/import",
            {
                "format": "chatbot-session/1",
                "session_id": "imported",
                "messages": [
                    {"role": "user", "content": "Hello!"},
                    {"role": "assistant", "content": "Hello! How can I help?"},
                ],
            },
        ),
    ],
)
def test_a_browser_gets_the_post_form_with_an_example(alice_client, path, example):
    response = alice_client.get(path, HTTP_ACCEPT="text/html")

    assert response.status_code == HTTPStatus.OK
    assert raw_form_content(response.content.decode()) == example


def test_the_chat_page_needs_a_login_like_the_api(api):
    response = api.get("/chat/", HTTP_ACCEPT="text/html")

    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert 'id="id__content"' not in response.content.decode()


def test_the_chat_example_sent_as_it_is_gets_a_reply(alice_client, fake_groq):
    page = alice_client.get("/chat/", HTTP_ACCEPT="text/html").content.decode()

    response = alice_client.post("/chat/", raw_form_content(page), format="json")

    assert response.status_code == HTTPStatus.OK
    assert response.json()["response"] == "Echo: Hello! How are you today?"


def test_the_change_credentials_form_sent_unedited_changes_nothing(alice_client, api):
    page = alice_client.get("/admin/change-credentials", HTTP_ACCEPT="text/html").content.decode()

    response = alice_client.post("/admin/change-credentials", raw_form_content(page), format="json")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["code"] == "wrong_password"
    login(api, "alice", ALICE_PASSWORD)


def test_a_browser_gets_an_api_keys_budget_form(alice_client):
    key_id = alice_client.post("/admin/api-keys", {"name": "k"}, format="json").json()["id"]

    response = alice_client.get(f"/admin/api-keys/{key_id}", HTTP_ACCEPT="text/html")

    assert response.status_code == HTTPStatus.OK
    assert raw_form_content(response.content.decode()) == {
        "budget": {"tokens": 100000, "period": "month"},
        "tokens_per_minute": 20000,
    }


def test_the_chat_form_keeps_the_session_id_it_just_sent(alice_client):
    body = {"session_id": "my-own-session", "message": "hi"}

    response = alice_client.post("/chat/", body, format="json", HTTP_ACCEPT="text/html")

    assert response.status_code == HTTPStatus.OK
    assert raw_form_content(response.content.decode()) == {
        "message": "Hello! How are you today?",
        "session_id": "my-own-session",
    }


def test_the_chat_form_after_a_refused_body_shows_the_example(alice_client):
    response = alice_client.post("/chat/", b"{not json", content_type="application/json", HTTP_ACCEPT="text/html")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert raw_form_content(response.content.decode())["session_id"] == "chat123"


@pytest.mark.parametrize("path", ["/", "/chat/", "/health"])
def test_the_browsable_pages_carry_the_services_name_not_djangos(alice_client, path):
    page = alice_client.get(path, HTTP_ACCEPT="text/html").content.decode()

    assert "<title>" in page and "ChatGroq Conversational Chatbot API</title>" in page
    assert 'class="navbar-brand" rel="nofollow" href="/">ChatGroq Conversational Chatbot API</a>' in page
    assert "Django REST framework" not in page
    assert '<link rel="icon" href="/favicon.ico">' in page


def test_the_login_box_carries_the_services_name(api):
    page = api.get("/api-auth/login/").content.decode()

    assert "<title>Log in - ChatGroq Conversational Chatbot API</title>" in page
    assert '<h3 style="margin: 0 0 20px;">ChatGroq Conversational Chatbot API</h3>' in page
    assert "Django REST framework" not in page


def test_the_favicon_is_a_small_icon(api):
    response = api.get("/favicon.ico")

    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # an ICO file's header
    assert len(response.content) < 8192
    assert "max-age=" in response["Cache-Control"]
