from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.validators import MaxLengthValidator
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.limits import chat_slot
from conversations.trimming import with_system_prompt
from core.schema import error_responses
from llm_provider.services import PROVIDER, llm_client, llm_health, provider_description

TAG = "llm"

ProviderSerializer = inline_serializer(
    "Provider",
    {
        "provider": serializers.CharField(),
        "model": serializers.CharField(),
        "base_url": serializers.CharField(),
        "temperature": serializers.FloatField(),
        "max_tokens": serializers.IntegerField(),
        "type": serializers.CharField(),
        "description": serializers.CharField(),
    },
)


@extend_schema(
    tags=[TAG],
    summary="The current LLM provider",
    responses={200: inline_serializer("CurrentProvider", {"current_provider": ProviderSerializer})},
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def provider(request: Request) -> Response:
    return Response({"current_provider": provider_description()})


@extend_schema(
    tags=[TAG],
    summary="Available LLM providers, with the models the upstream lists",
    responses={
        200: inline_serializer(
            "Providers",
            {
                "providers": inline_serializer(
                    "ProviderEntry",
                    {
                        "name": serializers.CharField(),
                        "display_name": serializers.CharField(),
                        "type": serializers.CharField(),
                        "description": serializers.CharField(),
                        "requires_api_key": serializers.BooleanField(),
                        "current_model": serializers.CharField(),
                        "models": serializers.ListField(child=serializers.CharField()),
                        "models_available": serializers.BooleanField(
                            help_text="False when the upstream could not be asked (see /llm/health)."
                        ),
                    },
                    many=True,
                )
            },
        )
    },
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def providers(request: Request) -> Response:
    health = llm_health()
    entry = {
        "name": PROVIDER,
        "display_name": "ChatGroq",
        "type": "cloud",
        "description": "Groq's OpenAI-compatible chat API (or any OpenAI-compatible server at GROQ_BASE_URL)",
        "requires_api_key": True,
        "current_model": settings.GROQ_MODEL_NAME,
        "models": list(health.models),
        "models_available": bool(health.models),
    }
    return Response({"providers": [entry]})


LLMHealthSerializer = inline_serializer(
    "LLMHealth",
    {
        "healthy": serializers.BooleanField(),
        "provider": serializers.CharField(),
        "model": serializers.CharField(),
        "model_available": serializers.BooleanField(allow_null=True),
        "error": serializers.CharField(allow_null=True),
        "code": serializers.CharField(allow_null=True),
        "checked_seconds_ago": serializers.FloatField(),
    },
)


@extend_schema(
    tags=[TAG],
    summary="LLM provider health (cached for LLM_HEALTH_CACHE_SECONDS)",
    responses={200: LLMHealthSerializer, 503: LLMHealthSerializer},
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def health(request: Request) -> Response:
    result = llm_health()
    body = {
        "healthy": result.healthy,
        "provider": PROVIDER,
        "model": result.model,
        "model_available": result.model_available,
        "error": result.error,
        "code": result.error_code,
        "checked_seconds_ago": round(result.age_seconds, 1),
    }
    return Response(body, status=200 if result.healthy else 503)


class TestChatRequestSerializer(serializers.Serializer):
    message = serializers.CharField(help_text="1 to MAX_MESSAGE_CHARS characters.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["message"].max_length = settings.MAX_MESSAGE_CHARS
        self.fields["message"].validators.append(MaxLengthValidator(settings.MAX_MESSAGE_CHARS))


@extend_schema(
    tags=["admin"],
    summary="Test the ChatGroq connection with a one-off message (SYSTEM_PROMPT, no history)",
    request=TestChatRequestSerializer,
    responses={
        200: inline_serializer(
            "TestChatResult",
            {
                "success": serializers.BooleanField(),
                "response": serializers.CharField(),
                "error": serializers.CharField(allow_null=True),
                "latency_ms": serializers.FloatField(),
                "model": serializers.CharField(),
            },
        ),
        **error_responses(400, 401, 429, 502, 503, 504),
    },
    description="Holds a chat slot, as a chat does: the per-admin chat limits and MAX_CHATS_IN_FLIGHT apply.",
    examples=[OpenApiExample("Test", value={"message": "Test message"}, request_only=True)],
)
class TestChatView(APIView):
    def post(self, request: Request) -> Response:
        body = TestChatRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        messages = with_system_prompt(
            [{"role": "user", "content": body.validated_data["message"]}], settings.SYSTEM_PROMPT
        )
        with chat_slot(request.user.id):
            started = time.perf_counter()
            completion = llm_client().complete(messages)
        return Response(
            {
                "success": True,
                "response": completion.content,
                "error": None,
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                "model": completion.model,
            }
        )
