from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.audit import audit_record
from accounts.exceptions import ApiKeyNotFound
from accounts.management.commands._key_rules import RULE_OPTIONS, add_rule_arguments, rules_from_options, rules_summary
from accounts.services import api_key_of, api_key_rules_set


class Command(BaseCommand):
    help = "Change an API key's rules (listapikeys shows the ids); the options not given stay as they are."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key_id")
        add_rule_arguments(parser)

    def handle(self, *args: object, key_id: str, **options: str | None) -> None:
        try:
            key = api_key_of(key_id=key_id)
            key = api_key_rules_set(key_id=key_id, admin_id=None, rules=rules_from_options(options, key.rules))
        except ApiKeyNotFound as exc:
            raise CommandError(exc.detail) from None
        # The rules changed, named as the API's PATCH names them (as its audit entry does), never their values.
        given = sorted(field for option, field in RULE_OPTIONS.items() if options.get(option) is not None)
        audit_record("api_key.changed", target=key.id, subject=key.admin_id, detail=",".join(given))
        self.stdout.write(f"API key {key.id}: {rules_summary(key.rules)}.")
