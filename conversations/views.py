"""The chat endpoints: a message and its answer (JSON or Server-Sent Events), regenerate and edit the last
exchange of a session, and the admin's test chat."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import renderers
from rest_framework.fields import BooleanField
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_budget_owners
from conversations import serializers
from conversations.idempotency import Claim, StoredResponse, claim_leases, idempotent, recorded
from conversations.rate_headers import rate_limit_headers
from conversations.services import (
    ChatReply,
    admin_test_chat,
    chat_send,
    chat_stream,
    redo_send,
    redo_stream,
)
from conversations.streaming import SSE_HEADERS, replayed_sse, sse_event, sse_stream
from conversations.turns import ChatOptions
from core.browsable import FormPageOnBrowserGet
from core.schema import error_responses
from core.shortcuts import lent_serializer
from core.views import ChatAPIView
from llm_provider.types import StreamDelta

TAG = "chat"
EVENT_STREAM = "text/event-stream"
CHAT_EXAMPLE = {"message": "Hello! How are you today?", "session_id": "chat123"}
TEST_CHAT_EXAMPLE = {"message": "Test message"}


class EventStreamRenderer(renderers.BaseRenderer):
    """Lets clients ask for `Accept: text/event-stream`; errors raised before the stream starts arrive as
    one `error` event with the HTTP status of the error."""

    media_type = EVENT_STREAM
    format = "sse"

    def render(self, data: object, accepted_media_type: str | None = None, renderer_context: dict | None = None):
        return sse_event("error", data) if isinstance(data, dict) else b""


STREAM_DESCRIPTION = (
    "With `stream: true` or `Accept: text/event-stream` the answer is a stream of Server-Sent Events: "
    "`delta` events `{content}` as the model writes, then one `done` event with the fields of the JSON answer, "
    "or an `error` event `{detail, code, status}` if the upstream fails midway. Comment lines keep quiet "
    "streams alive."
)


def chat_replay(request: Request, stored: StoredResponse) -> Response | StreamingHttpResponse:
    """A retry's answer from the stored reply, in the form this retry asks for (as in chat_answer)."""
    stream = BooleanField().to_internal_value(request.data.get("stream", False))
    if stream or request.accepted_media_type == EVENT_STREAM:
        return StreamingHttpResponse(replayed_sse(stored.body), content_type=EVENT_STREAM, headers=SSE_HEADERS)
    return Response(stored.body, status=stored.status)


@extend_schema(
    tags=[TAG],
    summary="Send a message to the chatbot",
    description=STREAM_DESCRIPTION,
    request=serializers.ChatRequestSerializer,
    responses={
        (200, "application/json"): OpenApiResponse(serializers.ChatResponseSerializer, description="The reply."),
        (200, EVENT_STREAM): OpenApiResponse(
            serializers.ChatStreamEventSerializer, description="The data of each event of the stream."
        ),
        **error_responses(400, 401, 409, 429, 502, 503, 504),
    },
    examples=[
        OpenApiExample("A message", value=CHAT_EXAMPLE, request_only=True),
        OpenApiExample(
            "Reply",
            value={
                "response": "Hello! I'm doing well.",
                "session_id": "chat123",
                "llm_provider": "chatgroq",
                "model": "openai/gpt-oss-20b",
                "user_id": "admin",
                "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21, "cost_usd": "0.000006"},
            },
            response_only=True,
        ),
    ],
)
class ChatView(FormPageOnBrowserGet, ChatAPIView):
    name = "Chat"
    request_example = CHAT_EXAMPLE

    renderer_classes = [*ChatAPIView.renderer_classes, EventStreamRenderer]

    @idempotent(replay=chat_replay)
    def post(self, request: Request, claim: Claim | None) -> Response | StreamingHttpResponse:
        with lent_serializer(serializers.ChatRequestSerializer, request.data) as body:
            body.is_valid(raise_exception=True)
            data, options = body.validated_data, chat_options(body)
        return chat_answer(
            request,
            claim,
            (chat_stream if wants_stream(request, data["stream"]) else chat_send),
            session_id=data.get("session_id"),
            text=data["message"],
            options=options,
        )


def chat_options(body: serializers.ChatOptionsSerializer) -> ChatOptions:
    data = body.validated_data
    return ChatOptions(data.get("model"), data.get("temperature"), data.get("max_tokens"), body.generation_params())


def wants_stream(request: Request, stream: bool) -> bool:
    """Server-Sent Events, asked for with `stream` or the Accept header."""
    return stream or request.accepted_media_type == EVENT_STREAM


def chat_answer(
    request: Request,
    claim: Claim | None,
    service: Callable[..., ChatReply | Iterator[StreamDelta | ChatReply]],
    **parsed: Any,
) -> Response | StreamingHttpResponse:
    """The reply of a chat service (chat_send, chat_stream, redo_send, redo_stream) called with what the view
    parsed and the request's credentials and claim: as JSON, or as Server-Sent Events from a streaming service."""
    reply = service(
        admin=request.user, budget_owners=request_budget_owners(request), leases=claim_leases(claim), **parsed
    )
    if isinstance(reply, ChatReply):
        return Response(serializers.chat_response_data(reply), headers=rate_limit_headers(request.user))
    events = recorded(claim, reply, serializers.chat_response_data)
    first = next(events)  # errors before the first piece still get their own HTTP status
    sse = sse_stream(first, events, settings.STREAM_KEEPALIVE_SECONDS)
    headers = {**SSE_HEADERS, **rate_limit_headers(request.user)}
    return StreamingHttpResponse(sse, content_type=EVENT_STREAM, headers=headers)


def redo_answer(
    request: Request,
    claim: Claim | None,
    session_id: str,
    body: serializers.ChatOptionsSerializer,
    *,
    text: str | None,
) -> Response | StreamingHttpResponse:
    """Regenerate (no text) or edit the session's last exchange, answered as `/chat/` answers."""
    service = redo_stream if wants_stream(request, body.validated_data["stream"]) else redo_send
    return chat_answer(request, claim, service, session_id=session_id, text=text, options=chat_options(body))


REDO_RESPONSES = {
    (200, "application/json"): OpenApiResponse(serializers.ChatResponseSerializer, description="The new reply."),
    (200, EVENT_STREAM): OpenApiResponse(serializers.ChatStreamEventSerializer, description="As for `/chat/`."),
    **error_responses(400, 401, 404, 409, 429, 502, 503, 504),
}


@extend_schema(
    tags=[TAG],
    summary="Answer the session's last user message again",
    description="Replaces the last reply (the exchange from the last user message on) with a new answer, under "
    "the session's lock. Takes `/chat/`'s options and streaming; when the model fails nothing changes. "
    + STREAM_DESCRIPTION,
    request=serializers.ChatOptionsSerializer,
    responses=REDO_RESPONSES,
)
class SessionRegenerateView(FormPageOnBrowserGet, ChatAPIView):
    name = "Regenerate the last reply"
    request_example: dict[str, object] = {}
    renderer_classes = [*ChatAPIView.renderer_classes, EventStreamRenderer]

    @idempotent(replay=chat_replay)
    def post(self, request: Request, session_id: str, claim: Claim | None) -> Response | StreamingHttpResponse:
        body = serializers.ChatOptionsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return redo_answer(request, claim, session_id, body, text=None)


@extend_schema(
    tags=[TAG],
    summary="Replace the session's last user message and answer it",
    description="Replaces the last user message (and what followed it) with `message` and its answer, under "
    "the session's lock. Takes `/chat/`'s options and streaming; when the model fails nothing changes. "
    + STREAM_DESCRIPTION,
    request=serializers.EditRequestSerializer,
    responses=REDO_RESPONSES,
    examples=[OpenApiExample("A new wording", value={"message": "Say it in French."}, request_only=True)],
)
class SessionEditView(FormPageOnBrowserGet, ChatAPIView):
    name = "Edit the last message"
    request_example = {"message": "Say it in French."}
    renderer_classes = [*ChatAPIView.renderer_classes, EventStreamRenderer]

    @idempotent(replay=chat_replay)
    def post(self, request: Request, session_id: str, claim: Claim | None) -> Response | StreamingHttpResponse:
        body = serializers.EditRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return redo_answer(request, claim, session_id, body, text=body.validated_data["message"])


@extend_schema(
    tags=["admin"],
    summary="Test the ChatGroq connection with a one-off message (SYSTEM_PROMPT, no history)",
    request=serializers.TestChatRequestSerializer,
    responses={200: serializers.TestChatResultSerializer, **error_responses(400, 401, 429, 502, 503, 504)},
    description="A turn without a session: the chat limits apply and the usage counts, as for a chat.",
    examples=[OpenApiExample("Test", value=TEST_CHAT_EXAMPLE, request_only=True)],
)
class TestChatView(FormPageOnBrowserGet, ChatAPIView):
    name = "Test chat"
    request_example = TEST_CHAT_EXAMPLE

    def post(self, request: Request) -> Response:
        body = serializers.TestChatRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = admin_test_chat(
            admin=request.user, text=body.validated_data["message"], budget_owners=request_budget_owners(request)
        )
        data = {"success": True, "error": None, **asdict(result)}
        return Response(serializers.TestChatResultSerializer(data).data)
