"""Login sessions: one Redis record per login, named by the `sid` claim of its access and refresh tokens.

A token is valid only while its login session exists and its admin does, so deleting the record revokes both
tokens in every worker and process at once. Its keys, `A:login:<sid>` (expiring with the refresh token) and
`A:logins`, are in the Redis key map (docs/architecture.md).

Creating a login and revoking them all are each one Lua script, and revoking bumps the admin's `auth_epoch`: a
login whose password check began before a revocation (or a credential change, or the admin's deletion) finds
another epoch, or no admin, when it tries to create its session, and gets none.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from core.redis_store import decoded, hash_touch, redis_admin_key, redis_client, redis_script
from core.timestamps import iso_at, utcnow_iso


def _login_key(admin_id: str, sid: str) -> str:
    return redis_admin_key(admin_id, "login", sid)


def _admin_logins_key(admin_id: str) -> str:
    return redis_admin_key(admin_id, "logins")


def _admin_key(admin_id: str) -> str:
    return redis_admin_key(admin_id, "admin")


# KEYS: admin, login, admin's logins. ARGV: the epoch the password was checked in, seconds to live, the sid, then
# the record's fields and values. Returns 1, or 0 when the admin is gone or its credentials changed meanwhile.
_CREATE_SCRIPT = """
local lifetime = tonumber(ARGV[2])
if not lifetime or lifetime <= 0 then error('login: the lifetime is not a number of seconds') end
if redis.call('EXISTS', KEYS[1]) == 0 or (redis.call('HGET', KEYS[1], 'auth_epoch') or '0') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
for _, copied in ipairs({'budget', 'rpm', 'tpm'}) do
  local value = redis.call('HGET', KEYS[1], copied)
  if value then redis.call('HSET', KEYS[2], copied, value) end
end
redis.call('EXPIRE', KEYS[2], lifetime)
redis.call('SADD', KEYS[3], ARGV[3])
if redis.call('TTL', KEYS[3]) < lifetime then redis.call('EXPIRE', KEYS[3], lifetime) end
return 1
"""

# KEYS: admin, admin's logins. ARGV: the login key prefix, delete the admin too (1/0). Returns how many logins were
# live. The logins it deletes
# are named only by the set, so they cannot be declared; they share the admin's hash tag, hence its slot.
_REVOKE_ALL_SCRIPT = """
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1])
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'auth_epoch', 1)
end
local live = 0
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[2])) do live = live + redis.call('DEL', ARGV[1] .. sid) end
redis.call('DEL', KEYS[2])
return live
"""


def login_session_create(*, admin_id: str, username: str, auth_epoch: str, lifetime: timedelta) -> str | None:
    """A new login of `admin_id`, or None when the admin was deleted or its credentials changed (or its tokens
    were revoked) since `auth_epoch` was read, the state its password was checked against."""
    sid = secrets.token_urlsafe(16)
    now = datetime.now(UTC)
    record = {
        "id": sid,
        "admin_id": admin_id,
        "username": username,
        "created_at": iso_at(now),
        "expires_at": iso_at(now + lifetime),
        "last_activity": iso_at(now),
    }
    seconds = int(lifetime.total_seconds()) + 1
    fields = [item for pair in record.items() for item in pair]
    create = redis_script(_CREATE_SCRIPT)
    keys = [_admin_key(admin_id), _login_key(admin_id, sid), _admin_logins_key(admin_id)]
    created = create(keys=keys, args=[auth_epoch, seconds, sid, *fields])
    return sid if created else None


def login_session_touch(*, sid: str, admin_id: str) -> dict[str, str] | None:
    """The live session `sid` of `admin_id`, marked as used now; None once it is revoked or expired, or its
    admin is deleted."""
    session = hash_touch(_login_key(admin_id, sid), "last_activity", utcnow_iso(), requires=_admin_key(admin_id))
    return session if session is not None and session.get("admin_id") == admin_id else None


def login_session_list(admin_id: str) -> list[dict[str, str]]:
    client = redis_client()
    sids = sorted(member.decode() for member in client.smembers(_admin_logins_key(admin_id)))
    pipe = client.pipeline(transaction=False)
    for sid in sids:
        pipe.hgetall(_login_key(admin_id, sid))
    sessions, stale = [], []
    for sid, record in zip(sids, pipe.execute(), strict=True):
        if record:
            sessions.append(decoded(record))
        else:
            stale.append(sid)
    if stale:
        client.srem(_admin_logins_key(admin_id), *stale)
    return sorted(sessions, key=lambda s: s["created_at"])


def login_session_delete(*, admin_id: str, sid: str) -> bool:
    """Deletes one of `admin_id`'s logins, which revokes its tokens; False when it is not theirs or already gone."""
    client = redis_client()
    owner = client.hget(_login_key(admin_id, sid), "admin_id")
    if owner is None or owner.decode() != admin_id:
        return False
    pipe = client.pipeline(transaction=True)  # one slot: a MULTI even on Redis Cluster
    pipe.delete(_login_key(admin_id, sid))
    pipe.srem(_admin_logins_key(admin_id), sid)
    pipe.execute()
    return True


def login_session_revoke_all(admin_id: str, *, delete_admin: bool = False) -> int:
    """Revokes every token and browser session of `admin_id`, and any login still checking its password (and with
    `delete_admin`, deletes its record in the same step); returns how many logins were live."""
    revoke_all = redis_script(_REVOKE_ALL_SCRIPT)
    keys = [_admin_key(admin_id), _admin_logins_key(admin_id)]
    return int(revoke_all(keys=keys, args=[_login_key(admin_id, ""), int(delete_admin)]))


# KEYS: admin, admin's logins. ARGV: the login key prefix, the field, its value ('' to remove it). Sets a field of
# the admin's record and of each of its live logins, which every request reads anyway (the logins, named by the
# set, share the admin's hash tag, hence its slot).
_FLAG_SCRIPT = """
local function flag(key)
  if ARGV[3] == '' then redis.call('HDEL', key, ARGV[2]) else redis.call('HSET', key, ARGV[2], ARGV[3]) end
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
flag(KEYS[1])
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[1] .. sid) == 1 then flag(ARGV[1] .. sid) end
end
return 1
"""


def admin_flag_set(admin_id: str, field: str, value: str) -> bool:
    """Sets `field` (or removes it, for "") on the admin's record and on its live logins, which new logins copy;
    False when there is no such admin."""
    flag = redis_script(_FLAG_SCRIPT)
    keys = [_admin_key(admin_id), _admin_logins_key(admin_id)]
    return bool(flag(keys=keys, args=[_login_key(admin_id, ""), field, value]))


def login_session_started(*, admin_id: str, sid: str) -> datetime | None:
    """When the login `sid` of `admin_id` was made, or None once it is gone."""
    created_at = redis_client().hget(_login_key(admin_id, sid), "created_at")
    return datetime.fromisoformat(created_at.decode()) if created_at else None
