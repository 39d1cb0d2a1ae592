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
API_KEY_EXAMPLE = {
    "name": "nightly report",
    "models": ["openai/gpt-oss-20b"],
    "requests_per_minute": 60,
    "tokens_per_minute": 100000,
}
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
        key, raw = services.api_key_create(
            admin_id=request.user.id, name=data["name"], budget=budget, rules=serializers.rules_of(data)
        )
        return Response({**api_key_info(key), "key": raw}, status=201)


def api_key_info(key: ApiKey) -> dict[str, object]:
    return serializers.ApiKeyInfoSerializer(selectors.api_key_with_budget(key)).data


@extend_schema(tags=[TAG])
class ApiKeyDetailView(FormPageOnBrowserGet, APIView):
    name = "API key"
    request_example = {"budget": {"tokens": 100000, "period": "month"}, "tokens_per_minute": 20000}

    permission_classes = [IsAuthenticated, NotByApiKey]

    @extend_schema(
        summary="Change an API key's rules or token or dollar budget",
        description="Only the fields sent change; null removes a limit, the budget or the expiry, and "
        "`models: []` allows any model.",
        request=serializers.ApiKeyUpdateRequestSerializer,
        responses={200: serializers.ApiKeyInfoSerializer, **error_responses(400, 401, 404, 503), **BY_API_KEY},
        examples=[
            OpenApiExample("A monthly budget and a limit per minute", value=request_example, request_only=True),
            OpenApiExample(
                "A monthly dollar budget", value={"budget": {"usd": "5.00", "period": "month"}}, request_only=True
            ),
        ],
    )
    @audited("api_key.changed", target=url_argument("key_id"), detail=changed_fields)
    def patch(self, request: Request, key_id: str) -> Response:
        body = serializers.ApiKeyUpdateRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data, admin_id = body.validated_data, request.user.id
        key = services.api_key_of(key_id=key_id, admin_id=admin_id)
        if "budget" in data:
            services.api_key_budget_set(key_id=key_id, admin_id=admin_id, budget=serializers.budget_of(data["budget"]))
        key = services.api_key_rules_set(key_id=key_id, admin_id=admin_id, rules=serializers.rules_of(data, key.rules))
        return Response(api_key_info(key))

    @extend_schema(summary="Revoke an API key", responses={204: None, **error_responses(401, 404, 503), **BY_API_KEY})
    @audited("api_key.revoked", target=url_argument("key_id"))
    def delete(self, request: Request, key_id: str) -> Response:
        services.api_key_revoke(key_id=key_id, admin_id=request.user.id)
        return Response(status=204)
