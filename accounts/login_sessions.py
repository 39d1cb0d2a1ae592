"""Login sessions: one Redis record per login, named by the `sid` claim of its access and refresh tokens.

A token is valid only while its login session exists, so deleting the record revokes both tokens in
every worker and process at once. Keys (under REDIS_KEY_PREFIX):
  login:<sid>            hash  admin_id, username, created_at, expires_at, last_activity; expires with the refresh token
  admin:<id>:logins      set   the sids of that admin's logins
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from chatbot_project.redis_store import decoded, hash_touch, redis_client, redis_key, utcnow_iso


def _login_key(sid: str) -> str:
    return redis_key("login", sid)


def _admin_logins_key(admin_id: str) -> str:
    return redis_key("admin", admin_id, "logins")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def login_session_create(*, admin_id: str, username: str, lifetime: timedelta) -> str:
    sid = secrets.token_urlsafe(16)
    now = datetime.now(UTC)
    record = {
        "id": sid,
        "admin_id": admin_id,
        "username": username,
        "created_at": _iso(now),
        "expires_at": _iso(now + lifetime),
        "last_activity": _iso(now),
    }
    seconds = int(lifetime.total_seconds()) + 1
    pipe = redis_client().pipeline()
    pipe.hset(_login_key(sid), mapping=record)
    pipe.expire(_login_key(sid), seconds)
    pipe.sadd(_admin_logins_key(admin_id), sid)
    pipe.expire(_admin_logins_key(admin_id), seconds, gt=True)
    pipe.expire(_admin_logins_key(admin_id), seconds, nx=True)
    pipe.execute()
    return sid


def login_session_touch(sid: str) -> dict[str, str] | None:
    """The live session `sid`, marked as used now; None once it is revoked or expired."""
    return hash_touch(_login_key(sid), "last_activity", utcnow_iso())


def login_session_list(admin_id: str) -> list[dict[str, str]]:
    client = redis_client()
    sids = sorted(member.decode() for member in client.smembers(_admin_logins_key(admin_id)))
    pipe = client.pipeline()
    for sid in sids:
        pipe.hgetall(_login_key(sid))
    sessions, stale = [], []
    for sid, record in zip(sids, pipe.execute(), strict=True):
        if record:
            sessions.append(decoded(record))
        else:
            stale.append(sid)
    if stale:
        client.srem(_admin_logins_key(admin_id), *stale)
    return sorted(sessions, key=lambda s: s["created_at"])


def login_session_revoke(*, admin_id: str, sid: str) -> bool:
    """Revokes one of `admin_id`'s logins; False when it is not theirs or already gone."""
    client = redis_client()
    owner = client.hget(_login_key(sid), "admin_id")
    if owner is None or owner.decode() != admin_id:
        return False
    pipe = client.pipeline()
    pipe.delete(_login_key(sid))
    pipe.srem(_admin_logins_key(admin_id), sid)
    pipe.execute()
    return True


def login_session_revoke_all(admin_id: str) -> int:
    """Revokes every token and browser session of `admin_id`; returns how many logins were live."""
    client = redis_client()
    sids = [member.decode() for member in client.smembers(_admin_logins_key(admin_id))]
    pipe = client.pipeline()
    for sid in sids:
        pipe.delete(_login_key(sid))
    pipe.delete(_admin_logins_key(admin_id))
    results = pipe.execute()
    # Browser sessions check a hash that includes auth_epoch; bumping it ends them.
    admin_key = redis_key("admin", admin_id)
    if client.exists(admin_key):
        client.hincrby(admin_key, "auth_epoch", 1)
    return sum(results[: len(sids)])
