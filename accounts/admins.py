"""The admins' records in Redis: reading, creating, renaming and re-passwording them, keeping usernames unique.

Its keys, `A:admin` (the record) and `P:admins` (username -> id, keeping usernames unique ignoring case), are in
the Redis key map (docs/architecture.md). An admin's id never changes, so renaming keeps its conversations. The
record is in its admin's Redis Cluster slot (with its logins), the index in another: a name whose record is gone is
free (an admin deleted half-way). `known_default` is "1" when the password is a well-known default (admin123), which
production refuses to run with.
Deleting a record goes with its logins, in one script (login_sessions.login_session_revoke_all).
"""

from __future__ import annotations

import secrets

from accounts.exceptions import AdminNotFound, UsernameTaken
from accounts.key_rules import admin_limits_of_record
from accounts.models import AdminUser
from core.redis_store import decoded, redis_admin_key, redis_client, redis_key, redis_script
from core.timestamps import utcnow_iso

# Claims a username for an admin id unless another admin holds it in any letter case (usernames are ASCII, so
# Lua's lower() is case folding). KEYS: the index. ARGV: username, admin id. Returns 1 when claimed, else the name
# and id that hold it.
_CLAIM_USERNAME_SCRIPT = """
local wanted = string.lower(ARGV[1])
local index = redis.call('HGETALL', KEYS[1])
for i = 1, #index, 2 do
  if string.lower(index[i]) == wanted and index[i + 1] ~= ARGV[2] then return {index[i], index[i + 1]} end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# KEYS: the index. ARGV: username, admin id. Frees the name only while that admin holds it.
_UNINDEX_SCRIPT = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""


def _index_key() -> str:
    return redis_key("admins")


def _admin_key(admin_id: str) -> str:
    return redis_admin_key(admin_id, "admin")


def _admin_from_record(record: dict[str, str]) -> AdminUser:
    admin = AdminUser(id=record["id"], username=record["username"])
    admin.password_hash = record.get("password", "")
    admin.created_at = record.get("created_at", "")
    admin.last_updated = record.get("last_updated", "")
    admin.auth_epoch = record.get("auth_epoch", "0")
    admin.known_default = record.get("known_default")
    admin.has_budget = record.get("budget") == "1"
    admin.limits = admin_limits_of_record(record)
    return admin


def _claim_username(username: str, admin_id: str) -> None:
    """Claims `username` for `admin_id`, whose record must exist already: a name held by an id without a record
    belongs to an admin whose deletion stopped half-way, and is taken over."""
    claim = redis_script(_CLAIM_USERNAME_SCRIPT)
    for _ in range(3):
        held = claim(keys=[_index_key()], args=[username, admin_id])
        if held == 1:
            return
        name, holder = (item.decode() for item in held)
        if redis_client().exists(_admin_key(holder)):
            break
        admin_unindex(username=name, admin_id=holder)
    raise UsernameTaken(f"An admin named {username!r} already exists (usernames ignore letter case).")


def admin_get(admin_id: str) -> AdminUser | None:
    record = redis_client().hgetall(_admin_key(admin_id))
    return _admin_from_record(decoded(record)) if record else None


def admin_get_by_username(username: str) -> AdminUser | None:
    admin_id = redis_client().hget(_index_key(), username)
    return admin_get(admin_id.decode()) if admin_id else None


def admin_list() -> list[AdminUser]:
    admins = (admin_get(admin_id.decode()) for admin_id in redis_client().hvals(_index_key()))
    return sorted((a for a in admins if a is not None), key=lambda a: a.username)


def admin_count() -> int:
    return int(redis_client().hlen(_index_key()))


def admin_insert(*, username: str, password_fields: dict[str, str]) -> AdminUser:
    """Stores a new admin named `username` (UsernameTaken when another holds the name in any letter case) with
    its `password` and `known_default` fields."""
    admin_id = secrets.token_hex(8)
    now = utcnow_iso()
    record = {
        "id": admin_id,
        "username": username,
        **password_fields,
        "created_at": now,
        "last_updated": now,
        "auth_epoch": "0",
    }
    # The record first, then the name: a claimed name always has its record (see _claim_username).
    redis_client().hset(_admin_key(admin_id), mapping=record)
    try:
        _claim_username(username, admin_id)
    except BaseException:
        redis_client().delete(_admin_key(admin_id))
        raise
    return _admin_from_record(record)


def admin_update(*, admin: AdminUser, new_username: str | None, fields: dict[str, str]) -> list[str]:
    """Renames `admin` (when `new_username` differs) and sets `fields` on its record, with `last_updated`;
    returns the names of the fields changed. AdminNotFound once the admin is deleted."""
    client = redis_client()
    if not client.exists(_admin_key(admin.id)):
        raise AdminNotFound("This admin no longer exists.")
    changes = {"last_updated": utcnow_iso(), **fields}
    if new_username is not None and new_username != admin.username:
        _claim_username(new_username, admin.id)
        admin_unindex(username=admin.username, admin_id=admin.id)
        changes["username"] = new_username
    client.hset(_admin_key(admin.id), mapping=changes)
    return sorted(changes)


def admin_known_default_set(*, admin_id: str, known_default: str) -> None:
    redis_client().hset(_admin_key(admin_id), "known_default", known_default)


def admin_unindex(*, username: str, admin_id: str) -> None:
    """Frees `username` while `admin_id` holds it."""
    redis_script(_UNINDEX_SCRIPT)(keys=[_index_key()], args=[username, admin_id])
