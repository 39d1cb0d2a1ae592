from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"

    def ready(self) -> None:
        from conversations import checks  # noqa: F401 - registers the system checks
        from conversations.selectors import sessions_stored_count
        from core.metrics import gauge_at_scrape

        gauge_at_scrape("chatbot_sessions_stored", "Live chat sessions of every admin.", sessions_stored_count)
