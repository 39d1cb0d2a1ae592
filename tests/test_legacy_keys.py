"""An upgrade from a version before the Redis Cluster hash tags keeps everything: `manage.py upgraderediskeys`
(which the server runs at start) renames the old keys on a single Redis, once."""

from __future__ import annotations

from http import HTTPStatus

from django.conf import settings
from django.core.management import call_command
from rest_framework.test import APIClient

from conversations.history.redis_keys import admin_index_key, session_keys
from conversations.legacy_keys import upgrade_redis_keys
from conversations.usage import usage_key
from core.redis_store import redis_admin_key, redis_client, redis_key
from tests.support import chat


def old_names(admin_id: str, sid: str, session_id: str) -> dict[str, str]:
    """Each key's name before the hash tags, by its name now."""
    prefix = settings.REDIS_KEY_PREFIX
    messages, meta = session_keys(admin_id, session_id)
    return {
        redis_admin_key(admin_id, "admin"): redis_key("admin", admin_id),
        redis_admin_key(admin_id, "login", sid): redis_key("login", sid),
        redis_admin_key(admin_id, "logins"): redis_key("admin", admin_id, "logins"),
        redis_admin_key(admin_id, "apikeys"): redis_key("admin", admin_id, "apikeys"),
        usage_key(admin_id): redis_key("usage", admin_id),
        admin_index_key(admin_id): f"{prefix}:{{conv-index}}:{admin_id}",
        messages: f"{prefix}:conv:{{{admin_id}:{session_id}}}:messages",
        meta: f"{prefix}:conv:{{{admin_id}:{session_id}}}:meta",
    }


def test_an_upgrade_keeps_admins_logins_api_keys_usage_and_conversations(alice, alice_tokens, settings, fake_groq):
    settings.HISTORY_BACKEND = "redis"
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {alice_tokens['access_token']}")
    key = client.post("/admin/api-keys", {"name": "sdk"}, format="json").json()
    assert chat(client, "My name is Alice.", "s1").status_code == HTTPStatus.OK
    sid = client.get("/admin/sessions").json()["sessions"][0]["id"]
    redis = redis_client()
    for new, old in old_names(alice.id, sid, "s1").items():  # as the older version left them
        redis.rename(new, old)
    redis.delete(redis_key("key-scheme"))
    assert client.get("/admin/info").status_code == HTTPStatus.UNAUTHORIZED

    call_command("upgraderediskeys")

    assert client.get("/admin/info").status_code == HTTPStatus.OK  # the same login, still live
    with_key = APIClient(HTTP_AUTHORIZATION=f"Bearer {key['key']}")
    assert with_key.get("/admin/info").status_code == HTTPStatus.OK
    assert client.get("/admin/api-keys").json()["count"] == 1
    assert client.get("/chat/memory/stats").json()["usage"]["requests"] == 1
    answer = chat(client, "What is my name?", "s1")
    assert answer.status_code == HTTPStatus.OK
    assert answer.json()["session_usage"]["requests"] == 2
    assert [s["session_id"] for s in client.get("/chat/sessions").json()["sessions"]] == ["s1"]
    assert upgrade_redis_keys() is None  # done once


def test_a_new_store_is_marked_and_not_scanned_again(alice):
    assert upgrade_redis_keys() == 0
    assert redis_client().get(redis_key("key-scheme")) == b"2"
    assert upgrade_redis_keys() is None
