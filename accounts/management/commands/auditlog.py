import json
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.audit import ACTIONS, audit_entries, audit_entry_dict


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"Not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        raise CommandError(f"Give the time zone (Z or +00:00) in {text!r}.")
    return moment


class Command(BaseCommand):
    help = (
        "Print the audit log, every admin's entries and the failed logins, oldest first, as JSON lines "
        "(one object per entry, the fields GET /admin/audit answers)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="since", type=_moment, help="Entries at or after this time (ISO 8601).")
        parser.add_argument("--to", dest="until", type=_moment, help="Entries at or before this time (ISO 8601).")
        parser.add_argument("--action", choices=ACTIONS, help="Only entries of this action.")

    def handle(
        self, *args: object, since: datetime | None, until: datetime | None, action: str | None, **options: object
    ) -> None:
        for entry in audit_entries(since=since, until=until, action=action, newest_first=False):
            self.stdout.write(json.dumps(audit_entry_dict(entry), ensure_ascii=False))
