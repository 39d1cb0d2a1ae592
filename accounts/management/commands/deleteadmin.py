from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.admins import admin_count
from accounts.audit import audit_record
from accounts.management.commands._common import find_admin
from accounts.services import admin_delete


class Command(BaseCommand):
    help = "Delete an admin account and revoke its tokens."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--force", action="store_true", help="Allow deleting the last admin.")

    def handle(self, *args: object, username: str, force: bool, **options: object) -> None:
        admin = find_admin(username)
        if admin_count() == 1 and not force:
            raise CommandError(f"{username!r} is the last admin; deleting it locks everyone out. Use --force.")
        admin_delete(admin)
        audit_record("admin.deleted", target=username, subject=admin.id)
        self.stdout.write(self.style.SUCCESS(f"Deleted admin {username!r}."))
