"""The audit log: every security-relevant action (logins, credentials, admins, API keys, budgets and limits, chat
sessions deleted or imported, stored responses deleted), with its time, actor, target, client address, request id
and outcome.

It is a Redis stream per UTC day and per kind of actor, appended to and never edited through the API:
`P:audit:admin:<day>` holds what admins and operators (`manage.py`, as the operating-system user) did,
`P:audit:client:<day>` what unauthenticated clients did (failed and throttled logins, failed refreshes), so that a
flood of the latter cannot push the former out. Each stream is capped at AUDIT_MAX_ENTRIES_PER_DAY (XADD MAXLEN, the
oldest entries of the day go first) and expires AUDIT_RETENTION_DAYS after its day. Each entry is also copied to
the stream of each admin it concerns (`A:audit`, as capped, expiring AUDIT_RETENTION_DAYS after its latest entry),
which is what that admin reads. Repeated failed logins of one username from one address are recorded at the 1st,
2nd, 4th, 8th... failure in the throttle's window, with the count, from the counter the login throttle keeps anyway:
a failed login costs no bcrypt work and, but for those few recorded (which look the username up, to file the entry
with its admin), no Redis round trip more. Text from a client (a username as typed) is escaped as the log lines
are (core/log_format.py).
"""

from __future__ import annotations

import functools
import getpass
import heapq
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import redis
from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request

from accounts.admins import admin_get_by_username
from core.http import client_ip
from core.log_format import escape_controls
from core.redis_store import decoded, redis_admin_key, redis_client, redis_key
from core.timestamps import iso_at

logger = logging.getLogger("chatbot.audit")

ActorKind = Literal["admin", "os", "client"]
Outcome = Literal["success", "failure"]
STREAMS: tuple[ActorKind, ...] = ("admin", "client")
ACTIONS = (
    "login.succeeded",
    "login.failed",
    "login.throttled",
    "logout",
    "token.refreshed",
    "credentials.changed",
    "admin.created",
    "admin.deleted",
    "logins.revoked",
    "login_session.revoked",
    "api_key.created",
    "api_key.changed",
    "api_key.revoked",
    "budget.set",
    "limits.set",
    "session.deleted",
    "session.imported",
    "response.deleted",
)
_READ_CHUNK = 500


@dataclass(frozen=True)
class AuditEntry:
    id: str
    time: str
    actor_kind: str
    actor: str
    actor_name: str
    action: str
    target: str
    subject: str
    client: str
    request_id: str
    outcome: str
    count: int
    detail: str


def _stream_key(kind: str, day: date) -> str:
    return redis_key("audit", kind, day.isoformat())


def _admin_stream_key(admin_id: str) -> str:
    return redis_admin_key(admin_id, "audit")


def _actor(request: HttpRequest | Request | None) -> tuple[ActorKind, str, str]:
    if request is None:
        return "os", _os_user(), ""
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return "admin", str(user.id), user.username
    return "client", "", ""


@functools.cache
def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's arbitrary user)
        return "unknown"


def audit_record(
    action: str,
    *,
    request: HttpRequest | Request | None = None,
    target: str = "",
    subject: str = "",
    outcome: Outcome = "success",
    count: int = 1,
    detail: str = "",
    as_admin: tuple[str, str] | None = None,
) -> None:
    """Appends one entry. Without `request` the actor is the operating-system user (a `manage.py` command).
    `subject` is the admin the action concerns (the actor's own id when it acts on itself). A Redis error is
    logged, not raised: the action it records has already happened. `as_admin` (id, username) is the actor of a
    request that carries no token yet: a login."""
    assert action in ACTIONS, action
    kind, actor, actor_name = ("admin", *as_admin) if as_admin else _actor(request)
    subject = subject or (actor if kind == "admin" else "")
    now = datetime.now(UTC)
    fields = {
        "time": iso_at(now, timespec="milliseconds"),
        "actor_kind": kind,
        "actor": escape_controls(actor),
        "actor_name": escape_controls(actor_name),
        "action": action,
        "target": escape_controls(target),
        "subject": subject,
        "client": escape_controls(client_ip(request)) if request is not None else "local",
        "request_id": getattr(request, "request_id", "") if request is not None else "",
        "outcome": outcome,
        "count": str(count),
        "detail": escape_controls(detail),
    }
    logger.info(" ".join(f"{name}={value}" for name, value in fields.items() if value))
    stream = "client" if kind == "client" else "admin"
    key = _stream_key(stream, now.date())
    expires_at = datetime.combine(now.date(), datetime.min.time(), UTC) + timedelta(
        days=settings.AUDIT_RETENTION_DAYS + 1
    )
    pipe = redis_client().pipeline(transaction=False)
    pipe.xadd(key, fields, maxlen=settings.AUDIT_MAX_ENTRIES_PER_DAY, approximate=False)
    pipe.expireat(key, int(expires_at.timestamp()))
    # A copy for each admin it concerns, so that GET /admin/audit reads only that admin's entries.
    for admin_id in {subject, actor if kind == "admin" else ""} - {""}:
        pipe.xadd(_admin_stream_key(admin_id), fields, maxlen=settings.AUDIT_MAX_ENTRIES_PER_DAY, approximate=True)
        pipe.expire(_admin_stream_key(admin_id), timedelta(days=settings.AUDIT_RETENTION_DAYS))
    try:
        pipe.execute()
    except redis.RedisError:
        logger.exception("the audit entry above was not stored: Redis failed")


def _repeat_worth_recording(count: int) -> bool:
    """The 1st, 2nd, 4th, 8th... of a run: a flood of n attempts leaves about log2(n) entries."""
    return count >= 1 and count & (count - 1) == 0


def audit_login(request: HttpRequest | None, *, username: str, admin_id: str | None, failures: int) -> None:
    """A login's outcome; `failures` is the count of failed attempts of this username from this address in the
    throttle's window, this one included."""
    if admin_id is not None:
        audit_record("login.succeeded", request=request, as_admin=(admin_id, username), target=username)
    elif _repeat_worth_recording(failures):
        subject = _admin_named(username)
        audit_record(
            "login.failed", request=request, target=username, subject=subject, outcome="failure", count=failures
        )


def audit_login_throttled(request: HttpRequest | None, *, username: str, attempts: int) -> None:
    """A login refused before its password was checked; `attempts` is the address's count in the window."""
    if _repeat_worth_recording(attempts):
        subject = _admin_named(username)
        audit_record(
            "login.throttled", request=request, target=username, subject=subject, outcome="failure", count=attempts
        )


def _admin_named(username: str) -> str:
    """The id of the admin a failed login was typed for, if any: only for the entries recorded, never a bcrypt check."""
    admin = admin_get_by_username(username)
    return admin.id if admin else ""


def _entry(stream_id: bytes, fields: dict[bytes, bytes]) -> AuditEntry:
    record = decoded(fields)
    return AuditEntry(
        id=stream_id.decode(),
        time=record.get("time", ""),
        actor_kind=record.get("actor_kind", ""),
        actor=record.get("actor", ""),
        actor_name=record.get("actor_name", ""),
        action=record.get("action", ""),
        target=record.get("target", ""),
        subject=record.get("subject", ""),
        client=record.get("client", ""),
        request_id=record.get("request_id", ""),
        outcome=record.get("outcome", ""),
        count=int(record.get("count", "1") or 1),
        detail=record.get("detail", ""),
    )


def _read(key: str, since: datetime, until: datetime, *, newest_first: bool) -> Iterator[AuditEntry]:
    if until < since:  # also keeps a time before 1970 out of the stream ids, which Redis refuses
        return
    client = redis_client()
    low, high = str(int(since.timestamp() * 1000)), str(int(until.timestamp() * 1000))
    while True:
        if newest_first:
            chunk = client.xrevrange(key, max=high, min=low, count=_READ_CHUNK)
        else:
            chunk = client.xrange(key, min=low, max=high, count=_READ_CHUNK)
        yield from (_entry(stream_id, fields) for stream_id, fields in chunk)
        if len(chunk) < _READ_CHUNK:
            return
        if newest_first:
            high = "(" + chunk[-1][0].decode()
        else:
            low = "(" + chunk[-1][0].decode()


def _stream_order(entry: AuditEntry) -> tuple[int, int]:
    milliseconds, _, sequence = entry.id.partition("-")
    return int(milliseconds), int(sequence or 0)


def audit_entries(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    action: str | None = None,
    newest_first: bool = True,
) -> Iterator[AuditEntry]:
    """Entries from `since` to `until` (both inclusive; by default the whole retention), of one action when
    given, in both streams, in the order they were written or its reverse."""
    now = datetime.now(UTC)
    oldest = now - timedelta(days=settings.AUDIT_RETENTION_DAYS + 1)
    since = max(since or oldest, oldest)
    until = min(until or now, now)
    first, last = since.date(), until.date()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    for day in reversed(days) if newest_first else days:
        streams = [_read(_stream_key(kind, day), since, until, newest_first=newest_first) for kind in STREAMS]
        for entry in heapq.merge(*streams, key=_stream_order, reverse=newest_first):
            if action is None or entry.action == action:
                yield entry


def audit_entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return asdict(entry)


def audit_entries_of(
    *, admin_id: str, since: datetime | None, until: datetime | None, action: str | None, limit: int
) -> list[AuditEntry]:
    """The newest `limit` entries made by the admin or about it (failed logins typed as its username among them),
    newest first."""
    now = datetime.now(UTC)
    oldest = now - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    since = max(since or oldest, oldest)
    entries = _read(_admin_stream_key(admin_id), since, min(until or now, now), newest_first=True)
    wanted = (entry for entry in entries if action is None or entry.action == action)
    return [entry for _, entry in zip(range(limit), wanted, strict=False)]
