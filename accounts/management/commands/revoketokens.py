from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.login_sessions import login_session_revoke_all
from accounts.management.commands._common import find_admin
from accounts.services import admin_list


class Command(BaseCommand):
    help = "Revoke every token and browser session of one admin (USERNAME) or of all admins (--all)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?")
        parser.add_argument("--all", action="store_true", help="Revoke the tokens of every admin.")

    def handle(self, *args: object, username: str | None, all: bool, **options: object) -> None:
        if bool(username) == all:
            raise CommandError("Give either a USERNAME or --all.")
        admins = admin_list() if all else [find_admin(username or "")]
        revoked = sum(login_session_revoke_all(admin.id) for admin in admins)
        self.stdout.write(self.style.SUCCESS(f"Revoked {revoked} login(s) of {len(admins)} admin(s)."))
