"""Admin accounts in Redis, and what the endpoints and commands change: credentials, logins, API keys.

Keys (all under REDIS_KEY_PREFIX):
  {a:<id>}:admin  hash  id, username, password (bcrypt), created_at, last_updated, auth_epoch, known_default
  admins          hash  username -> id (the index that keeps usernames unique, ignoring case)
An admin's id never changes, so renaming keeps its conversations. The record is in its admin's Redis Cluster
slot (with its logins), the index in another: a name whose record is gone is free (an admin deleted half-way).
`known_default` is "1" when the password is a well-known default (admin123), which production refuses to run with.
"""

from __future__ import annotations

import logging
import re
import secrets
import unicodedata
from contextlib import suppress

from django.conf import settings

from accounts import api_keys, login_sessions
from accounts.api_keys import ApiKey
from accounts.budgets import Budget, BudgetOwner, budget_set
from accounts.exceptions import (
    AdminNotFound,
    ApiKeyNotFound,
    CurrentPasswordRequired,
    InvalidCredentialInput,
    LoginSessionNotFound,
    UsernameTaken,
    WeakDefaultPassword,
    WrongPassword,
)
from accounts.models import AdminUser
from accounts.passwords import password_hash, password_matches, password_problem
from accounts.tokens import tokens_refresh, tokens_revoke_refresh
from core.redis_store import decoded, redis_admin_key, redis_client, redis_key, redis_script
from core.timestamps import utcnow_iso
from core.weak_secrets import is_known_default_password

logger = logging.getLogger(__name__)

# The defaults this service and its docs have shipped: what an admin from before `known_default` may still have.
SHIPPED_DEFAULT_PASSWORDS = ("admin123", "change-me-too-12-chars")
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.@+-]{1,150}$")

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


def username_folded(username: str) -> str:
    """The form two usernames are compared in: `Erin`, `ERIN` and `erin` are one name."""
    return unicodedata.normalize("NFKC", username).casefold()


def username_problem(username: str) -> str | None:
    if not USERNAME_PATTERN.match(username):
        return "Username must be 1-150 characters: letters, digits and _ . @ + -"
    return None


def _check_new_credentials(username: str | None, password: str | None) -> None:
    problem = (username is not None and username_problem(username)) or (
        password is not None and password_problem(password)
    )
    if problem:
        raise InvalidCredentialInput(problem)


def _admin_from_record(record: dict[str, str]) -> AdminUser:
    admin = AdminUser(id=record["id"], username=record["username"])
    admin.password_hash = record.get("password", "")
    admin.created_at = record.get("created_at", "")
    admin.last_updated = record.get("last_updated", "")
    admin.auth_epoch = record.get("auth_epoch", "0")
    admin.known_default = record.get("known_default")
    admin.has_budget = record.get("budget") == "1"
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
        _unindex(name, holder)
    raise UsernameTaken(f"An admin named {username!r} already exists (usernames ignore letter case).")


def _unindex(username: str, admin_id: str) -> None:
    redis_script(_UNINDEX_SCRIPT)(keys=[_index_key()], args=[username, admin_id])


def _password_fields(password: str) -> dict[str, str]:
    return {"password": password_hash(password), "known_default": "1" if is_known_default_password(password) else "0"}


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


def admin_create(*, username: str, password: str, check_password: bool = True) -> AdminUser:
    _check_new_credentials(username, password if check_password else None)
    admin_id = secrets.token_hex(8)
    now = utcnow_iso()
    record = {
        "id": admin_id,
        "username": username,
        **_password_fields(password),
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
    logger.info("admin created: id=%s username=%s", admin_id, username)
    return _admin_from_record(record)


def admin_authenticate(*, username: str, password: str) -> AdminUser | None:
    admin = admin_get_by_username(username)
    if admin is None and username == settings.DEFAULT_ADMIN_USERNAME:
        # Redis restarted empty (the quick start's keeps nothing on disk): the default admin comes back, as at start.
        with suppress(WeakDefaultPassword):
            admin_ensure_default()
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
    moments ago (`recent_login`) proved it already, so the original service's request without it still works."""
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
    _check_new_credentials(new_username, new_password)
    client = redis_client()
    if not client.exists(_admin_key(admin.id)):
        raise AdminNotFound("This admin no longer exists.")
    changes = {"last_updated": utcnow_iso()}
    if new_username is not None and new_username != admin.username:
        _claim_username(new_username, admin.id)
        _unindex(admin.username, admin.id)
        changes["username"] = new_username
    if new_password is not None:
        changes.update(_password_fields(new_password))
    client.hset(_admin_key(admin.id), mapping=changes)
    # Also ends any login that checked the old password and has not created its session yet.
    login_sessions.login_session_revoke_all(admin.id)
    logger.info("admin credentials changed: id=%s fields=%s", admin.id, ",".join(sorted(changes)))
    updated = admin_get(admin.id)
    assert updated is not None
    return updated


def admin_delete(admin: AdminUser) -> None:
    # The record goes first, with every login, in one script in the admin's slot: from then on no token works and
    # no login can create a session for this admin (see login_sessions). Then its name, in the index's slot.
    login_sessions.login_session_revoke_all(admin.id, delete_admin=True)
    _unindex(admin.username, admin.id)
    api_keys.api_key_revoke_all(admin.id)
    logger.info("admin deleted: id=%s username=%s", admin.id, admin.username)


def admin_ensure_default() -> AdminUser | None:
    """Creates the default admin when Redis holds none. Returns it, or None when admins already exist.

    With DEBUG off a missing or weak DEFAULT_ADMIN_PASSWORD is refused: production never runs on `admin123`.
    """
    if admin_count() > 0:
        return None
    username, password = settings.DEFAULT_ADMIN_USERNAME, settings.DEFAULT_ADMIN_PASSWORD
    weak = not password or is_known_default_password(password) or len(password) < 12
    if weak and not settings.DEBUG:
        raise WeakDefaultPassword(
            "No admin exists and DEFAULT_ADMIN_PASSWORD is missing or weak (use 12+ characters, not a known "
            "default). Set it, or create an admin with: .venv/bin/python manage.py createadmin USERNAME "
            "(in Docker: python manage.py createadmin USERNAME)"
        )
    try:
        admin = admin_create(username=username, password=password, check_password=False)
    except UsernameTaken:
        return None  # another worker created it first
    if weak:
        logger.warning(
            "!!! Created the default admin %r with a WEAK password. This is accepted only because DEBUG is on. "
            "Change it with POST /admin/change-credentials or `manage.py changeadminpassword`. !!!",
            username,
        )
    else:
        logger.info("created the default admin %r", username)
    return admin


def admins_with_known_default_password() -> list[str]:
    """The usernames whose password is a well-known default. Records from before `known_default` was kept are
    checked with bcrypt once, and remembered."""
    found = []
    for admin in admin_list():
        if admin.known_default is None:
            known = any(password_matches(candidate, admin.password_hash) for candidate in SHIPPED_DEFAULT_PASSWORDS)
            admin.known_default = "1" if known else "0"
            redis_client().hset(_admin_key(admin.id), "known_default", admin.known_default)
        if admin.known_default == "1":
            found.append(admin.username)
    return found


def admin_startup_check() -> AdminUser | None:
    """What runs before the server serves: creates the default admin when none exists, and with DEBUG off refuses
    (WeakDefaultPassword) to run while an admin's password is a well-known default, unless
    ALLOW_KNOWN_ADMIN_PASSWORDS is set. Returns the admin it created, if any."""
    created = admin_ensure_default()
    if settings.DEBUG or settings.ALLOW_KNOWN_ADMIN_PASSWORDS:
        return created
    weak = admins_with_known_default_password()
    if weak:
        names = ", ".join(repr(name) for name in weak)
        raise WeakDefaultPassword(
            f"Admin(s) {names} still have a well-known default password (such as admin123), and DEBUG is off. "
            "Change it with: .venv/bin/python manage.py changeadminpassword USERNAME (in Docker: python manage.py "
            "changeadminpassword USERNAME), or set ALLOW_KNOWN_ADMIN_PASSWORDS=true to start anyway."
        )
    return created


def token_refresh(*, refresh_token: str) -> tuple[str, int]:
    """A new access token for the live login behind `refresh_token`, and its lifetime in seconds."""
    return tokens_refresh(refresh_token)


def admin_logout(*, admin_id: str, login_session_id: str | None, refresh_token: str | None = None) -> None:
    """Ends the login behind `refresh_token` (which must be `admin_id`'s), when given, then the login the
    request was made with; an API key or a browser session has none."""
    if refresh_token is not None:
        tokens_revoke_refresh(admin_id=admin_id, raw_refresh=refresh_token)
    if login_session_id:
        login_sessions.login_session_revoke(admin_id=admin_id, sid=login_session_id)


def login_session_revoke(*, admin_id: str, session_id: str) -> None:
    if not login_sessions.login_session_revoke(admin_id=admin_id, sid=session_id):
        raise LoginSessionNotFound("No such login session.")


def admin_tokens_revoke(*, admin_id: str, with_api_keys: bool = False) -> tuple[int, int]:
    """Revokes every token and browser session of `admin_id`, and its API keys too when asked; returns how many
    logins, and how many keys, were live."""
    logins = login_sessions.login_session_revoke_all(admin_id)
    return logins, (api_keys.api_key_revoke_all(admin_id) if with_api_keys else 0)


def api_key_create(*, admin_id: str, name: str = "", budget: Budget | None = None) -> tuple[ApiKey, str]:
    """A new key of `admin_id` (with its token budget, if given), with the raw key, which is never available
    again."""
    key, raw = api_keys.api_key_create(admin_id=admin_id, name=name)
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


def api_key_revoke(*, key_id: str, admin_id: str | None = None) -> None:
    """Revokes the key `key_id`; with `admin_id`, only if it is that admin's."""
    if not api_keys.api_key_revoke(key_id=key_id, admin_id=admin_id):
        raise ApiKeyNotFound("No such API key.")
