"""System endpoints: health, liveness, info. Public, like the seed's."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from chatbot_project.redis_store import redis_ping

SERVICE_NAME = "chatbot-api"

HealthSerializer = inline_serializer(
    "Health",
    {
        "status": serializers.ChoiceField(choices=["healthy", "degraded", "unhealthy"]),
        "service": serializers.CharField(),
        "version": serializers.CharField(),
        "llm_provider": serializers.CharField(),
        "llm_healthy": serializers.BooleanField(allow_null=True),
        "redis_healthy": serializers.BooleanField(),
    },
)


@extend_schema(tags=["system"], summary="Health check", responses={200: HealthSerializer, 503: HealthSerializer})
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def health(request: Request) -> Response:
    redis_healthy = redis_ping()
    llm_healthy = None
    status = "healthy" if redis_healthy else "unhealthy"
    body = {
        "status": status,
        "service": SERVICE_NAME,
        "version": settings.VERSION,
        "llm_provider": settings.LLM_PROVIDER,
        "llm_healthy": llm_healthy,
        "redis_healthy": redis_healthy,
    }
    return Response(body, status=200 if redis_healthy else 503)


@extend_schema(
    tags=["system"],
    summary="Liveness: the process answers (no I/O)",
    responses={200: inline_serializer("Liveness", {"status": serializers.CharField()})},
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def liveness(request: Request) -> Response:
    return Response({"status": "alive"})


@extend_schema(
    tags=["system"],
    summary="API information",
    responses={
        200: inline_serializer(
            "Info",
            {
                "name": serializers.CharField(),
                "service": serializers.CharField(),
                "version": serializers.CharField(),
                "llm_provider": serializers.CharField(),
                "model": serializers.CharField(),
                "docs": serializers.DictField(child=serializers.CharField()),
            },
        )
    },
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def info(request: Request) -> Response:
    return Response(
        {
            "name": settings.SPECTACULAR_SETTINGS["TITLE"],
            "service": SERVICE_NAME,
            "version": settings.VERSION,
            "llm_provider": settings.LLM_PROVIDER,
            "model": settings.GROQ_MODEL_NAME,
            "docs": {"swagger": "/docs", "redoc": "/redoc", "openapi": "/openapi.json"},
        }
    )
