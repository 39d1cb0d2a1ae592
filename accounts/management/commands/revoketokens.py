from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.admins import admin_list
from accounts.audit import audit_record
from accounts.management.commands._common import find_admin
from accounts.services import admin_tokens_revoke


class Command(BaseCommand):
    help = (
        "Revoke every token and browser session of one admin (USERNAME) or of all admins (--all), and with "
        "--api-keys their API keys too."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?")
        parser.add_argument("--all", action="store_true", help="Revoke the tokens of every admin.")
        parser.add_argument("--api-keys", action="store_true", help="Also revoke the admins' API keys.")

    def handle(self, *args: object, username: str | None, all: bool, api_keys: bool, **options: object) -> None:
        if bool(username) == all:
            raise CommandError("Give either a USERNAME or --all.")
        admins = admin_list() if all else [find_admin(username or "")]
        counts = [admin_tokens_revoke(admin_id=admin.id, with_api_keys=api_keys) for admin in admins]
        for admin in admins:
            audit_record("logins.revoked", target=admin.username, subject=admin.id, detail="api_keys" * api_keys)
        message = f"Revoked {sum(logins for logins, _ in counts)} login(s)"
        if api_keys:
            message += f" and {sum(keys for _, keys in counts)} API key(s)"
        self.stdout.write(self.style.SUCCESS(f"{message} of {len(admins)} admin(s)."))
