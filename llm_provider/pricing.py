"""What a model's tokens cost in US dollars: a price per million input and output tokens for each model, from the
file MODEL_PRICES_FILE names, or else the defaults below. A model without a price still counts its tokens; its cost
is unknown (None), and a dollar budget refuses it.

Costs are counted in whole micro-dollars (millionths of a dollar) with exact arithmetic (Decimal, or the same
figures scaled to integers), never floats: a price per million tokens times a token count is a count of
micro-dollars, rounded half up per call (or up, for a budget's worst case)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

from django.conf import settings

# Groq's prices in USD per million tokens (input, output), as groq.com/pricing listed them on 2025-08-20.
DEFAULT_PRICES_DATE = "2025-08-20"
DEFAULT_PRICES: dict[str, tuple[str, str]] = {
    "openai/gpt-oss-20b": ("0.10", "0.50"),
    "openai/gpt-oss-120b": ("0.15", "0.75"),
    "llama-3.1-8b-instant": ("0.05", "0.08"),
    "llama-3.3-70b-versatile": ("0.59", "0.79"),
}
MICROS_PER_USD = 1_000_000
MAX_PRICE = Decimal(1_000_000)  # USD per million tokens: far above any model's, and keeps costs in range


@dataclass(frozen=True)
class ModelPrice:
    input: Decimal  # USD per million input (prompt) tokens
    output: Decimal  # USD per million output (completion) tokens


class PriceTableError(ValueError):
    pass


def _price(value: object, where: str) -> Decimal:
    try:
        price = Decimal(str(value)) if isinstance(value, str | int) else None
    except InvalidOperation:
        price = None
    if price is None or not price.is_finite() or price < 0 or price > MAX_PRICE:
        raise PriceTableError(f'{where} must be a decimal string such as "0.59" from 0 to {MAX_PRICE}; got {value!r}')
    return price


def parse_price_table(raw: object) -> dict[str, ModelPrice]:
    """`{"<model>": {"input": "0.59", "output": "0.79"}, ...}` as ModelPrices (prices as strings or integers, never
    floats, which would round); raises PriceTableError saying what is wrong."""
    if not isinstance(raw, dict):
        raise PriceTableError("the price table must be a JSON object of model names")
    table = {}
    for model, entry in raw.items():
        if not isinstance(entry, dict) or set(entry) != {"input", "output"}:
            raise PriceTableError(f"the price of {model!r} must be an object with exactly `input` and `output`")
        table[model] = ModelPrice(_price(entry["input"], f"{model}.input"), _price(entry["output"], f"{model}.output"))
    return table


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, ModelPrice]:
    if not path:
        return {model: ModelPrice(Decimal(i), Decimal(o)) for model, (i, o) in DEFAULT_PRICES.items()}
    try:
        raw = json.loads(Path(path).read_text(), parse_float=lambda text: text)  # a float stays its digits
    except (OSError, ValueError) as exc:
        raise PriceTableError(f"cannot read MODEL_PRICES_FILE {path}: {exc}") from None
    return parse_price_table(raw)


def price_table() -> dict[str, ModelPrice]:
    return _load(settings.MODEL_PRICES_FILE)


def model_price(model: str) -> ModelPrice | None:
    return price_table().get(model)


def cost_micros(model: str, input_tokens: int, output_tokens: int) -> int | None:
    """A call's cost in micro-dollars (rounded half up), or None when the model has no price."""
    price = model_price(model)
    if price is None:
        return None
    exact = price.input * max(input_tokens, 0) + price.output * max(output_tokens, 0)
    return int(exact.to_integral_value(rounding=ROUND_HALF_UP))


def worst_cost_micros(models: list[str], input_tokens: int, output_tokens: int) -> int | None:
    """The most a call that may go to any of `models` can cost (rounded up), or None when one has no price."""
    scale, table = _scaled(settings.MODEL_PRICES_FILE)
    prices = [table.get(model) for model in models]
    if not prices or None in prices:
        return None
    exact = max(p[0] for p in prices if p) * input_tokens + max(p[1] for p in prices if p) * output_tokens
    return -(-exact // scale)  # rounded up


@lru_cache(maxsize=4)
def _scaled(path: str) -> tuple[int, dict[str, tuple[int, int]]]:
    """The price table in whole units of 1/`scale` micro-dollar per token, the same exact figures as integers: a
    budget reckons a chat's worst case with them, in integer arithmetic rather than Decimal's, on every chat."""
    table = _load(path)
    digits = max(
        (max(-price.as_tuple().exponent, 0) for p in table.values() for price in (p.input, p.output)), default=0
    )
    return 10**digits, {model: (_times(p.input, digits), _times(p.output, digits)) for model, p in table.items()}


def _times(price: Decimal, digits: int) -> int:
    """`price` times 10**`digits`, exactly (Decimal's own arithmetic would round past its precision)."""
    _, figures, exponent = price.as_tuple()
    return int("".join(map(str, figures))) * 10 ** (int(exponent) + digits)


def usd(micros: int | None) -> str | None:
    """Micro-dollars as a dollar string with six decimals ("0.001234"), or None for an unknown cost."""
    if micros is None:
        return None
    return str((Decimal(micros) / MICROS_PER_USD).quantize(Decimal("0.000001")))


def micros_of(amount: Decimal) -> int:
    """A dollar amount (at most six decimals) in micro-dollars."""
    return int((amount * MICROS_PER_USD).to_integral_value(rounding=ROUND_HALF_UP))
