from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.api_keys import api_key_revoke_all
from accounts.login_sessions import login_session_revoke_all
from accounts.management.commands._common import find_admin
from accounts.services import admin_list


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
        revoked = sum(login_session_revoke_all(admin.id) for admin in admins)
        message = f"Revoked {revoked} login(s)"
        if api_keys:
            message += f" and {sum(api_key_revoke_all(admin.id) for admin in admins)} API key(s)"
        self.stdout.write(self.style.SUCCESS(f"{message} of {len(admins)} admin(s)."))
