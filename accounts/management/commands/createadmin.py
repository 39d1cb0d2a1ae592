from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.audit import audit_record
from accounts.management.commands._common import add_password_arguments, read_password
from accounts.services import admin_create
from core.exceptions import ServiceError


class Command(BaseCommand):
    help = "Create an admin account in Redis."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        add_password_arguments(parser)

    def handle(self, *args: object, username: str, password: str | None, stdin: bool, **options: object) -> None:
        try:
            admin = admin_create(username=username, password=read_password(password, from_stdin=stdin))
        except ServiceError as exc:
            raise CommandError(exc.detail) from None
        audit_record("admin.created", target=admin.username, subject=admin.id)
        self.stdout.write(self.style.SUCCESS(f"Created admin {admin.username!r} (id {admin.id})."))
