"""The rules an API key carries of its own, and an admin's own rate limits.

A key may be held to some models (`models`), to requests and tokens per minute (`requests_per_minute`,
`tokens_per_minute`) and to a time after which it no longer works (`expires_at`). They are kept as fields of the
key's record (`P:apikey:<sha256>`), which authenticating the key reads anyway, so a key's rules cost a chat no
round trip to find. An admin's own limits (`manage.py setlimits`) are fields of the admin's record and of its live
logins (as a budget's flag is, accounts.budgets), read with them; without them an admin has CHAT_REQUESTS_PER_MINUTE
and no tokens-per-minute limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from django.conf import settings

from accounts.login_sessions import admin_flag_set
from core.exceptions import NotFound, ServiceError

if TYPE_CHECKING:
    from accounts.models import AdminUser

# The most a per-minute limit may be: far above any real use, and an exact integer in Lua's doubles.
MAX_PER_MINUTE = 10**12
MODELS_SEPARATOR = ","


class ModelNotAllowed(ServiceError):
    status_code = 403
    code = "model_not_allowed"
    param = "model"


@dataclass(frozen=True)
class KeyRules:
    """A key's rules; None (an empty tuple for `models`) is no rule."""

    models: tuple[str, ...] = ()
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    expires_at: datetime | None = None


NO_RULES = KeyRules()
# The fields of a key's record that hold its rules.
RULE_FIELDS = ("models", "rpm", "tpm", "expires_at")


def rules_of_record(record: dict[str, str]) -> KeyRules:
    get = record.get
    return _parsed_rules(get("models", ""), get("rpm", ""), get("tpm", ""), get("expires_at", ""))


@lru_cache(maxsize=1024)
def _parsed_rules(models: str, rpm: str, tpm: str, expires: str) -> KeyRules:
    """Rules as the record's fields spell them, parsed once per process for all the requests of a key (they are
    immutable, so they can be shared)."""
    return KeyRules(
        models=tuple(m for m in models.split(MODELS_SEPARATOR) if m),
        requests_per_minute=int(rpm) if rpm else None,
        tokens_per_minute=int(tpm) if tpm else None,
        expires_at=datetime.fromisoformat(expires) if expires else None,
    )


def rules_record_fields(rules: KeyRules) -> dict[str, str]:
    """The record's rule fields; "" removes one."""
    return {
        "models": MODELS_SEPARATOR.join(rules.models),
        "rpm": "" if rules.requests_per_minute is None else str(rules.requests_per_minute),
        "tpm": "" if rules.tokens_per_minute is None else str(rules.tokens_per_minute),
        "expires_at": "" if rules.expires_at is None else rules.expires_at.astimezone(UTC).isoformat(),
    }


def model_problem(model: str) -> str | None:
    if model not in settings.CHAT_ALLOWED_MODELS:
        return f"'{model}' is not one of CHAT_ALLOWED_MODELS ({', '.join(settings.CHAT_ALLOWED_MODELS)})."
    return None


def rules_expired(rules: KeyRules, now: datetime | None = None) -> bool:
    return rules.expires_at is not None and rules.expires_at <= (now or datetime.now(UTC))


@dataclass(frozen=True)
class AdminLimits:
    """An admin's own limits; None: CHAT_REQUESTS_PER_MINUTE, and no tokens-per-minute limit."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


NO_LIMITS = AdminLimits()


def admin_limits_of_record(record: dict[str, str]) -> AdminLimits:
    return AdminLimits(
        requests_per_minute=int(record["rpm"]) if record.get("rpm") else None,
        tokens_per_minute=int(record["tpm"]) if record.get("tpm") else None,
    )


class NoSuchAdmin(NotFound):
    pass


def admin_limits_set(admin_id: str, limits: AdminLimits) -> None:
    """Sets the admin's own limits (a None one goes back to its default) on its record and its live logins."""
    for field, value in (("rpm", limits.requests_per_minute), ("tpm", limits.tokens_per_minute)):
        if not admin_flag_set(admin_id, field, "" if value is None else str(value)):
            raise NoSuchAdmin("No such admin.")


def admin_requests_per_minute(admin: AdminUser) -> int:
    """The admin's requests per minute: its own limit, else CHAT_REQUESTS_PER_MINUTE (0: none)."""
    own = admin.limits.requests_per_minute
    return settings.CHAT_REQUESTS_PER_MINUTE if own is None else own


def model_check(model: str, allowed: tuple[str, ...]) -> None:
    if allowed and model not in allowed:
        raise ModelNotAllowed(f"This API key may not use the model '{model}'; it may use: {', '.join(allowed)}.")


def caller_models(admin: AdminUser) -> tuple[str, ...]:
    """The models a request may use: its API key's, or () for any of CHAT_ALLOWED_MODELS."""
    return admin.api_key.rules.models if admin.api_key is not None else ()
