from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.audit import audit_record
from accounts.key_rules import NO_RULES
from accounts.management.commands._common import find_admin
from accounts.management.commands._key_rules import add_rule_arguments, rules_from_options, rules_summary
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for an admin and print it (it is shown only this once), with its own rules if given."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the key is for (up to 100 characters).")
        add_rule_arguments(parser)

    def handle(self, *args: object, username: str, name: str, **options: str | None) -> None:
        if len(name) > 100:
            raise CommandError("--name must be at most 100 characters.")
        rules = rules_from_options(options, NO_RULES)
        admin = find_admin(username)
        key, raw = api_key_create(admin_id=admin.id, name=name, rules=rules)
        audit_record("api_key.created", target=key.id, subject=admin.id)
        self.stderr.write(
            f"Created API key {key.id} for {username!r} ({rules_summary(rules)}). Store it now; it is not shown again:"
        )
        self.stdout.write(raw)
