"""What one setting requires of another, as system checks (tag `configuration`). They run with `manage.py check`
and before every management command, in gunicorn's master before it serves (gunicorn.conf.py), and when wsgi.py or
asgi.py is loaded: a deploy that fails one never serves a request."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, register, run_checks
from django.core.exceptions import ImproperlyConfigured

from core.weak_secrets import is_known_default_password, is_weak_default_admin_password, secret_problem

TAG = "configuration"
_GENERATE_SECRET = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def _secret_key() -> str:
    try:
        return settings.SECRET_KEY
    except ImproperlyConfigured:  # Django refuses to read an empty one
        return ""


def _weak_secret(name: str, value: str, check_id: str) -> list[CheckMessage]:
    problem = secret_problem(value)
    if not problem:
        return []
    return [Error(f"{name} {problem}. Set it to a random string when DEBUG is off ({_GENERATE_SECRET})", id=check_id)]


@register(TAG)
def secrets_are_strong(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    """With DEBUG off, a secret from the docs or a weak one: anyone could forge tokens with it."""
    if settings.DEBUG:
        return []
    secret_key = _secret_key()
    found = _weak_secret("SECRET_KEY", secret_key, "chatbot_project.E001")
    if secret_key != settings.JWT_SIGNING_KEY:  # unset, it is SECRET_KEY, checked above
        found += _weak_secret("JWT_SIGNING_KEY", settings.JWT_SIGNING_KEY, "chatbot_project.E002")
    return found


@register(TAG)
def known_defaults_are_refused(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    """With DEBUG off, a password or token that anyone could read in the docs."""
    if settings.DEBUG:
        return []
    found = []
    if settings.DEFAULT_ADMIN_PASSWORD and is_weak_default_admin_password(settings.DEFAULT_ADMIN_PASSWORD):
        found.append(
            Error(
                "DEFAULT_ADMIN_PASSWORD is a known default or an example from the documentation; with DEBUG off set "
                "it to a password of your own (12+ characters)",
                id="chatbot_project.E003",
            )
        )
    if settings.METRICS_TOKEN and is_known_default_password(settings.METRICS_TOKEN):
        found.append(
            Error("METRICS_TOKEN is an example value; set it to a random string of your own", id="chatbot_project.E004")
        )
    return found


@register(TAG)
def redis_topology_is_one(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    """One Redis topology, with what it needs."""
    found = []
    if settings.REDIS_CLUSTER and settings.REDIS_SENTINELS:
        found.append(Error("Set REDIS_CLUSTER or REDIS_SENTINELS, not both", id="chatbot_project.E005"))
    database = urlsplit(settings.REDIS_URL).path
    if settings.REDIS_CLUSTER and (database.strip("/") or "0") != "0":
        found.append(
            Error(f"With REDIS_CLUSTER, REDIS_URL must use database 0, got {database!r}", id="chatbot_project.E006")
        )
    if settings.REDIS_SENTINELS and not settings.REDIS_SENTINEL_MASTER:
        found.append(
            Error(
                "REDIS_SENTINELS needs REDIS_SENTINEL_MASTER, the name the Sentinels monitor", id="chatbot_project.E007"
            )
        )
    return found


@register(TAG)
def budget_alerts_are_deliverable(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    """A webhook URL needs a secret to sign with, and thresholds that are percentages."""
    found = []
    url = settings.BUDGET_ALERT_WEBHOOK_URL
    if url and urlsplit(url).scheme not in ("http", "https"):
        found.append(Error(f"BUDGET_ALERT_WEBHOOK_URL must be an http(s) URL, got {url!r}", id="chatbot_project.E020"))
    if url and len(settings.BUDGET_ALERT_SECRET) < 16:
        found.append(
            Error(
                "BUDGET_ALERT_WEBHOOK_URL needs BUDGET_ALERT_SECRET (16+ characters) to sign the alerts with",
                id="chatbot_project.E021",
            )
        )
    if not all(value.isdigit() and 1 <= int(value) <= 100 for value in settings.BUDGET_ALERT_THRESHOLDS):
        found.append(
            Error(
                "BUDGET_ALERT_THRESHOLDS must be whole percentages from 1 to 100, separated by commas, got "
                f"{','.join(settings.BUDGET_ALERT_THRESHOLDS)!r}",
                id="chatbot_project.E022",
            )
        )
    return found


def configuration_errors_raise() -> None:
    """Raises ImproperlyConfigured naming every configuration check that fails, for a server that starts without
    `manage.py`."""
    errors = [message for message in run_checks(tags=[TAG]) if message.is_serious()]
    if errors:
        raise ImproperlyConfigured("; ".join(message.msg for message in errors))
