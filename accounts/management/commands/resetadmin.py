import secrets

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from accounts.admins import admin_get_by_username
from accounts.audit import audit_record
from accounts.management.commands._common import PASSWORD_ENV, read_password
from accounts.services import admin_create, admin_update_credentials


class Command(BaseCommand):
    help = (
        "Regain access: set a new password for USERNAME (default DEFAULT_ADMIN_USERNAME), creating the admin "
        "if it does not exist. Its tokens are revoked; its conversations are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?")
        parser.add_argument("--password", help=f"The new password (else {PASSWORD_ENV}, else a prompt).")
        parser.add_argument("--generate", action="store_true", help="Generate a random password and print it.")

    def handle(self, *args: object, username: str | None, password: str | None, generate: bool, **o: object) -> None:
        username = username or settings.DEFAULT_ADMIN_USERNAME
        new_password = secrets.token_urlsafe(18) if generate else read_password(password)
        admin = admin_get_by_username(username)
        if admin is None:
            created = admin_create(username=username, password=new_password)
            audit_record("admin.created", target=username, subject=created.id)
            self.stdout.write(self.style.SUCCESS(f"Created admin {username!r}."))
        else:
            admin_update_credentials(admin=admin, new_password=new_password)
            audit_record("credentials.changed", target=username, subject=admin.id, detail="new_password")
            self.stdout.write(self.style.SUCCESS(f"Reset the password of {username!r}; its tokens were revoked."))
        if generate:
            self.stdout.write(f"New password (shown once): {new_password}")
