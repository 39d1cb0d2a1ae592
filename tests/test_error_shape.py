"""The error bodies the exception handler builds by hand (every failed request takes that path) are what
ErrorSerializer, which documents them in the OpenAPI schema, gives for the same values."""

from __future__ import annotations

import json

import pytest
from rest_framework import exceptions

from core.errors import exception_handler
from core.exceptions import DependencyUnavailable
from core.schema import ErrorSerializer


@pytest.mark.parametrize(
    "error",
    [
        DependencyUnavailable("Redis is unavailable; try again shortly.", retry_after=5, code="redis_unavailable"),
        exceptions.ValidationError({"message": ["This field is required."], "temperature": ["Too high."]}),
        exceptions.NotFound("No such session."),
        exceptions.Throttled(wait=3),
        exceptions.AuthenticationFailed({"detail": "Token is invalid", "code": "token_not_valid"}),
    ],
    ids=["service-error", "validation", "not-found", "throttled", "simplejwt"],
)
def test_an_error_body_is_what_its_serializer_gives(error):
    body = exception_handler(error, {}).data

    assert json.dumps(body, sort_keys=True) == json.dumps(ErrorSerializer(body).data, sort_keys=True)
