"""Renaming the account keys of a version before the hash tags (REDIS_CLUSTER), on a single Redis: an admin's
record, logins and API key ids move under its tag {a:<id>}, so that an upgrade keeps every admin, login and key."""

from __future__ import annotations

import redis

from core.redis_store import redis_admin_key, redis_client, redis_key


def renamed(client: redis.Redis, old: str, new: str) -> int:
    """1 when `old` became `new`; 0 when there was no `old`, or a `new` already (never overwritten)."""
    try:
        return int(client.renamenx(old, new))
    except redis.ResponseError:  # no such key
        return 0


def upgrade_account_keys() -> int:
    """Renames the old keys of every admin in the index; returns how many keys moved."""
    client = redis_client()
    moved = 0
    for raw_id in client.hvals(redis_key("admins")):
        admin_id = raw_id.decode()
        moved += renamed(client, redis_key("admin", admin_id), redis_admin_key(admin_id, "admin"))
        moved += renamed(client, redis_key("admin", admin_id, "apikeys"), redis_admin_key(admin_id, "apikeys"))
        for raw_sid in client.smembers(redis_key("admin", admin_id, "logins")):
            sid = raw_sid.decode()
            moved += renamed(client, redis_key("login", sid), redis_admin_key(admin_id, "login", sid))
        moved += renamed(client, redis_key("admin", admin_id, "logins"), redis_admin_key(admin_id, "logins"))
    return moved
