"""GET /admin/usage: an admin's usage over time (conversations/usage_history.py)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.selectors import usage_over_time
from conversations.usage_serializers import UsageQuerySerializer, UsageReportSerializer
from core.schema import error_responses

TAG = "admin"


@extend_schema(
    tags=[TAG],
    summary="Usage per UTC day, model and API key",
    description="The asking admin's requests, input and output tokens and cost, from `from` to `to` (UTC days, "
    "both included), in one row per combination of the `group_by` dimensions (only those are present in a row), "
    "sorted by them, and the totals. Days older than USAGE_RETENTION_DAYS are gone. A request made with an API key "
    "counts under its key (`key`: its id), one made with a login under `key: null`; a turn that folded its history "
    "into a summary counts that call too, under the summary's model.",
    parameters=[
        OpenApiParameter("from", OpenApiTypes.DATE, description="The first UTC day (default: 29 days before `to`)."),
        OpenApiParameter("to", OpenApiTypes.DATE, description="The last UTC day, included (default: today)."),
        OpenApiParameter(
            "group_by", OpenApiTypes.STR, description="A comma-separated list of `day`, `model`, `key` (default `day`)."
        ),
    ],
    responses={200: UsageReportSerializer, **error_responses(400, 401, 503)},
)
class UsageView(APIView):
    name = "Usage"

    def get(self, request: Request) -> Response:
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        report = usage_over_time(admin_id=request.user.id, **query.validated_data)
        return Response(UsageReportSerializer(report).data)
