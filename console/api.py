"""The console's chat endpoints: `/chat/`, regenerate and edit as the chat page's script calls them, signed in
with the console's cookie and Django's CSRF token rather than a bearer token. They run the same services (the one
turn pipeline) and answer the same Server-Sent Events (`delta`, then `done` or `error`); not part of the API, so
not in its schema."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from console.auth import ConsoleAuthentication
from conversations import serializers
from conversations.services import chat_stream
from conversations.views import EventStreamRenderer, chat_answer, chat_options, redo_answer
from core.shortcuts import lent_serializer
from core.views import ChatAPIView


class ConsoleApiView(ChatAPIView):
    authentication_classes = [ConsoleAuthentication]
    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer, EventStreamRenderer]


class ChatStreamView(ConsoleApiView):
    @extend_schema(exclude=True)
    def post(self, request: Request) -> Response | StreamingHttpResponse:
        with lent_serializer(serializers.ChatRequestSerializer, request.data) as body:
            body.is_valid(raise_exception=True)
            data, options = body.validated_data, chat_options(body)
        return chat_answer(
            request,
            None,
            chat_stream,
            session_id=data.get("session_id"),
            text=data["message"],
            options=options,
        )


class RegenerateStreamView(ConsoleApiView):
    @extend_schema(exclude=True)
    def post(self, request: Request, session_id: str) -> Response | StreamingHttpResponse:
        body = serializers.ChatOptionsSerializer(data={**request.data, "stream": True})
        body.is_valid(raise_exception=True)
        return redo_answer(request, None, session_id, body, text=None)


class EditStreamView(ConsoleApiView):
    @extend_schema(exclude=True)
    def post(self, request: Request, session_id: str) -> Response | StreamingHttpResponse:
        body = serializers.EditRequestSerializer(data={**request.data, "stream": True})
        body.is_valid(raise_exception=True)
        return redo_answer(request, None, session_id, body, text=body.validated_data["message"])
