from django.core.management.base import BaseCommand, CommandError

from conversations.legacy_keys import upgrade_redis_keys
from core.startup import redis_unreachable_message


class Command(BaseCommand):
    help = (
        "Rename the Redis keys of a version before the Redis Cluster hash tags (admins, logins, API keys, usage, "
        "conversations) on a single Redis; done once, and by the server at start."
    )

    def handle(self, *args: object, **options: object) -> None:
        problem = redis_unreachable_message()
        if problem:
            raise CommandError(problem)
        moved = upgrade_redis_keys()
        if moved is None:
            if int(str(options.get("verbosity", 1))) > 0:
                self.stdout.write("The Redis keys have their current names.")
        else:
            self.stdout.write(f"Renamed {moved} Redis keys to their current names.")
