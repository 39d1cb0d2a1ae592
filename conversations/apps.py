from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"

    def ready(self) -> None:
        from conversations import checks  # noqa: F401 - registers the system checks
        from conversations.history import history_store
        from core.metrics import gauge_at_scrape

        gauge_at_scrape(
            "chatbot_sessions_stored", "Live chat sessions of every admin.", lambda: history_store().count()
        )
