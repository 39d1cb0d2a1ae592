from __future__ import annotations

import logging
import re
from http import HTTPStatus

import pytest
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from system.views import ROOT_LINKS


def test_health_reports_the_seed_fields(api):
    response = api.get("/health")

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert set(body) >= {"status", "service", "version", "llm_provider", "llm_healthy", "redis_healthy"}
    assert body["service"] == "chatbot-api"
    assert body["llm_provider"] == "chatgroq"
    assert body["redis_healthy"] is True


def test_health_is_503_when_redis_is_down(api, redis_down):
    response = api.get("/health/")

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["redis_healthy"] is False
    assert response.json()["status"] == "unhealthy"


def test_liveness_does_no_io(api, redis_down):
    response = api.get("/health/live")
    assert response.status_code == HTTPStatus.OK


def test_info_names_the_docs_provider_and_model(api):
    body = api.get("/info").json()

    assert body["version"] == settings.VERSION
    assert body["model"] == settings.GROQ_MODEL_NAME
    assert body["docs"] == {"swagger": "/docs", "redoc": "/redoc", "openapi": "/openapi.json"}


def test_unknown_paths_answer_json_404(api):
    response = api.get("/no/such/path")

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_a_wrong_method_answers_in_the_error_shape(api):
    response = api.get("/admin/login")

    assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert set(response.json()) == {"detail", "code"}


def test_each_request_is_logged_once_with_its_request_id(api, caplog):
    with caplog.at_level(logging.INFO, logger="chatbot.requests"):
        response = api.get("/health/live", HTTP_X_REQUEST_ID="abc-123")

    assert response["X-Request-ID"] == "abc-123"
    lines = [r.getMessage() for r in caplog.records if r.name == "chatbot.requests"]
    assert len(lines) == 1
    assert "request_id=abc-123 method=GET path=/health/live status=200 duration_ms=" in lines[0]


def test_an_unsafe_request_id_is_replaced(api):
    response = api.get("/health/live", HTTP_X_REQUEST_ID="bad\nid")
    assert response["X-Request-ID"] != "bad\nid" and len(response["X-Request-ID"]) == 32


def test_cors_allows_only_configured_origins(api, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]

    allowed = api.options(
        "/admin/login", HTTP_ORIGIN="https://app.example.com", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    refused = api.options("/admin/login", HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")

    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Access-Control-Allow-Credentials" not in allowed
    assert "Access-Control-Allow-Origin" not in refused


def test_cors_lets_browsers_send_the_session_header(api, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]

    response = api.options(
        "/v1/chat/completions",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, x-session-id",
    )

    assert "x-session-id" in response["Access-Control-Allow-Headers"]


def test_the_root_links_every_endpoint_and_the_docs(api):
    response = api.get("/")

    assert response.status_code == HTTPStatus.OK
    links = response.json()["endpoints"]
    assert links["docs"] == "http://testserver/docs"
    assert links["chat"] == "http://testserver/chat"
    for url in links.values():
        assert resolve(url.removeprefix("http://testserver")).url_name, url  # a named route, not the catch-all


def parameterless_routes(resolver: URLResolver, namespace: str = "") -> set[str]:
    names = set()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            names |= parameterless_routes(pattern, inner)
        elif isinstance(pattern, URLPattern) and pattern.name and not pattern.pattern.regex.groups:
            names.add(namespace + pattern.name)
    return names


def test_the_root_links_every_route_without_a_parameter():
    # The root itself, the browser's icon, the catch-alls, the browser's logout (a POST from its navbar), and Groq's
    # SDK paths that repeat /v1 under /openai/v1.
    unlinked = {"api-root", "favicon", "openai-not-found", "rest_framework:logout"}
    unlinked |= {"groq-chat-completions", "groq-models"}
    # The console's pages and forms are reached from its own navigation; the root links its start page.
    routes = parameterless_routes(get_resolver())
    unlinked |= {name for name in routes if name.startswith("console:") and name != "console:chat"}
    assert routes - unlinked == set(ROOT_LINKS.values())


def test_the_root_is_a_browsable_page(api):
    response = api.get("/", HTTP_ACCEPT="text/html")

    assert response.status_code == HTTPStatus.OK
    assert "/docs" in response.content.decode()


@pytest.mark.parametrize(
    ("path", "title"),
    [("/admin/api-keys", "API keys"), ("/chat/sessions", "Chat sessions"), ("/chat/memory/stats", "Memory statistics")],
)
def test_browsable_pages_are_titled_by_name(alice_client, path, title):
    page = alice_client.get(path, HTTP_ACCEPT="text/html").content.decode()
    assert re.search(rf"<title>{title} \W", page)
