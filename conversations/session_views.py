"""The session endpoints: list, read, delete, export and import a conversation, and the memory statistics."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import renderers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.audit_views import answer_field, audited, url_argument
from conversations import export_serializers, serializers
from conversations.history.base import SessionNotFound
from conversations.selectors import memory_stats, session_detail, session_export, session_list
from conversations.services import session_delete, session_import
from conversations.session_ids import EXPORT_FORMAT, SESSION_ID_REGEX
from core.browsable import FormPageOnBrowserGet
from core.schema import error_responses

TAG = "chat"


class ObjectResponseSchema(AutoSchema):
    """Our `list` answers one object ({count, sessions}), not the bare array drf-spectacular assumes."""

    def _is_list_view(self, serializer: object = None) -> bool:
        return False


@extend_schema(
    tags=[TAG],
    summary="Export a session (format chatbot-session/1)",
    responses={200: export_serializers.SessionExportSerializer, **error_responses(401, 404, 503)},
)
class SessionExportView(APIView):
    name = "Session export"

    def get(self, request: Request, session_id: str) -> Response:
        document = session_export(admin_id=request.user.id, session_id=session_id)
        if document is None:
            raise SessionNotFound("No such session.")
        return Response(export_serializers.SessionExportSerializer(document).data)


@extend_schema(
    tags=[TAG],
    summary="Import an exported session",
    description="Takes what `GET /chat/sessions/{session_id}/export` gives, under its `session_id` (or a new "
    "one): the next chat to that session continues the conversation. Held to what a chat could have stored, "
    "all checked before anything is stored (400 naming the field): roles; MAX_MESSAGE_CHARS on user messages and "
    "tool results, MAX_REQUEST_CHARS on assistant messages with their tool calls; tool calls as `/v1` takes them, "
    "each tool result answering a call of the assistant message before it; a summary within "
    "HISTORY_SUMMARY_MAX_TOKENS (4 characters a token) and MAX_MESSAGE_CHARS; usage counters up to 10**12. "
    "The newest 200 messages are kept and the per-admin session cap applies; 409 when the session exists. "
    "Counts as one chat request against the admin's limits; the session keeps its usage, which does not count "
    "again in the admin's totals.",
    request=export_serializers.SessionExportSerializer,
    responses={201: serializers.SessionDetailSerializer, **error_responses(400, 401, 409, 429, 503)},
)
class SessionImportView(FormPageOnBrowserGet, APIView):
    name = "Session import"
    request_example = {
        "format": EXPORT_FORMAT,
        "session_id": "imported",
        "messages": [
            {"role": "user", "content": "Hello!"},
            {"role": "assistant", "content": "Hello! How can I help?"},
        ],
    }

    @audited("session.imported", target=answer_field("session_id"))
    def post(self, request: Request) -> Response:
        body = export_serializers.SessionExportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        session_id = session_import(admin=request.user, document=body.validated_data)
        detail = session_detail(admin_id=request.user.id, session_id=session_id)
        return Response(serializers.SessionDetailSerializer(detail).data, status=201)

    def http_method_not_allowed(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # This route comes before /chat/sessions/{id}, whose GET and DELETE a client may send here too: no session
        # is called `import` (RESERVED_SESSION_IDS), so they get the 404 of any unknown session, not a 405.
        browser = isinstance(getattr(request, "accepted_renderer", None), renderers.BrowsableAPIRenderer)
        if request.method == "DELETE" or (request.method == "GET" and not browser):
            raise SessionNotFound("No such session.")
        return super().http_method_not_allowed(request, *args, **kwargs)


@extend_schema_view(
    list=extend_schema(
        tags=[TAG],
        summary="This admin's chat sessions",
        operation_id="chat_sessions_list",
        responses={200: serializers.SessionListSerializer, **error_responses(401, 503)},
    ),
    retrieve=extend_schema(
        tags=[TAG],
        summary="One chat session with its messages",
        responses={200: serializers.SessionDetailSerializer, **error_responses(401, 404, 503)},
    ),
    destroy=extend_schema(
        tags=[TAG], summary="Clear a chat session", responses={204: None, **error_responses(401, 404, 503)}
    ),
)
class ChatSessionViewSet(viewsets.ViewSet):
    schema = ObjectResponseSchema()
    lookup_field = "session_id"
    lookup_value_regex = SESSION_ID_REGEX

    def list(self, request: Request) -> Response:
        sessions = session_list(admin_id=request.user.id)
        return Response(serializers.SessionListSerializer({"count": len(sessions), "sessions": sessions}).data)

    def retrieve(self, request: Request, session_id: str) -> Response:
        detail = session_detail(admin_id=request.user.id, session_id=session_id)
        if detail is None:
            raise SessionNotFound("No such session.")
        return Response(serializers.SessionDetailSerializer(detail).data)

    @audited("session.deleted", target=url_argument("session_id"))
    def destroy(self, request: Request, session_id: str) -> Response:
        if not session_delete(admin=request.user, session_id=session_id):
            raise SessionNotFound("No such session.")
        return Response(status=204)


@extend_schema(
    tags=[TAG],
    summary="Conversation memory statistics",
    responses={200: serializers.MemoryStatsSerializer, **error_responses(401, 503)},
)
class MemoryStatsView(APIView):
    name = "Memory statistics"

    def get(self, request: Request) -> Response:
        return Response(serializers.MemoryStatsSerializer(memory_stats(admin_id=request.user.id)).data)
