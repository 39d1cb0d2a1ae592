"""`GET /admin/audit`: an admin reads the audit log entries made by it or about it; and `audited`, which records a
view's action in the audit log with its outcome."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.settings import api_settings

from accounts.audit import ACTIONS, audit_entry_dict, audit_record
from accounts.permissions import NotByApiKey
from accounts.selectors import audit_log
from accounts.tokens import refresh_token_decode
from core.schema import ErrorSerializer, error_responses

MAX_LIMIT = 1000

ViewMethod = Callable[..., Response]
# What a view's entry names, from the request, the answer (None when the view raised) and the URL's arguments.
Naming = Callable[[Request, Response | None, dict[str, Any]], str]


def audited(
    action: str, *, target: Naming | None = None, subject: Naming | None = None, detail: Naming | None = None
) -> Callable[[ViewMethod], ViewMethod]:
    """Records a view method's action with its outcome: success for a 2xx answer, failure (with the error's code
    in `detail`) for an error. By default the subject is the admin making the request."""

    def decorate(method: ViewMethod) -> ViewMethod:
        @functools.wraps(method)
        def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
            def record(response: Response | None, code: str) -> None:
                named = {
                    name: naming(request, response, kwargs) if naming else ""
                    for name, naming in (("target", target), ("subject", subject), ("detail", detail))
                }
                named["detail"] = ",".join(part for part in (named["detail"], code) if part)
                audit_record(action, request=request, outcome="failure" if code else "success", **named)

            try:
                response = method(view, request, *args, **kwargs)
            except Exception as exc:
                record(None, str(getattr(exc, "code", None) or getattr(exc, "default_code", "error")))
                raise
            record(response, "" if response.status_code < 400 else str(response.status_code))
            return response

        return wrapper

    return decorate


def url_argument(name: str) -> Naming:
    return lambda request, response, kwargs: str(kwargs.get(name, ""))


def answer_field(name: str) -> Naming:
    return lambda request, response, kwargs: str(response.data.get(name, "")) if response is not None else ""


def changed_fields(request: Request, response: Response | None, kwargs: dict[str, Any]) -> str:
    """The fields a request set (never their values: they may be passwords)."""
    data = request.data if isinstance(request.data, dict) else {}
    return ",".join(sorted(name for name in data if name != "current_password"))


def refresh_token_admin(request: Request, response: Response | None, kwargs: dict[str, Any]) -> str:
    """The admin whose refresh token got a new access token (the request carries no other credential)."""
    if response is None:
        return ""
    return str(refresh_token_decode(request.data["refresh_token"]).get(api_settings.USER_ID_CLAIM, ""))


class AuditNotByApiKey(NotByApiKey):
    message = "API keys cannot read the audit log; log in with a password."


class AuditQuerySerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=ACTIONS, required=False, help_text="Only entries of this action.")
    # `from` is a Python keyword: the field is named in `fields` below.
    from_ = serializers.DateTimeField(required=False, help_text="Entries at or after this time (ISO 8601).")
    to = serializers.DateTimeField(required=False, help_text="Entries at or before this time (ISO 8601).")
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=100)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class AuditEntrySerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The entry's id: unique, in the order entries were written.")
    time = serializers.CharField(help_text="When, in UTC (ISO 8601, milliseconds).")
    actor_kind = serializers.ChoiceField(
        choices=["admin", "os", "client"],
        help_text="`admin` (an admin's token or key), `os` (a manage.py command, run as the operating-system user "
        "`actor`), `client` (a request without credentials: a failed login or refresh).",
    )
    actor = serializers.CharField(help_text="The admin's id, or the operating-system user; empty for a client.")
    actor_name = serializers.CharField(help_text="The admin's username at the time.")
    action = serializers.ChoiceField(choices=ACTIONS)
    target = serializers.CharField(
        help_text="What was acted on: the username as typed for a login, a key, login or chat session id."
    )
    subject = serializers.CharField(help_text="The id of the admin the action concerns.")
    client = serializers.CharField(help_text="The client's address (`local` for a manage.py command).")
    request_id = serializers.CharField(help_text="The request's X-Request-ID, as in the request log.")
    outcome = serializers.ChoiceField(choices=["success", "failure"])
    count = serializers.IntegerField(
        help_text="For repeated failed logins of one username from one address: how many in the throttle's "
        "window so far (entries are kept at the 1st, 2nd, 4th, 8th...)."
    )
    detail = serializers.CharField(help_text="The fields a change set, or the error code of a failure.")


class AuditListSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    entries = AuditEntrySerializer(many=True)


@extend_schema(
    tags=["admin"],
    summary="The audit log entries by or about this admin",
    description=(
        "Security-relevant actions (logins, logouts, refreshes, credential changes, admins, logins revoked, API "
        "keys, budgets and limits, chat sessions deleted or imported), newest first: those this admin made, those "
        "about it (made by an operator with manage.py, for one), and failed logins typed as its username. "
        "Read only: nothing can change or delete an entry through the API. `manage.py auditlog` prints all."
    ),
    parameters=[AuditQuerySerializer],
    responses={
        200: AuditListSerializer,
        **error_responses(400, 401, 503),
        403: OpenApiResponse(ErrorSerializer, description="Sent with an API key: log in with a password."),
    },
)
class AuditLogView(APIView):
    name = "Audit log"

    permission_classes = [IsAuthenticated, AuditNotByApiKey]

    def get(self, request: Request) -> Response:
        query = AuditQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data
        entries = audit_log(
            admin_id=request.user.id,
            since=wanted.get("from"),
            until=wanted.get("to"),
            action=wanted.get("action"),
            limit=wanted["limit"],
        )
        listed = {"count": len(entries), "entries": [audit_entry_dict(entry) for entry in entries]}
        return Response(AuditListSerializer(listed).data)
