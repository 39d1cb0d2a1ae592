from django.core.management.base import BaseCommand, CommandParser

from accounts.audit import audit_record
from accounts.management.commands._common import add_password_arguments, find_admin, read_password
from accounts.services import admin_update_credentials


class Command(BaseCommand):
    help = "Set an admin's password. Revokes every token and browser session of that admin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        add_password_arguments(parser)

    def handle(self, *args: object, username: str, password: str | None, stdin: bool, **options: object) -> None:
        admin = find_admin(username)
        admin_update_credentials(admin=admin, new_password=read_password(password, from_stdin=stdin))
        audit_record("credentials.changed", target=username, subject=admin.id, detail="new_password")
        self.stdout.write(self.style.SUCCESS(f"Changed the password of {username!r}; its tokens were revoked."))
