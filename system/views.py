"""System endpoints: health, liveness, info (public, as the documented API has them), the admin's status view and
the Prometheus metrics."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularJSONAPIView
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework.decorators import api_view, authentication_classes, permission_classes, throttle_classes
from rest_framework.exceptions import PermissionDenied
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.http import client_ip
from core.metrics import metrics_allowed, metrics_text
from core.negotiation import IgnoreAccept
from core.schema import ErrorSerializer, error_responses
from system.openapi import openapi_document
from system.selectors import health_report, info_report, status_report
from system.serializers import (
    ApiRootSerializer,
    HealthSerializer,
    InfoSerializer,
    LivenessSerializer,
    StatusSerializer,
)

_ACCEPTS_GZIP = re.compile(r"\bgzip\b")
FAVICON = Path(__file__).parent / "static" / "system" / "favicon.ico"
FAVICON_MAX_AGE_SECONDS = 86_400


@cache
def _favicon_bytes() -> bytes:
    return FAVICON.read_bytes()


def favicon(request: HttpRequest) -> HttpResponse:
    """The icon a browser asks for at /favicon.ico on every page of the service (a plain view: no API, no schema)."""
    response = HttpResponse(_favicon_bytes(), content_type="image/x-icon")
    response["Cache-Control"] = f"public, max-age={FAVICON_MAX_AGE_SECONDS}"
    return response


@extend_schema(tags=["system"], summary="Health check", responses={200: HealthSerializer, 503: HealthSerializer})
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def health(request: Request) -> Response:
    report = health_report()
    return Response(HealthSerializer(report).data, status=200 if report["redis_healthy"] else 503)


@extend_schema(
    tags=["system"],
    summary="Liveness: the process answers (no I/O)",
    responses={200: LivenessSerializer},
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
@throttle_classes([])  # probes call it, often, from one address
def liveness(request: Request) -> Response:
    return Response(LivenessSerializer({"status": "alive"}).data)


@extend_schema(
    tags=["system"],
    summary="API information",
    responses={200: InfoSerializer},
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def info(request: Request) -> Response:
    return Response(InfoSerializer(info_report()).data)


@extend_schema(
    tags=["admin"],
    summary="System health and status",
    responses={200: StatusSerializer, **error_responses(401, 503)},
)
@api_view(["GET"])
def admin_status(request: Request) -> Response:
    return Response(StatusSerializer(status_report(admin_id=request.user.id)).data)


class MetricsView(APIView):
    authentication_classes = []
    # Checked in get(), not as a permission class, so that other methods still answer 405.
    permission_classes = []
    renderer_classes = [JSONRenderer]  # for errors; metrics are always Prometheus text
    content_negotiation_class = IgnoreAccept

    @extend_schema(
        tags=["system"],
        summary="Prometheus metrics, for METRICS_ALLOWED_IPS or with METRICS_TOKEN",
        description=(
            "Requests and latency per route and status, upstream latency, errors and retries, tokens, logins "
            "(succeeded, failed, throttled), sessions stored, Redis up; added up over every gunicorn worker; "
            "and Groq's rate limits (x-ratelimit-*) from the latest upstream answer of any worker. "
            "Answered to a client address in METRICS_ALLOWED_IPS (default: loopback only), or to "
            "`Authorization: Bearer <METRICS_TOKEN>` when METRICS_TOKEN is set."
        ),
        auth=[],
        responses={
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="Prometheus text exposition format."),
            403: OpenApiResponse(ErrorSerializer, description="Not an allowed address, and no valid METRICS_TOKEN."),
        },
    )
    def get(self, request: Request) -> HttpResponse:
        if not metrics_allowed(client_ip(request), request.headers.get("Authorization", "")):
            raise PermissionDenied(
                "Metrics are served only to METRICS_ALLOWED_IPS, or with Authorization: Bearer <METRICS_TOKEN>.",
                code="metrics_forbidden",
            )
        return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)


class OpenApiView(SpectacularJSONAPIView):
    """The OpenAPI document from memory (system/openapi.py), gzipped for a client that accepts gzip; HEAD is
    answered as GET without its body."""

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        document = openapi_document()
        gzipped = _ACCEPTS_GZIP.search(request.headers.get("Accept-Encoding", "")) is not None
        response = HttpResponse(
            document.gzipped if gzipped else document.body, content_type=request.accepted_renderer.media_type
        )
        if gzipped:
            response["Content-Encoding"] = "gzip"
        patch_vary_headers(response, ["Accept-Encoding"])
        response["Content-Disposition"] = f'inline; filename="{settings.SPECTACULAR_SETTINGS["TITLE"]}.json"'
        return response


# The endpoints the root links to, by route name: those without a path parameter.
ROOT_LINKS = {
    "login": "admin-login",
    "refresh": "admin-refresh",
    "logout": "admin-logout",
    "admin_info": "admin-info",
    "change_credentials": "admin-change-credentials",
    "login_sessions": "admin-sessions",
    "api_keys": "admin-api-keys",
    "audit_log": "admin-audit",
    "status": "admin-status",
    "test_chat": "admin-test-chat",
    "usage": "admin-usage",
    "chat": "chat",
    "chat_sessions": "chat-session-list",
    "chat_session_import": "chat-session-import",
    "memory_stats": "memory-stats",
    "openai_chat_completions": "openai-chat-completions",
    "openai_models": "openai-models",
    "openai_responses": "openai-responses",
    "openai_conversations": "openai-conversations",
    "llm_provider": "llm-provider",
    "llm_providers": "llm-providers",
    "llm_health": "llm-health",
    "health": "health",
    "liveness": "liveness",
    "info": "info",
    "metrics": "metrics",
    "docs": "docs",
    "redoc": "redoc",
    "openapi": "openapi",
    "browser_login": "rest_framework:login",
    "console": "console:chat",
}


@extend_schema(
    tags=["system"],
    summary="API root: a link to every endpoint and to the docs",
    responses={200: ApiRootSerializer},
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def api_root(request: Request) -> Response:
    links = {name: request.build_absolute_uri(reverse(route)) for name, route in ROOT_LINKS.items()}
    return Response(ApiRootSerializer({"name": settings.SPECTACULAR_SETTINGS["TITLE"], "endpoints": links}).data)
