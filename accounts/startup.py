"""The default admin and the known-default-password rule: what runs before the server serves
(`manage.py ensureadmin`, which gunicorn.conf.py runs at start), and what a login as the default admin restores
after Redis lost every admin."""

from __future__ import annotations

import logging
from contextlib import suppress

from django.conf import settings

from accounts.admins import admin_count, admin_get_by_username, admin_known_default_set, admin_list
from accounts.audit import audit_record
from accounts.exceptions import UsernameTaken, WeakDefaultPassword
from accounts.models import AdminUser
from accounts.passwords import password_matches
from accounts.services import admin_create
from core.store_marker import store_began
from core.weak_secrets import is_known_default_password

logger = logging.getLogger(__name__)

# The defaults this service and its docs have shipped: what an admin from before `known_default` may still have.
SHIPPED_DEFAULT_PASSWORDS = ("admin123", "change-me-too-12-chars")


def default_admin_ensure() -> AdminUser | None:
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
    audit_record("admin.created", target=username, subject=admin.id, detail="default admin")
    if weak:
        logger.warning(
            "!!! Created the default admin %r with a WEAK password. This is accepted only because DEBUG is on. "
            "Change it with POST /admin/change-credentials or `manage.py changeadminpassword`. !!!",
            username,
        )
    else:
        logger.info("created the default admin %r", username)
    return admin


def default_admin_restore(*, username: str) -> bool:
    """After a failed login as DEFAULT_ADMIN_USERNAME: when Redis holds no admin at all (one without persistence
    restarted under the running service), creates the default admin again, as at start, and returns True: the
    login is worth checking again. A weak DEFAULT_ADMIN_PASSWORD with DEBUG off creates nothing."""
    if username != settings.DEFAULT_ADMIN_USERNAME or admin_get_by_username(username) is not None:
        return False
    with suppress(WeakDefaultPassword):
        default_admin_ensure()
    return admin_get_by_username(username) is not None  # made here, or by another worker meanwhile


def admins_with_known_default_password() -> list[str]:
    """The usernames whose password is a well-known default. Records from before `known_default` was kept are
    checked with bcrypt once, and remembered."""
    found = []
    for admin in admin_list():
        if admin.known_default is None:
            known = any(password_matches(candidate, admin.password_hash) for candidate in SHIPPED_DEFAULT_PASSWORDS)
            admin.known_default = "1" if known else "0"
            admin_known_default_set(admin_id=admin.id, known_default=admin.known_default)
        if admin.known_default == "1":
            found.append(admin.username)
    return found


def admin_startup_check() -> AdminUser | None:
    """What runs before the server serves: creates the default admin when none exists, and with DEBUG off refuses
    (WeakDefaultPassword) to run while an admin's password is a well-known default, unless
    ALLOW_KNOWN_ADMIN_PASSWORDS is set. Returns the admin it created, if any."""
    store_began(existing_data=admin_count() > 0)
    created = default_admin_ensure()
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
