"""Renaming the keys of a version before the hash tags (REDIS_CLUSTER), on a single Redis: the accounts' (see
accounts.legacy_keys), each admin's usage totals, and the conversations, so that an upgrade loses nothing. Done
once: a marker key remembers it. On Redis Cluster nothing is renamed (a key cannot move to another slot by
RENAME); a cluster starts with the new names."""

from __future__ import annotations

from django.conf import settings

from accounts.legacy_keys import renamed, upgrade_account_keys
from conversations.history.redis_keys import admin_index_key, session_keys
from conversations.usage import usage_key
from core.redis_store import redis_client, redis_key

KEY_SCHEME = "2"  # 2: the hash tags {a:<admin id>}


def _scheme_key() -> str:
    return redis_key("key-scheme")


def upgrade_redis_keys() -> int | None:
    """Renames the old keys; returns how many moved, or None when there was nothing to do (done before, or a
    cluster)."""
    client = redis_client()
    if settings.REDIS_CLUSTER or client.get(_scheme_key()) == KEY_SCHEME.encode():
        return None
    moved = upgrade_account_keys()
    prefix = settings.REDIS_KEY_PREFIX
    for raw in client.scan_iter(match=f"{prefix}:usage:*", count=1000):
        admin_id = raw.decode().removeprefix(f"{prefix}:usage:")
        moved += renamed(client, raw.decode(), usage_key(admin_id))
    for raw in client.scan_iter(match=f"{prefix}:{{conv-index}}:*", count=1000):
        admin_id = raw.decode().removeprefix(f"{prefix}:{{conv-index}}:")
        if admin_id != "all":
            moved += renamed(client, raw.decode(), admin_index_key(admin_id))
    for raw in client.scan_iter(match=f"{prefix}:conv:{{*}}:meta", count=1000):
        tag = raw.decode().removeprefix(f"{prefix}:conv:{{").removesuffix("}:meta")
        admin_id, _, session_id = tag.partition(":")  # admin ids have no colon; session ids may
        messages, meta = session_keys(admin_id, session_id)
        moved += renamed(client, f"{prefix}:conv:{{{tag}}}:messages", messages)
        moved += renamed(client, raw.decode(), meta)
    client.set(_scheme_key(), KEY_SCHEME)
    return moved
