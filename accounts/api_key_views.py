"""`/admin/api-keys`: an admin creates, lists and revokes its own API keys."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, serializers, services
from accounts.api_keys import ApiKey
from accounts.audit_views import answer_field, audited, changed_fields, url_argument
from accounts.permissions import NotByApiKey
from core.browsable import FormPageOnBrowserGet
from core.schema import ErrorSerializer, error_responses

TAG = "admin"
API_KEY_EXAMPLE = {"name": "nightly report"}
BY_API_KEY = {403: OpenApiResponse(ErrorSerializer, description="Sent with an API key: keys cannot manage keys.")}


@extend_schema(tags=[TAG])
class ApiKeyListView(APIView):
    name = "API keys"
    request_example = API_KEY_EXAMPLE

    permission_classes = [IsAuthenticated, NotByApiKey]

    @extend_schema(
        summary="This admin's API keys",
        responses={200: serializers.ApiKeyListSerializer, **error_responses(401, 503), **BY_API_KEY},
    )
    def get(self, request: Request) -> Response:
        keys = selectors.api_keys_with_budgets(admin_id=request.user.id)
        return Response({"count": len(keys), "keys": serializers.ApiKeyInfoSerializer(keys, many=True).data})

    @extend_schema(
        summary="Create an API key (shown once)",
        request=serializers.ApiKeyCreateRequestSerializer,
        responses={201: serializers.ApiKeyCreatedSerializer, **error_responses(400, 401, 503), **BY_API_KEY},
        examples=[OpenApiExample("A key for a script", value=API_KEY_EXAMPLE, request_only=True)],
    )
    @audited("api_key.created", target=answer_field("id"))
    def post(self, request: Request) -> Response:
        body = serializers.ApiKeyCreateRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        budget = serializers.budget_of(data.get("budget"))
        key, raw = services.api_key_create(admin_id=request.user.id, name=data["name"], budget=budget)
        return Response({**api_key_info(key), "key": raw}, status=201)


def api_key_info(key: ApiKey) -> dict[str, object]:
    return serializers.ApiKeyInfoSerializer(selectors.api_key_with_budget(key)).data


@extend_schema(tags=[TAG])
class ApiKeyDetailView(FormPageOnBrowserGet, APIView):
    name = "API key"
    request_example = {"budget": {"tokens": 100000, "period": "month"}}

    permission_classes = [IsAuthenticated, NotByApiKey]

    @extend_schema(
        summary="Set or remove an API key's token or dollar budget",
        request=serializers.ApiKeyUpdateRequestSerializer,
        responses={200: serializers.ApiKeyInfoSerializer, **error_responses(400, 401, 404, 503), **BY_API_KEY},
        examples=[
            OpenApiExample("A monthly budget", value=request_example, request_only=True),
            OpenApiExample(
                "A monthly dollar budget", value={"budget": {"usd": "5.00", "period": "month"}}, request_only=True
            ),
        ],
    )
    @audited("api_key.changed", target=url_argument("key_id"), detail=changed_fields)
    def patch(self, request: Request, key_id: str) -> Response:
        body = serializers.ApiKeyUpdateRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        budget = serializers.budget_of(body.validated_data["budget"])
        key = services.api_key_budget_set(key_id=key_id, admin_id=request.user.id, budget=budget)
        return Response(api_key_info(key))

    @extend_schema(summary="Revoke an API key", responses={204: None, **error_responses(401, 404, 503), **BY_API_KEY})
    @audited("api_key.revoked", target=url_argument("key_id"))
    def delete(self, request: Request, key_id: str) -> Response:
        services.api_key_revoke(key_id=key_id, admin_id=request.user.id)
        return Response(status=204)
