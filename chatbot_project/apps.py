from django.apps import AppConfig


class ProjectConfig(AppConfig):
    name = "chatbot_project"
    verbose_name = "Configuration"

    def ready(self) -> None:
        from chatbot_project import checks  # noqa: F401 - registers the configuration's system checks
