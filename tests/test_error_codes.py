"""The error table of docs/api.md lists every `code` the service can answer with, and no other: the codes our code
raises, and the codes of DRF's and SimpleJWT's exceptions that the exception handler passes through."""

from __future__ import annotations

import re
from http import HTTPStatus

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.support import ALICE_PASSWORD, ROOT

SOURCE_DIRS = ("accounts", "conversations", "core", "llm_provider", "system", "chatbot_project")
# `code = "..."` / `default_code = "..."` on an exception, `code="..."` passed to one, `"code": "..."` in a body,
# and a code passed after the detail (`AuthenticationFailed(detail, "invalid_credentials")`).
_CODE_IN_SOURCE = re.compile(
    r"""\b(?:default_)?code\s*=\s*"([a-z][a-z_]+)"|"code":\s*"([a-z][a-z_]+)"|"""
    r"""(?:AuthenticationFailed|PermissionDenied|ParseError|ValidationError)\([^()]*?,\s*"([a-z][a-z_]+)"\)"""
)
# Codes of DRF's and SimpleJWT's exceptions that requests can raise; the handler answers them as they are.
LIBRARY_CODES = {
    "parse_error",  # malformed JSON
    "unsupported_media_type",  # a body in a type no parser takes
    "method_not_allowed",
    "not_authenticated",
    "permission_denied",  # SessionAuthentication's CSRF check
    "throttled",
    "not_found",
    "invalid",
    "token_not_valid",  # SimpleJWT's InvalidToken
    "bad_authorization_header",  # SimpleJWT: `Bearer` with no token or with two
}
# Codes in the source that no HTTP response carries.
NOT_ANSWERED = {
    "weak_default_password",  # refuses startup (ensureadmin), never a request
    "service_unavailable",  # DependencyUnavailable's default: every one raised names its own code
}


def codes_in_source() -> set[str]:
    found: set[str] = set()
    for directory in SOURCE_DIRS:
        for path in (ROOT / directory).rglob("*.py"):
            for match in _CODE_IN_SOURCE.finditer(path.read_text()):
                found.update(group for group in match.groups() if group)
    return found


def codes_in_the_table() -> set[str]:
    text = (ROOT / "docs" / "api.md").read_text()
    table = text[text.index("## Error codes") :]
    codes: set[str] = set()
    for line in table.splitlines():
        cells = line.split("|")
        if len(cells) > 3 and cells[1].strip().isdigit():
            codes.update(re.findall(r"`([a-z][a-z_]+)`", re.sub(r"\(.*?\)", "", cells[2])))
    return codes


def test_the_scan_finds_codes_of_every_kind():
    found = codes_in_source()
    assert {"budget_exceeded", "invalid_credentials", "token_expired", "json_too_deep", "csrf_failed"} <= found


def test_the_error_table_lists_every_code_the_service_answers_and_no_other():
    answered = (codes_in_source() | LIBRARY_CODES) - NOT_ANSWERED

    table = codes_in_the_table()

    assert sorted(answered - table) == [], "codes missing from docs/api.md's error table"
    assert sorted(table - answered) == [], "codes in docs/api.md's error table that the service never answers"


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response.json()["code"] == code


def test_a_body_that_is_not_json_is_a_parse_error(alice_client):
    response = alice_client.post("/chat/", b"{not json", content_type="application/json")
    assert_error(response, HTTPStatus.BAD_REQUEST, "parse_error")


def test_a_body_of_another_type_is_an_unsupported_media_type(alice_client):
    response = alice_client.post("/chat/", b"<chat/>", content_type="application/xml")
    assert_error(response, HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")


def test_a_method_the_endpoint_does_not_take_is_method_not_allowed(alice_client):
    response = alice_client.put("/admin/login", {}, format="json")
    assert_error(response, HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed")


@pytest.mark.parametrize("header", ["Bearer", "Bearer one two"])
def test_a_bearer_header_without_one_token_is_a_bad_authorization_header(header):
    response = APIClient(HTTP_AUTHORIZATION=header).get("/admin/info")
    assert_error(response, HTTPStatus.UNAUTHORIZED, "bad_authorization_header")


def test_a_browser_session_without_its_csrf_token_is_permission_denied(alice):
    browser = Client(enforce_csrf_checks=True)
    assert browser.login(username="alice", password=ALICE_PASSWORD)

    response = browser.post("/chat/", {"session_id": "s", "message": "hi"})

    assert_error(response, HTTPStatus.FORBIDDEN, "permission_denied")


def test_an_unknown_openai_path_is_unknown_url(alice_client):
    response = alice_client.get("/v1/nothing-here")

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json()["error"]["code"] == "unknown_url"


def test_a_host_not_allowed_is_a_bad_request():
    response = Client(HTTP_HOST="evil.example").get("/health")
    assert_error(response, HTTPStatus.BAD_REQUEST, "bad_request")


def test_an_expired_api_key_is_api_key_expired(alice_client):
    key = alice_client.post("/admin/api-keys", {"expires_at": "2020-01-01T00:00:00Z"}, format="json").json()["key"]
    response = APIClient(HTTP_AUTHORIZATION=f"Bearer {key}").get("/admin/info")
    assert_error(response, HTTPStatus.UNAUTHORIZED, "api_key_expired")


def test_a_model_an_api_key_may_not_use_is_model_not_allowed(alice_client, settings):
    settings.CHAT_ALLOWED_MODELS = ["openai/gpt-oss-20b", "other/model"]
    key = alice_client.post("/admin/api-keys", {"models": ["other/model"]}, format="json").json()["key"]
    response = APIClient(HTTP_AUTHORIZATION=f"Bearer {key}").post("/chat/", {"message": "hi"}, format="json")
    assert_error(response, HTTPStatus.FORBIDDEN, "model_not_allowed")


def test_an_api_key_over_its_requests_per_minute_is_rate_limited(alice_client, fake_groq):
    key = alice_client.post("/admin/api-keys", {"requests_per_minute": 1}, format="json").json()["key"]
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.post("/chat/", {"message": "hi"}, format="json").status_code == HTTPStatus.OK
    response = client.post("/chat/", {"message": "hi"}, format="json")
    assert_error(response, HTTPStatus.TOO_MANY_REQUESTS, "rate_limited")
    assert response["Retry-After"]
