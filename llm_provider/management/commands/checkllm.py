from django.core.management.base import BaseCommand

from llm_provider.services import llm_startup_check


class Command(BaseCommand):
    help = "Warn when GROQ_API_KEY is not set, so that chats would answer 503 (what the server does at start)."

    def handle(self, *args: object, **options: object) -> None:
        llm_startup_check()
