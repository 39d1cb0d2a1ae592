"""Each private name of a library that core/shortcuts.py relies on, held: these fail when DRF or SimpleJWT renames
it or changes what it holds."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.exceptions import ValidationError
from rest_framework.serializers import BaseSerializer
from rest_framework_simplejwt.tokens import AccessToken

from conversations.openai.serializers import ChatCompletionRequestSerializer
from conversations.serializers import ChatRequestSerializer
from core.shortcuts import TOKEN_ATTRIBUTES, VALIDATION_STATE, access_token_from_claims, lent_serializer

# What a serializer keeps across validations on purpose: its fields and validators, made once.
KEPT = {"fields", "_validators"}
REQUESTS = [
    (ChatRequestSerializer, {"message": "hello", "temperature": 0.5}, {"message": 5}),
    (
        ChatCompletionRequestSerializer,
        {"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "hello"}]},
        {"messages": 3},
    ),
]


def validated(serializer: BaseSerializer) -> BaseSerializer:
    serializer.is_valid()
    _ = serializer.errors
    if not serializer.errors:
        _ = serializer.validated_data, serializer.data
    return serializer


@pytest.mark.parametrize(("serializer_class", "good", "bad"), REQUESTS)
def test_drf_keeps_what_a_validation_leaves_in_the_names_reused_clears(
    serializer_class: type[BaseSerializer], good: dict[str, Any], bad: dict[str, Any]
) -> None:
    fresh = set(vars(serializer_class(data=good)))

    left_by_good = set(vars(validated(serializer_class(data=good)))) - fresh - KEPT
    left_by_bad = set(vars(validated(serializer_class(data=bad)))) - fresh - KEPT

    assert left_by_good == set(VALIDATION_STATE)
    assert left_by_bad <= set(VALIDATION_STATE) and "_errors" in left_by_bad


@pytest.mark.parametrize(("serializer_class", "good", "bad"), REQUESTS)
def test_a_lent_serializer_answers_as_a_new_one(
    serializer_class: type[BaseSerializer], good: dict[str, Any], bad: dict[str, Any]
) -> None:
    with lent_serializer(serializer_class, good) as first:
        validated(first)
    with lent_serializer(serializer_class, bad) as refused:
        errors = validated(refused).errors
    with lent_serializer(serializer_class, good) as again:
        validated(again)

    assert first is refused is again
    assert errors == validated(serializer_class(data=bad)).errors
    assert again.validated_data == validated(serializer_class(data=good)).validated_data
    assert not again.errors


@pytest.mark.parametrize(("serializer_class", "good", "bad"), REQUESTS)
def test_a_serializer_is_lent_to_one_block_at_a_time_and_not_given_back_from_a_failed_one(
    serializer_class: type[BaseSerializer], good: dict[str, Any], bad: dict[str, Any]
) -> None:
    # A validation that waits lets another request (greenlet) validate meanwhile: it must get one of its own.
    with lent_serializer(serializer_class, good) as waiting, lent_serializer(serializer_class, bad) as meanwhile:
        assert waiting is not meanwhile
        assert validated(meanwhile).errors == validated(serializer_class(data=bad)).errors
        assert validated(waiting).validated_data == validated(serializer_class(data=good)).validated_data
    with pytest.raises(ValidationError), lent_serializer(serializer_class, {}) as failed:
        failed.is_valid(raise_exception=True)  # the exception's errors refer to it
    with lent_serializer(serializer_class, good) as after:
        assert after is not failed


def test_simplejwt_sets_on_an_access_token_only_what_the_shortcut_sets(alice_tokens: dict[str, str]) -> None:
    raw = alice_tokens["access_token"].encode()
    decoded = AccessToken(raw)  # type: ignore[arg-type]

    made = access_token_from_claims(raw, decoded.payload)

    assert set(vars(made)) == set(TOKEN_ATTRIBUTES) <= set(vars(decoded))
    # Anything else the constructor leaves has a default on the class (the token backend, made when first used).
    assert all(hasattr(AccessToken, name) for name in set(vars(decoded)) - set(TOKEN_ATTRIBUTES))
    assert (made.token, made.payload) == (decoded.token, decoded.payload)
    assert made.payload is not decoded.payload
    assert made["sub"] == decoded["sub"] and made.get("sid") == decoded.get("sid")
    made.check_exp()
