from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from accounts.admins import admin_list
from accounts.management.commands._common import find_admin
from accounts.selectors import api_key_list, api_key_with_budget


def _budget_columns(budget: dict[str, Any] | None) -> tuple[str, str]:
    """The key's budget (`100000/day`, `$5.000000/month`, `100000+$5.000000/day`) and what it used of it this
    period (`1234 $0.001234 (resets 2026-...)`), or `-`."""
    if budget is None:
        return "-", "-"
    limits = [str(budget["tokens"])] if budget["tokens"] is not None else []
    limits += [f"${budget['usd']}"] if budget["usd"] is not None else []
    spent = str(budget["used"]) + (f" ${budget['used_usd']}" if budget["used_usd"] is not None else "")
    return f"{'+'.join(limits)}/{budget['period']}", f"{spent} (resets {budget['resets_at']})"


class Command(BaseCommand):
    help = (
        "List the API keys of one admin (USERNAME) or of every admin: when each was last used, its token or dollar "
        "budget and what it used of it this period. Keys themselves are never shown."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?")

    def handle(self, *args: object, username: str | None, **options: object) -> None:
        keys = api_key_list(admin_id=find_admin(username).id if username else None)
        if not keys:
            self.stdout.write("No API keys.")
            return
        names = {admin.id: admin.username for admin in admin_list()}
        self.stdout.write(
            f"{'ID':<18} {'ADMIN':<20} {'PREFIX':<10} {'CREATED':<27} {'LAST USED':<27} {'BUDGET':<14} "
            f"{'USED THIS PERIOD':<44} NAME"
        )
        for key in keys:
            admin = names.get(key.admin_id, key.admin_id)
            last_used = key.last_used or "never"
            budget, used = _budget_columns(api_key_with_budget(key)["budget"] if key.has_budget else None)
            self.stdout.write(
                f"{key.id:<18} {admin:<20} {key.prefix:<10} {key.created_at:<27} {last_used:<27} {budget:<14} "
                f"{used:<44} {key.name}"
            )
