from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.audit import audit_record
from accounts.budgets import MAX_BUDGET_TOKENS, PERIODS, Budget, BudgetOwner, NoSuchOwner, budget_set, budget_status
from accounts.management.commands._common import find_admin


class Command(BaseCommand):
    help = (
        "Set an admin's or an API key's budget in tokens and/or US dollars per UTC day or month, or remove it with "
        "--clear. "
        "An admin's budget counts its keys' requests too."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?", help="The admin (or give --key).")
        parser.add_argument("--key", metavar="KEY_ID", help="An API key's id (listapikeys shows them).")
        parser.add_argument("--tokens", type=int, help=f"Tokens per period (1 to {MAX_BUDGET_TOKENS:,}).")
        parser.add_argument("--usd", help="US dollars per period, such as 5.00 (at most six decimals).")
        parser.add_argument("--period", choices=PERIODS, default="day")
        parser.add_argument("--clear", action="store_true", help="Remove the budget.")

    def handle(
        self,
        *args: object,
        username: str | None,
        key: str | None,
        tokens: int | None,
        usd: str | None,
        period: str,
        clear: bool,
        **options: object,
    ) -> None:
        if (username is None) == (key is None):
            raise CommandError("Give a USERNAME or --key KEY_ID.")
        if clear == (tokens is not None or usd is not None):
            raise CommandError("Give --tokens N and/or --usd AMOUNT (with --period day|month), or --clear.")
        if tokens is not None and not 1 <= tokens <= MAX_BUDGET_TOKENS:
            raise CommandError(f"--tokens must be from 1 to {MAX_BUDGET_TOKENS:,}.")
        dollars = _dollars(usd) if usd is not None else None
        owner = BudgetOwner("key", key) if key else BudgetOwner("admin", find_admin(username or "").id)
        budget = None if clear else Budget(tokens, "month" if period == "month" else "day", dollars)
        try:
            budget_set(owner, budget)
        except NoSuchOwner as exc:
            raise CommandError(exc.detail) from None
        audit_record(
            "budget.set",
            target=owner.id,
            subject=owner.id if owner.kind == "admin" else owner.admin_id,
            detail="clear" if clear else _detail(tokens, dollars, period),
        )
        who = f"API key {key}" if key else f"admin {username!r}"
        status = budget_status(owner)
        if status is None:
            self.stdout.write(f"Removed the budget of {who}.")
        else:
            limits = [f"{status['tokens']} tokens"] if status["tokens"] is not None else []
            limits += [f"${status['usd']}"] if status["usd"] is not None else []
            spent = f"{status['used']} tokens" + (f", ${status['used_usd']}" if status["used_usd"] else "")
            self.stdout.write(
                f"Budget of {who}: {' and '.join(limits)} per {status['period']}, {spent} used, "
                f"resets at {status['resets_at']}."
            )


def _detail(tokens: int | None, dollars: Decimal | None, period: str) -> str:
    """As "500/day", "$5.00/month" or "500+$5.00/day"."""
    amounts = ([str(tokens)] if tokens is not None else []) + ([f"${dollars}"] if dollars is not None else [])
    return f"{'+'.join(amounts)}/{period}"


def _dollars(text: str) -> Decimal:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = Decimal(-1)
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.000001")) or amount >= 10**10:
        raise CommandError(
            f"--usd must be a dollar amount above 0 with at most six decimals, such as 5.00; got {text!r}."
        )
    return amount
