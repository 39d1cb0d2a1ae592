"""The browsable API's forms: every endpoint that takes a body shows a form pre-filled with an example, also when
the endpoint takes only POST."""

from __future__ import annotations

import html
import json
import re
from http import HTTPStatus

import pytest

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
        ("/admin/api-keys", {"name": "nightly report"}),
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
    assert raw_form_content(response.content.decode()) == {"budget": {"tokens": 100000, "period": "month"}}
