from django.core.management.base import BaseCommand

from accounts.admins import admin_list
from accounts.selectors import login_session_count
from core.startup import redis_in_use


class Command(BaseCommand):
    help = "List admin accounts."

    def handle(self, *args: object, **options: object) -> None:
        admins = admin_list()
        self.stderr.write(f"Admins in the {redis_in_use()}:")
        if not admins:
            self.stdout.write("No admins.")
            return
        self.stdout.write(f"{'USERNAME':<24} {'ID':<18} {'CREATED':<27} {'LOGINS':>6}")
        for admin in admins:
            logins = login_session_count(admin_id=admin.id)
            self.stdout.write(f"{admin.username:<24} {admin.id:<18} {admin.created_at:<27} {logins:>6}")
