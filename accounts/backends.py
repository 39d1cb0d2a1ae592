from __future__ import annotations

from django.contrib.auth.backends import BaseBackend
from django.http import HttpRequest

from accounts.admins import admin_get
from accounts.audit import audit_login, audit_login_throttled
from accounts.models import AdminUser
from accounts.services import admin_authenticate
from accounts.startup import default_admin_restore
from accounts.throttling import LoginThrottled, login_attempt_start, login_attempt_succeeded
from core.http import client_ip


class RedisAdminBackend(BaseBackend):
    """Checks an admin's username and password against Redis, for the login endpoint and the browser login.

    Throttled attempts raise LoginThrottled (429) before bcrypt runs."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: object
    ) -> AdminUser | None:
        if username is None or password is None:
            return None
        ip = client_ip(request) if request is not None else "local"
        try:
            failures = login_attempt_start(username=username, ip=ip)
        except LoginThrottled as throttled:
            audit_login_throttled(request, username=username, attempts=throttled.attempts)
            raise
        admin = admin_authenticate(username=username, password=password)
        if admin is None and default_admin_restore(username=username):
            admin = admin_authenticate(username=username, password=password)
        if admin is not None:
            login_attempt_succeeded(username=username, ip=ip)
        audit_login(request, username=username, admin_id=admin.id if admin else None, failures=failures)
        return admin

    def get_user(self, user_id: str) -> AdminUser | None:
        return admin_get(str(user_id))
