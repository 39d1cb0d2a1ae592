import os

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register


@register()
def locmem_history_needs_one_worker(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    workers = os.environ.get("WEB_CONCURRENCY", "1")
    if settings.HISTORY_BACKEND == "locmem" and workers.isdigit() and int(workers) > 1:
        return [
            Warning(
                f"HISTORY_BACKEND=locmem keeps history inside each process, but WEB_CONCURRENCY={workers}: "
                "each worker would see a different part of every conversation.",
                hint="Set HISTORY_BACKEND=redis, or WEB_CONCURRENCY=1.",
                id="conversations.W001",
            )
        ]
    return []
