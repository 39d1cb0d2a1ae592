import logging

from django.core.management.base import BaseCommand, CommandError

from accounts.exceptions import WeakDefaultPassword
from accounts.startup import admin_startup_check
from core.startup import debug_mode_warning, redis_unreachable_message


class Command(BaseCommand):
    help = (
        "Check Redis, create the default admin when none exists, and with DEBUG off refuse admins whose password "
        "is a known default (what the server does at start); warn when DEBUG is on."
    )

    def handle(self, *args: object, **options: object) -> None:
        problem = redis_unreachable_message()
        if problem:
            raise CommandError(problem)
        try:
            admin = admin_startup_check()
        except WeakDefaultPassword as exc:
            raise CommandError(exc.detail) from None
        debug_warning = debug_mode_warning()
        if debug_warning:
            logging.getLogger("core.startup").warning(debug_warning)
        self.stdout.write(f"Created the default admin {admin.username!r}." if admin else "Admins exist already.")
