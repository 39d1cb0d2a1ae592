"""The admin user. Admins are stored in Redis, never in a database: this model only gives Django's auth
machinery (sessions for the browsable API, `get_user_model()`) the shape it expects."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils.crypto import salted_hmac

from accounts.key_rules import NO_LIMITS, AdminLimits


class AdminUser(models.Model):
    id = models.CharField(primary_key=True, max_length=32)
    username = models.CharField(max_length=150, unique=True)

    USERNAME_FIELD = "username"
    REQUIRED_FIELDS: list[str] = []
    EMAIL_FIELD = "username"

    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False
    is_authenticated = True

    # Filled in from Redis; not database fields.
    password_hash: str = ""
    created_at: str = ""
    last_updated: str = ""
    auth_epoch: str = "0"
    known_default: str | None = None  # "1" or "0"; None on a record written without the flag
    # Whether a token budget applies (accounts.budgets): read with the admin or its login, so that an admin
    # without one costs its chats no Redis round trip for it.
    has_budget: bool = False
    # Its own requests and tokens per minute (accounts.key_rules), read with the admin or its login likewise.
    limits: AdminLimits = NO_LIMITS
    # The API key (accounts.api_keys.ApiKey) a request came with, whose rules it is under; None for a token.
    api_key: Any = None
    # Once a chat of the request was let through: where it stands against its own per-minute limits
    # (conversations.turns.RateLimits), for its answer's x-ratelimit-* headers.
    rate_limits: Any = None

    class Meta:
        managed = False

    def __str__(self) -> str:
        return self.username

    def get_username(self) -> str:
        return self.username

    def get_session_auth_hash(self) -> str:
        """Browser sessions end when the password changes or the admin's tokens are revoked."""
        return salted_hmac(
            "accounts.AdminUser.session", f"{self.password_hash}:{self.auth_epoch}", algorithm="sha256"
        ).hexdigest()

    def get_session_auth_fallback_hash(self):
        return iter(())
