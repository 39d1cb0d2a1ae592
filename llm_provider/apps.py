from django.apps import AppConfig


class LlmProviderConfig(AppConfig):
    name = "llm_provider"
    verbose_name = "LLM provider"

    def ready(self) -> None:
        from llm_provider import checks  # noqa: F401 - registers the system checks
