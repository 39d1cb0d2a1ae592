from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from llm_provider.serializers import CurrentProviderSerializer, LLMHealthSerializer, ProvidersSerializer
from llm_provider.services import PROVIDER, llm_health, provider_description, upstream_kind

TAG = "llm"


@extend_schema(
    tags=[TAG],
    summary="The current LLM provider",
    responses={200: CurrentProviderSerializer},
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def provider(request: Request) -> Response:
    return Response(CurrentProviderSerializer({"current_provider": provider_description()}).data)


@extend_schema(
    tags=[TAG],
    summary="Available LLM providers, with the models the upstream lists",
    responses={200: ProvidersSerializer},
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def providers(request: Request) -> Response:
    health = llm_health()
    entry = {
        "name": PROVIDER,
        "display_name": "ChatGroq",
        "type": upstream_kind(settings.GROQ_BASE_URL)[0],
        "description": "Groq's OpenAI-compatible chat API (or any OpenAI-compatible server at GROQ_BASE_URL)",
        "requires_api_key": True,
        "current_model": settings.GROQ_MODEL_NAME,
        "models": list(health.models),
        "models_available": bool(health.models),
    }
    return Response(ProvidersSerializer({"providers": [entry]}).data)


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
    return Response(LLMHealthSerializer(body).data, status=200 if result.healthy else 503)
