from __future__ import annotations

from django.contrib.auth.backends import BaseBackend
from django.http import HttpRequest

from accounts.models import AdminUser
from accounts.services import admin_authenticate, admin_get


class RedisAdminBackend(BaseBackend):
    """Checks an admin's username and password against Redis; used by the login endpoint and browser login."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: object
    ) -> AdminUser | None:
        if username is None or password is None:
            return None
        return admin_authenticate(username=username, password=password)

    def get_user(self, user_id: str) -> AdminUser | None:
        return admin_get(str(user_id))
