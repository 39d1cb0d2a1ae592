"""`/admin/api-keys`: an admin creates, lists and revokes its own API keys."""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_keys import ApiKey, api_key_create, api_key_list, api_key_revoke
from core.schema import ErrorSerializer, error_responses

TAG = "admin"
BY_API_KEY = {403: OpenApiResponse(ErrorSerializer, description="Sent with an API key: keys cannot manage keys.")}


class ApiKeyCreateRequestSerializer(serializers.Serializer):
    name = serializers.CharField(
        max_length=100, required=False, default="", allow_blank=True, help_text="What the key is for."
    )


class ApiKeyInfoSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The key's first characters, to tell keys apart.")
    created_at = serializers.CharField()
    last_used = serializers.CharField(allow_null=True)


class ApiKeyCreatedSerializer(ApiKeyInfoSerializer):
    key = serializers.CharField(help_text="The key itself. Shown only now: store it safely.")


class ApiKeyListSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    keys = ApiKeyInfoSerializer(many=True)


class NotByApiKey(BasePermission):
    """Keys are managed with a password login: a leaked key must not be able to mint the keys that outlive it."""

    message = "API keys cannot manage API keys; log in with a password."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return not isinstance(request.auth, ApiKey)


def key_info(key: ApiKey) -> dict[str, object]:
    return {name: value for name, value in asdict(key).items() if name != "admin_id"}


@extend_schema(tags=[TAG])
class ApiKeyListView(APIView):
    permission_classes = [IsAuthenticated, NotByApiKey]

    @extend_schema(
        summary="This admin's API keys",
        responses={200: ApiKeyListSerializer, **error_responses(401, 503), **BY_API_KEY},
    )
    def get(self, request: Request) -> Response:
        keys = [key_info(key) for key in api_key_list(request.user.id)]
        return Response({"count": len(keys), "keys": keys})

    @extend_schema(
        summary="Create an API key (shown once)",
        request=ApiKeyCreateRequestSerializer,
        responses={201: ApiKeyCreatedSerializer, **error_responses(400, 401, 503), **BY_API_KEY},
        examples=[OpenApiExample("A key for a script", value={"name": "nightly report"}, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        body = ApiKeyCreateRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key, raw = api_key_create(admin_id=request.user.id, name=body.validated_data["name"])
        return Response({**key_info(key), "key": raw}, status=201)


@extend_schema(
    tags=[TAG], summary="Revoke an API key", responses={204: None, **error_responses(401, 404, 503), **BY_API_KEY}
)
class ApiKeyDetailView(APIView):
    permission_classes = [IsAuthenticated, NotByApiKey]

    def delete(self, request: Request, key_id: str) -> Response:
        if not api_key_revoke(key_id=key_id, admin_id=request.user.id):
            raise NotFound("No such API key.")
        return Response(status=204)
