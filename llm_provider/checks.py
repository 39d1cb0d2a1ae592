"""System checks of the upstream's settings, run at start-up and by `manage.py check`."""

from django.core.checks import CheckMessage, Error, register

from llm_provider.pricing import PriceTableError, price_table


@register("configuration")
def model_prices_are_readable(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    try:
        price_table()
    except PriceTableError as exc:
        return [Error(f"MODEL_PRICES_FILE: {exc}", id="llm_provider.E001")]
    return []
