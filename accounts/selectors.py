"""Reads of an admin's account, login sessions and API keys, for the endpoints and the management commands."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from accounts import api_keys, login_sessions
from accounts.admins import admin_get
from accounts.api_keys import ApiKey
from accounts.audit import ACTIONS, AuditEntry, audit_entries_of
from accounts.budgets import BudgetOwner, budget_status
from accounts.exceptions import AdminNotFound
from accounts.models import AdminUser


def admin_info(*, admin_id: str) -> dict[str, str | int]:
    """The admin's account and its count of live logins (AdminInfoSerializer's fields)."""
    admin = admin_get(admin_id)
    if admin is None:
        raise AdminNotFound("This admin no longer exists.")
    logins = login_session_count(admin_id=admin.id)
    return {
        "id": admin.id,
        "username": admin.username,
        "created_at": admin.created_at,
        "last_updated": admin.last_updated,
        "active_logins": logins,
    }


def browser_login_admin(*, admin_id: str, sid: str) -> AdminUser | None:
    """The admin of a browser sign-in's live login session `sid`, marked as used now; None once that login is
    revoked or expired, or its admin deleted (one Redis round trip, as for a token)."""
    session = login_sessions.login_session_touch(sid=sid, admin_id=admin_id)
    if session is None:
        return None
    admin = AdminUser(id=session["admin_id"], username=session["username"])
    admin.has_budget = session.get("budget") == "1"
    return admin


def login_session_count(*, admin_id: str) -> int:
    return len(login_sessions.login_session_list(admin_id))


def login_session_list(*, admin_id: str, current_session_id: str | None = None) -> list[dict[str, Any]]:
    """`admin_id`'s live logins, oldest first; `current` marks the one `current_session_id` names. What an
    endpoint shows of each is LoginSessionSerializer's choice."""
    return [
        {**session, "current": session["id"] == current_session_id}
        for session in login_sessions.login_session_list(admin_id)
    ]


def api_key_list(*, admin_id: str | None = None) -> list[ApiKey]:
    """The API keys of `admin_id`, or of every admin, oldest first."""
    return api_keys.api_key_list(admin_id) if admin_id is not None else api_keys.api_key_list_all()


def login_is_recent(*, admin_id: str, session_id: str | None) -> bool:
    """Whether the login `session_id` was made within RECENT_LOGIN_SECONDS: the password was typed moments ago."""
    started = login_sessions.login_session_started(admin_id=admin_id, sid=session_id) if session_id else None
    return started is not None and (datetime.now(UTC) - started).total_seconds() <= settings.RECENT_LOGIN_SECONDS


def api_keys_with_budgets(*, admin_id: str) -> list[dict[str, Any]]:
    """The admin's keys, oldest first, each with its `budget` ({tokens, period, used, resets_at}) or None."""
    return [
        api_key_with_budget(key) if key.has_budget else {**asdict(key), "budget": None}
        for key in api_keys.api_key_list(admin_id)
    ]


def api_key_with_budget(key: ApiKey) -> dict[str, Any]:
    """The key with its `budget` as it is now, or None."""
    return {**asdict(key), "budget": budget_status(BudgetOwner("key", key.id, key.admin_id))}


def admin_budget(*, admin_id: str) -> dict[str, Any] | None:
    return budget_status(BudgetOwner("admin", admin_id))


AUDIT_ACTIONS = ACTIONS


def audit_log(
    *,
    admin_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    action: str | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """The newest `limit` audit entries by or about the admin, newest first (`GET /admin/audit`, the console's
    audit page)."""
    return audit_entries_of(admin_id=admin_id, since=since, until=until, action=action, limit=limit)
