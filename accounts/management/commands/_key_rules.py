"""The options of an API key's rules, shared by createapikey and updateapikey."""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import CommandError, CommandParser

from accounts.key_rules import MAX_PER_MINUTE, KeyRules, model_problem

NONE = "none"
# Each option as handle() gets it, and the field of the API (PATCH /admin/api-keys/{id}) that sets the same rule.
RULE_OPTIONS = {
    "models": "models",
    "rpm": "requests_per_minute",
    "tpm": "tokens_per_minute",
    "expires_at": "expires_at",
}


def add_rule_arguments(parser: CommandParser) -> None:
    parser.add_argument("--models", help=f"Comma-separated models the key may use ('{NONE}': any).")
    parser.add_argument("--rpm", help=f"Requests per minute ('{NONE}': no limit).")
    parser.add_argument("--tpm", help=f"Tokens per minute ('{NONE}': no limit).")
    parser.add_argument("--expires-at", help=f"When the key stops working, ISO 8601 with a zone ('{NONE}': never).")


def _per_minute(name: str, value: str) -> int | None:
    if value == NONE:
        return None
    if not value.isdigit() or not 1 <= int(value) <= MAX_PER_MINUTE:
        raise CommandError(f"--{name} must be a whole number from 1 to {MAX_PER_MINUTE}, or '{NONE}'.")
    return int(value)


def rules_from_options(options: dict[str, str | None], current: KeyRules) -> KeyRules:
    """`current` with the rules the options give changed."""
    models, rpm, tpm, expires = (options.get(name) for name in RULE_OPTIONS)
    allowed = current.models
    if models is not None:
        allowed = () if models == NONE else tuple(dict.fromkeys(m.strip() for m in models.split(",") if m.strip()))
        for model in allowed:
            if problem := model_problem(model):
                raise CommandError(problem)
    expires_at = current.expires_at
    if expires is not None:
        try:
            expires_at = None if expires == NONE else datetime.fromisoformat(expires)
        except ValueError:
            raise CommandError("--expires-at must be an ISO 8601 time, e.g. 2027-01-01T00:00:00+00:00.") from None
        if expires_at is not None and expires_at.tzinfo is None:
            raise CommandError("--expires-at needs a time zone, e.g. 2027-01-01T00:00:00+00:00.")
    return KeyRules(
        models=allowed,
        requests_per_minute=current.requests_per_minute if rpm is None else _per_minute("rpm", rpm),
        tokens_per_minute=current.tokens_per_minute if tpm is None else _per_minute("tpm", tpm),
        expires_at=expires_at,
    )


def rules_summary(rules: KeyRules) -> str:
    return (
        f"models {', '.join(rules.models) or 'any'}; "
        f"{rules.requests_per_minute or 'no limit of'} requests and {rules.tokens_per_minute or 'no limit of'} "
        f"tokens per minute; expires {rules.expires_at.isoformat() if rules.expires_at else 'never'}"
    )
