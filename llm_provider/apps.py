from django.apps import AppConfig


class LlmProviderConfig(AppConfig):
    name = "llm_provider"
    verbose_name = "LLM provider"
