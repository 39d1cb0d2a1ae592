"""What the admin endpoints and management commands change: admins and their credentials, logins, API keys.
The records live in the stores (admins.py, login_sessions.py, api_keys.py, budgets.py); the rules for a username and
a password in credentials.py and passwords.py; the default admin in startup.py."""

from __future__ import annotations

import logging

from django.http import HttpRequest

from accounts import api_keys, login_sessions
from accounts.admins import admin_get, admin_get_by_username, admin_insert, admin_unindex, admin_update
from accounts.api_keys import ApiKey
from accounts.audit import Outcome, audit_record
from accounts.budgets import Budget, BudgetOwner, budget_set
from accounts.credentials import new_credentials_check
from accounts.exceptions import (
    AdminNotFound,
    ApiKeyNotFound,
    CurrentPasswordRequired,
    LoginSessionNotFound,
    WrongPassword,
)
from accounts.key_rules import NO_RULES, KeyRules
from accounts.models import AdminUser
from accounts.passwords import password_hash, password_matches
from accounts.tokens import CredentialsChanged, login_lifetime, tokens_revoke_refresh
from core.metrics import login_counted
from core.weak_secrets import is_known_default_password

logger = logging.getLogger(__name__)


def _password_fields(password: str) -> dict[str, str]:
    return {"password": password_hash(password), "known_default": "1" if is_known_default_password(password) else "0"}


def admin_create(*, username: str, password: str, check_password: bool = True) -> AdminUser:
    """A new admin; `check_password=False` stores a password the rule would refuse (the default admin's, in
    development)."""
    new_credentials_check(username=username, password=password if check_password else None)
    admin = admin_insert(username=username, password_fields=_password_fields(password))
    logger.info("admin created: id=%s username=%s", admin.id, username)
    return admin


def admin_authenticate(*, username: str, password: str) -> AdminUser | None:
    """The admin named `username` when `password` is its password; else None, after as long a check."""
    admin = admin_get_by_username(username)
    if not password_matches(password, admin.password_hash if admin else None):
        return None
    return admin


def admin_change_credentials(
    *,
    admin_id: str,
    current_password: str | None,
    recent_login: bool,
    new_username: str | None,
    new_password: str | None,
) -> AdminUser:
    """What an admin does for itself: proves the current password, then admin_update_credentials. A login made
    moments ago (`recent_login`) proved it already, so the documented request without it (docs/api.md) works."""
    admin = admin_get(admin_id)
    if admin is None:
        raise AdminNotFound("This admin no longer exists.")
    if current_password is None:
        if not recent_login:
            raise CurrentPasswordRequired(
                "Send current_password (it may be left out only within RECENT_LOGIN_SECONDS of logging in)."
            )
    elif not password_matches(current_password, admin.password_hash):
        raise WrongPassword("current_password is not correct.")
    return admin_update_credentials(admin=admin, new_username=new_username, new_password=new_password)


def admin_update_credentials(
    *, admin: AdminUser, new_username: str | None = None, new_password: str | None = None
) -> AdminUser:
    """Renames and/or re-passwords `admin`, then revokes every token and browser session it holds."""
    new_credentials_check(username=new_username, password=new_password)
    fields = _password_fields(new_password) if new_password is not None else {}
    changed = admin_update(admin=admin, new_username=new_username, fields=fields)
    # Also ends any login that checked the old password and has not created its session yet.
    login_sessions.login_session_revoke_all(admin.id)
    logger.info("admin credentials changed: id=%s fields=%s", admin.id, ",".join(changed))
    updated = admin_get(admin.id)
    assert updated is not None
    return updated


def admin_delete(admin: AdminUser) -> None:
    # The record goes first, with every login, in one script in the admin's slot: from then on no token works and
    # no login can create a session for this admin (see login_sessions). Then its name, in the index's slot.
    login_sessions.login_session_revoke_all(admin.id, delete_admin=True)
    admin_unindex(username=admin.username, admin_id=admin.id)
    api_keys.api_key_revoke_all(admin.id)
    logger.info("admin deleted: id=%s username=%s", admin.id, admin.username)


def browser_login_start(admin: AdminUser) -> tuple[str, int]:
    """A login session for a browser sign-in (the console's) by `admin`, as read before its password was checked:
    the tokens' kind of login, so that logout, a credential change, revoketokens and the admin's deletion end it as
    they end a token. Returns its id and its lifetime in seconds; raises CredentialsChanged as tokens_issue does."""
    lifetime = login_lifetime()
    sid = login_sessions.login_session_create(
        admin_id=admin.id, username=admin.username, auth_epoch=admin.auth_epoch, lifetime=lifetime
    )
    if sid is None:
        raise CredentialsChanged()
    login_counted("succeeded")
    logger.info("browser login: admin_id=%s", admin.id)
    return sid, int(lifetime.total_seconds())


def admin_logout(*, admin_id: str, login_session_id: str | None, refresh_token: str | None = None) -> None:
    """Ends the login behind `refresh_token` (which must be `admin_id`'s), when given, then the login the
    request was made with; an API key or a browser session has none."""
    if refresh_token is not None:
        tokens_revoke_refresh(admin_id=admin_id, raw_refresh=refresh_token)
    if login_session_id:
        login_sessions.login_session_delete(admin_id=admin_id, sid=login_session_id)


def login_session_revoke(*, admin_id: str, session_id: str) -> None:
    """Revokes `admin_id`'s login `session_id` (both its tokens); LoginSessionNotFound when it is not theirs."""
    if not login_sessions.login_session_delete(admin_id=admin_id, sid=session_id):
        raise LoginSessionNotFound("No such login session.")


def admin_tokens_revoke(*, admin_id: str, with_api_keys: bool = False) -> tuple[int, int]:
    """Revokes every token and browser session of `admin_id`, and its API keys too when asked; returns how many
    logins, and how many keys, were live."""
    logins = login_sessions.login_session_revoke_all(admin_id)
    return logins, (api_keys.api_key_revoke_all(admin_id) if with_api_keys else 0)


def api_key_create(
    *, admin_id: str, name: str = "", budget: Budget | None = None, rules: KeyRules = NO_RULES
) -> tuple[ApiKey, str]:
    """A new key of `admin_id` (with its token budget and its rules, if given), with the raw key, which is never
    available again."""
    key, raw = api_keys.api_key_create(admin_id=admin_id, name=name, rules=rules)
    if budget is not None:
        budget_set(BudgetOwner("key", key.id, admin_id), budget)
    return key, raw


def api_key_budget_set(*, key_id: str, admin_id: str, budget: Budget | None) -> ApiKey:
    """Sets (None: removes) the token budget of `admin_id`'s key `key_id`; returns the key."""
    key = next((key for key in api_keys.api_key_list(admin_id) if key.id == key_id), None)
    if key is None:
        raise ApiKeyNotFound("No such API key.")
    budget_set(BudgetOwner("key", key_id, admin_id), budget)
    return key


def api_key_of(*, key_id: str, admin_id: str | None = None) -> ApiKey:
    """The key `key_id` (only if it is `admin_id`'s, when given); ApiKeyNotFound otherwise."""
    if admin_id is None:
        admin_id = api_keys.api_key_admin_id(key_id)
    key = next((key for key in api_keys.api_key_list(admin_id) if key.id == key_id), None) if admin_id else None
    if key is None:
        raise ApiKeyNotFound("No such API key.")
    return key


def api_key_rules_set(*, key_id: str, admin_id: str | None, rules: KeyRules) -> ApiKey:
    """Replaces the rules of the key `key_id` (only `admin_id`'s, when given); returns the key as it now is."""
    key = api_key_of(key_id=key_id, admin_id=admin_id)
    if not api_keys.api_key_rules_set(key_id, rules):
        raise ApiKeyNotFound("No such API key.")
    return api_key_of(key_id=key_id, admin_id=key.admin_id)


def api_key_revoke(*, key_id: str, admin_id: str | None = None) -> None:
    """Revokes the key `key_id`; with `admin_id`, only if it is that admin's."""
    if not api_keys.api_key_delete(key_id=key_id, admin_id=admin_id):
        raise ApiKeyNotFound("No such API key.")


def action_audit(
    action: str,
    *,
    request: HttpRequest,
    admin: AdminUser,
    target: str = "",
    outcome: Outcome = "success",
    detail: str = "",
) -> None:
    """Records in the audit log what `admin` did through a request that carries no token (a console page): as the
    API's `audited` views record it, the admin its actor and subject."""
    audit_record(
        action, request=request, as_admin=(admin.id, admin.username), target=target, outcome=outcome, detail=detail
    )
