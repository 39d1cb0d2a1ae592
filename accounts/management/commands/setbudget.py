from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.audit import audit_record
from accounts.budgets import PERIODS, Budget, BudgetOwner, NoSuchOwner, budget_set, budget_status
from accounts.management.commands._common import find_admin


class Command(BaseCommand):
    help = (
        "Set an admin's or an API key's token budget per UTC day or month, or remove it with --clear. "
        "An admin's budget counts its keys' requests too."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?", help="The admin (or give --key).")
        parser.add_argument("--key", metavar="KEY_ID", help="An API key's id (listapikeys shows them).")
        parser.add_argument("--tokens", type=int, help="Tokens per period (at least 1).")
        parser.add_argument("--period", choices=PERIODS, default="day")
        parser.add_argument("--clear", action="store_true", help="Remove the budget.")

    def handle(
        self,
        *args: object,
        username: str | None,
        key: str | None,
        tokens: int | None,
        period: str,
        clear: bool,
        **options: object,
    ) -> None:
        if (username is None) == (key is None):
            raise CommandError("Give a USERNAME or --key KEY_ID.")
        if clear == (tokens is not None):
            raise CommandError("Give --tokens N (with --period day|month), or --clear.")
        if tokens is not None and tokens < 1:
            raise CommandError("--tokens must be at least 1.")
        owner = BudgetOwner("key", key) if key else BudgetOwner("admin", find_admin(username or "").id)
        budget = None if clear else Budget(tokens or 0, "month" if period == "month" else "day")
        try:
            budget_set(owner, budget)
        except NoSuchOwner as exc:
            raise CommandError(exc.detail) from None
        audit_record(
            "budget.set",
            target=owner.id,
            subject=owner.id if owner.kind == "admin" else owner.admin_id,
            detail="clear" if clear else f"{tokens}/{period}",
        )
        who = f"API key {key}" if key else f"admin {username!r}"
        status = budget_status(owner)
        if status is None:
            self.stdout.write(f"Removed the token budget of {who}.")
        else:
            self.stdout.write(
                f"Token budget of {who}: {status['tokens']} per {status['period']}, {status['used']} used, "
                f"resets at {status['resets_at']}."
            )
