from __future__ import annotations

from http import HTTPStatus
from urllib.parse import urlsplit

import pytest
from django.conf import settings

LOCAL = "OpenAI-compatible LLM server on a local or private network"


def models_requests(fake) -> int:
    return sum(1 for r in fake.requests if r["path"].endswith("/models"))


def test_provider_matches_the_seed_and_never_shows_the_key(api):
    response = api.get("/llm/provider")
    host_and_port = urlsplit(settings.GROQ_BASE_URL).netloc

    assert response.status_code == HTTPStatus.OK
    assert response.json() == {
        "current_provider": {
            "provider": "chatgroq",
            "model": "openai/gpt-oss-20b",
            "base_url": settings.GROQ_BASE_URL,
            "temperature": 0.7,
            "max_tokens": 1024,
            "type": "local",
            "description": f"{LOCAL} ({host_and_port})",
        }
    }
    assert settings.GROQ_API_KEY not in response.content.decode()


@pytest.mark.parametrize(
    ("base_url", "kind", "description"),
    [
        ("https://api.groq.com/openai/v1", "cloud", "ChatGroq cloud-based LLM inference"),
        ("https://api.openai.com/v1", "cloud", "OpenAI-compatible LLM service at api.openai.com"),
        ("http://localhost:11434/v1", "local", f"{LOCAL} (localhost:11434)"),
        ("http://192.168.1.20:8000/v1", "local", f"{LOCAL} (192.168.1.20:8000)"),
        ("http://[::1]:8000/v1", "local", f"{LOCAL} ([::1]:8000)"),
        ("http://user:secret@ollama:11434/v1", "local", f"{LOCAL} (ollama:11434)"),
        ("http://[2606:4700::1111]/v1", "cloud", "OpenAI-compatible LLM service at [2606:4700::1111]"),
    ],
)
def test_provider_says_cloud_only_for_a_server_in_the_cloud(api, settings, base_url, kind, description):
    settings.GROQ_BASE_URL = base_url

    provider = api.get("/llm/provider").json()["current_provider"]

    assert (provider["type"], provider["description"]) == (kind, description)


def test_providers_lists_the_models_the_upstream_lists(api):
    (entry,) = api.get("/llm/providers").json()["providers"]

    assert entry["name"] == "chatgroq" and entry["requires_api_key"] is True
    assert entry["models"] == ["llama-3.1-8b-instant", "openai/gpt-oss-120b", "openai/gpt-oss-20b"]
    assert entry["models_available"] is True


def test_llm_health_is_cached(api, fake_groq):
    for _ in range(3):
        assert api.get("/llm/health").json()["healthy"] is True
    api.get("/health")
    api.get("/llm/providers")

    assert models_requests(fake_groq) == 1


def test_llm_health_is_503_when_the_model_is_gone(api, fake_groq, settings):
    settings.GROQ_MODEL_NAME = "llama3-8b-8192"

    response = api.get("/llm/health/")

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    body = response.json()
    assert body["model_available"] is False
    assert "GROQ_MODEL_NAME" in body["error"]


def test_llm_health_is_503_when_the_upstream_is_unreachable(api, settings):
    settings.GROQ_BASE_URL = "http://127.0.0.1:1/openai/v1"
    response = api.get("/llm/health")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["code"] == "upstream_unavailable"


def test_health_reports_the_llm_half(api, settings):
    assert api.get("/health").json()["llm_healthy"] is True

    settings.GROQ_API_KEY = ""
    settings.GROQ_MODEL_NAME = "changed-to-bypass-the-cache"
    response = api.get("/health")

    assert response.status_code == HTTPStatus.OK  # Redis is fine: degraded, not down
    assert response.json()["llm_healthy"] is False
    assert response.json()["status"] == "degraded"


def test_admin_status_has_the_seed_fields(alice_client):
    alice_client.post("/chat/", {"session_id": "a", "message": "hi"}, format="json")

    response = alice_client.get("/admin/status")

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["redis_connected"] is True
    assert body["chatgroq_healthy"] is True
    assert body["active_conversations_count"] == body["active_sessions_count"] == 1
    assert isinstance(body["uptime_seconds"], int)
    assert body["uptime_formatted"].endswith("s") or "m" in body["uptime_formatted"]
    assert body["usage"]["requests"] == 1


def test_admin_status_needs_a_token(api):
    assert api.get("/admin/status").status_code == HTTPStatus.UNAUTHORIZED


def test_uptime_reads_like_the_seed():
    from system.selectors import format_uptime

    assert [format_uptime(s) for s in (42, 185, 3600, 183600)] == ["42s", "3m 5s", "1h 0m", "2d 3h"]


def test_test_chat_sends_one_message_without_history(alice_client, fake_groq):
    alice_client.post("/chat/", {"session_id": "a", "message": "earlier"}, format="json")

    response = alice_client.post("/admin/test-chat", {"message": "Test message"}, format="json")

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["success"] is True
    assert body["response"] == "Echo: Test message"
    assert body["error"] is None
    assert body["latency_ms"] >= 0
    assert fake_groq.chat_requests()[-1]["json"]["messages"] == [{"role": "user", "content": "Test message"}]


def test_test_chat_sends_the_system_prompt_first_and_keeps_to_max_message_chars(alice_client, fake_groq, settings):
    settings.SYSTEM_PROMPT, settings.MAX_MESSAGE_CHARS = "You are terse.", 20

    assert alice_client.post("/admin/test-chat", {"message": "x" * 20}, format="json").status_code == HTTPStatus.OK
    too_long = alice_client.post("/admin/test-chat", {"message": "x" * 21}, format="json")

    assert too_long.status_code == HTTPStatus.BAD_REQUEST
    assert [r["json"]["messages"] for r in fake_groq.chat_requests()] == [
        [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "x" * 20}]
    ]


def test_test_chat_answers_an_upstream_failure_with_its_status(alice_client, fake_groq, settings):
    settings.LLM_MAX_RETRIES = 0
    fake_groq.add_faults({"kind": "status", "status": 503})

    response = alice_client.post("/admin/test-chat", {"message": "Test message"}, format="json")

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json()["code"] == "upstream_unavailable"


def test_memory_stats(alice_client, bob_client):
    alice_client.post("/chat/", {"session_id": "a", "message": "hi"}, format="json")
    alice_client.post("/chat/", {"session_id": "b", "message": "hi"}, format="json")
    bob_client.post("/chat/", {"session_id": "a", "message": "hi"}, format="json")

    body = alice_client.get("/chat/memory/stats").json()

    assert body["backend"] == "locmem"
    assert body["sessions_stored"] == 3
    assert body["your_sessions"] == 2
    assert body["max_sessions"] == 1000 and body["ttl_seconds"] == 3600
    assert body["usage"]["requests"] == 2 and body["usage"]["total_tokens"] > 0


def test_test_chat_names_the_unreachable_host_but_never_the_key(alice_client, settings):
    settings.GROQ_BASE_URL = "http://127.0.0.1:1/openai/v1"
    settings.LLM_MAX_RETRIES = 0

    response = alice_client.post("/admin/test-chat", {"message": "Test message"}, format="json")

    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json() == {
        "detail": "Cannot reach the language model service at 127.0.0.1:1 (ConnectError); try again shortly.",
        "code": "upstream_unavailable",
    }
    assert settings.GROQ_API_KEY not in response.content.decode()
