from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.audit import audit_record
from accounts.exceptions import ApiKeyNotFound
from accounts.services import api_key_revoke


class Command(BaseCommand):
    help = "Revoke an API key by its id (see listapikeys)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key_id")

    def handle(self, *args: object, key_id: str, **options: object) -> None:
        try:
            api_key_revoke(key_id=key_id)
        except ApiKeyNotFound:
            raise CommandError(f"No API key with id {key_id!r}.") from None
        audit_record("api_key.revoked", target=key_id)
        self.stdout.write(self.style.SUCCESS(f"Revoked API key {key_id}."))
