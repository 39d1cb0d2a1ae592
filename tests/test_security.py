from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from http import HTTPStatus

from rest_framework.test import APIClient

from tests.support import ALICE_PASSWORD, ROOT


def test_security_headers_are_set(api):
    response = api.get("/health")

    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def test_hsts_is_sent_over_https_when_debug_is_off(api):
    response = api.get("/health", secure=True)
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


def test_check_deploy_is_clean_with_production_settings():
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        "ENV_FILE": "",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_PROXY_SSL_HEADER": "true",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
        "SECURE_HSTS_PRELOAD": "true",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_no_secret_reaches_a_log_line_or_an_error_body(alice, fake_groq, settings, caplog):
    settings.LLM_MAX_RETRIES = 0
    secrets_seen: list[str] = [ALICE_PASSWORD, settings.GROQ_API_KEY, "new-password-123"]
    error_bodies: list[str] = []
    api = APIClient()

    def keep(response):
        body = b"".join(response.streaming_content) if response.streaming else response.content
        if response.status_code >= 400 or b"event: error" in body:
            error_bodies.append(body.decode())
        return response

    with caplog.at_level(logging.DEBUG):
        keep(api.post("/admin/login", {"username": "alice", "password": "wrong-" + ALICE_PASSWORD}, format="json"))
        tokens = keep(api.post("/admin/login", {"username": "alice", "password": ALICE_PASSWORD}, format="json")).json()
        secrets_seen += [tokens["access_token"], tokens["refresh_token"]]
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
        keep(api.post("/chat/", {"session_id": "s", "message": "hello"}, format="json"))
        keep(api.post("/chat/", {"session_id": "s", "message": "hello", "stream": True}, format="json"))
        fake_groq.add_faults({"kind": "status", "status": 401}, {"kind": "status", "status": 500})
        keep(api.post("/chat/", {"session_id": "s", "message": "hello"}, format="json"))
        keep(api.post("/admin/test-chat", {"message": "hello"}, format="json"))
        keep(api.post("/admin/refresh", {"refresh_token": tokens["refresh_token"]}, format="json"))
        keep(api.post("/admin/change-credentials", {"current_password": "wrong", "new_password": "x"}, format="json"))
        response = keep(
            api.post(
                "/admin/change-credentials",
                {"current_password": ALICE_PASSWORD, "new_password": "new-password-123"},
                format="json",
            )
        )
        assert response.status_code == HTTPStatus.OK
        keep(api.get("/admin/info"))  # a revoked token

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "request_id=" in logged  # the capture did see the request log
    for secret in secrets_seen:
        assert secret not in logged
        assert all(secret not in body for body in error_bodies)
    assert len(error_bodies) == 5
