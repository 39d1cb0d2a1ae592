from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.audit import audit_record
from accounts.management.commands._common import find_admin
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for an admin and print it (it is shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the key is for (up to 100 characters).")

    def handle(self, *args: object, username: str, name: str, **options: object) -> None:
        if len(name) > 100:
            raise CommandError("--name must be at most 100 characters.")
        admin = find_admin(username)
        key, raw = api_key_create(admin_id=admin.id, name=name)
        audit_record("api_key.created", target=key.id, subject=admin.id)
        self.stderr.write(f"Created API key {key.id} for {username!r}. Store it now; it is not shown again:")
        self.stdout.write(raw)
