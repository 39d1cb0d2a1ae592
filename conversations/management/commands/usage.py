import csv
import json
from datetime import UTC, date, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.admins import admin_list
from accounts.management.commands._common import find_admin
from conversations.usage_history import GROUP_BY, usage_report_of

DIMENSIONS = ("admin", *GROUP_BY)
COUNTERS = ("requests", "input_tokens", "output_tokens", "total_tokens", "cost_usd")


class Command(BaseCommand):
    help = (
        "Usage per UTC day, admin, API key and model (requests, input and output tokens, cost in US dollars), as CSV "
        "or JSON. Days older than USAGE_RETENTION_DAYS are gone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from", dest="start", help="The first UTC day, YYYY-MM-DD (default: 29 days before --to)."
        )
        parser.add_argument("--to", dest="end", help="The last UTC day, included, YYYY-MM-DD (default: today).")
        parser.add_argument(
            "--group-by",
            default="admin,day",
            help=f"A comma-separated list of {', '.join(DIMENSIONS)} (default admin,day).",
        )
        parser.add_argument("--admin", metavar="USERNAME", help="Only this admin's usage.")
        parser.add_argument("--format", choices=("csv", "json"), default="csv")

    def handle(
        self,
        *args: object,
        start: str | None,
        end: str | None,
        group_by: str,
        admin: str | None,
        format: str,
        **options: object,
    ) -> None:
        last = _day(end, "--to") if end else datetime.now(UTC).date()
        first = _day(start, "--from") if start else last - timedelta(days=29)
        if first > last:
            raise CommandError("--from is after --to.")
        dimensions = [name.strip() for name in group_by.split(",") if name.strip()]
        if not dimensions or any(name not in DIMENSIONS for name in dimensions):
            raise CommandError(f"--group-by takes a comma-separated list of {', '.join(DIMENSIONS)}; got {group_by!r}.")
        admins = [find_admin(admin)] if admin else admin_list()
        report = usage_report_of([a.id for a in admins], first, last, dimensions)
        usernames = {a.id: a.username for a in admins}
        for row in report["rows"]:
            if "admin" in row:
                row["admin"] = usernames.get(row["admin"], row["admin"])
        if format == "json":
            self.stdout.write(json.dumps(report, indent=2))
            return
        writer = csv.writer(self.stdout, lineterminator="\n")
        writer.writerow([*report["group_by"], *COUNTERS])
        for row in report["rows"]:
            writer.writerow([*(row[name] or "" for name in report["group_by"]), *(row[name] for name in COUNTERS)])


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option} must be a day as YYYY-MM-DD; got {text!r}.") from None
