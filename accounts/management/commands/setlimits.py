from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.audit import audit_record
from accounts.key_rules import MAX_PER_MINUTE, AdminLimits, admin_limits_set
from accounts.management.commands._common import find_admin

DEFAULT = "default"


def _per_minute(name: str, value: str) -> int | None:
    if value == DEFAULT:
        return None
    if not value.isdigit() or not 0 <= int(value) <= MAX_PER_MINUTE:
        raise CommandError(f"--{name} must be a whole number from 0 (no limit) to {MAX_PER_MINUTE}, or '{DEFAULT}'.")
    return int(value)


class Command(BaseCommand):
    help = (
        "Set an admin's own requests and tokens per minute (its API keys' requests count too). Without them an "
        "admin has CHAT_REQUESTS_PER_MINUTE and no tokens-per-minute limit."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--rpm", help=f"Requests per minute (0: no limit; '{DEFAULT}': CHAT_REQUESTS_PER_MINUTE).")
        parser.add_argument("--tpm", help=f"Tokens per minute (0 or '{DEFAULT}': no limit).")

    def handle(self, *args: object, username: str, rpm: str | None, tpm: str | None, **options: object) -> None:
        if rpm is None and tpm is None:
            raise CommandError("Give --rpm N, --tpm N or both.")
        admin = find_admin(username)
        current = admin.limits
        tokens = current.tokens_per_minute if tpm is None else _per_minute("tpm", tpm)
        limits = AdminLimits(
            requests_per_minute=current.requests_per_minute if rpm is None else _per_minute("rpm", rpm),
            tokens_per_minute=tokens or None,
        )
        admin_limits_set(admin.id, limits)
        audit_record(
            "limits.set",
            target=admin.id,
            subject=admin.id,
            detail=f"rpm={'default' if limits.requests_per_minute is None else limits.requests_per_minute},"
            f"tpm={limits.tokens_per_minute or 0}",
        )
        requests = (
            settings.CHAT_REQUESTS_PER_MINUTE if limits.requests_per_minute is None else limits.requests_per_minute
        )
        self.stdout.write(
            f"Limits of admin {username!r}: {requests or 'no limit of'} requests and "
            f"{limits.tokens_per_minute or 'no limit of'} tokens per minute."
        )
