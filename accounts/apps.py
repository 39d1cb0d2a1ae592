from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Admin accounts"

    def ready(self) -> None:
        from accounts import schema, signals  # noqa: F401 - the OpenAPI auth extensions, the login metrics
        from accounts.budget_alerts import delivery_on_requests

        delivery_on_requests()
