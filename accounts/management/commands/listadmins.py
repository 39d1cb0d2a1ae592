from django.core.management.base import BaseCommand

from accounts.login_sessions import login_session_list
from accounts.services import admin_list


class Command(BaseCommand):
    help = "List admin accounts."

    def handle(self, *args: object, **options: object) -> None:
        admins = admin_list()
        if not admins:
            self.stdout.write("No admins.")
            return
        self.stdout.write(f"{'USERNAME':<24} {'ID':<18} {'CREATED':<27} {'LOGINS':>6}")
        for admin in admins:
            logins = len(login_session_list(admin.id))
            self.stdout.write(f"{admin.username:<24} {admin.id:<18} {admin.created_at:<27} {logins:>6}")
