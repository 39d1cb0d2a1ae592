"""OpenAI-compatible endpoints, so that OpenAI's and Groq's SDKs (and tools built on them) can use this service
with only a base URL and a key: `POST /v1/chat/completions` and `GET /v1/models`.

Responses, stream chunks and errors take OpenAI's shapes, errors as `{"error": {message, type, code, param}}`,
which is what lets the SDKs raise their typed errors (401 AuthenticationError, 429 RateLimitError, ...)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.fields import BooleanField
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_budget_owners
from conversations.idempotency import Claim, StoredResponse, claim_leases, idempotent, recorded
from conversations.openai import serializers as openai_serializers
from conversations.openai.wire import (
    completion_body,
    completion_chunks,
    error_param,
    new_completion_id,
    openai_error,
    replayed_chunks,
)
from conversations.rate_headers import rate_limit_headers
from conversations.services import completion_model_check, completion_send, completion_stream
from conversations.session_ids import SESSION_ID_RULE, is_session_id
from conversations.streaming import SSE_HEADERS
from conversations.turns import ChatOptions, TurnResult
from core.errors import exception_handler
from core.negotiation import IgnoreAccept
from core.parsers import JSONParser
from core.shortcuts import lent_serializer
from core.views import ChatAPIView

TAG = "openai-compatible"
SESSION_HEADER = "X-Session-Id"


def openai_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The project's handler decides status and headers (Retry-After too); only the body takes OpenAI's shape."""
    response = exception_handler(exc, context)
    if response is None:
        return None
    data = response.data if isinstance(response.data, dict) else {}
    param = getattr(exc, "param", None) or error_param(data.get("errors"))
    response.data = openai_error(
        str(data.get("detail", "Error.")), status=response.status_code, code=data.get("code"), param=param
    )
    return response


class OpenAIView(ChatAPIView):
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = IgnoreAccept

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response | None]:
        return openai_exception_handler


def session_id_of(request: Request) -> str | None:
    session_id = request.headers.get(SESSION_HEADER)
    if session_id is not None and not is_session_id(session_id):
        raise ValidationError({SESSION_HEADER: [SESSION_ID_RULE]})
    return session_id


_ERRORS = {
    400: "Invalid request (`param` names the field).",
    401: "Missing, invalid or revoked token or API key.",
    404: "Unknown model.",
    409: "Another message to this session is still being answered.",
    415: "The body is not JSON.",
    429: "Rate limited (this admin's limits, or the upstream's); see Retry-After.",
    502: "The upstream LLM failed.",
    503: "A dependency is unavailable, or the server is busy (MAX_CHATS_IN_FLIGHT); see Retry-After.",
    504: "The upstream LLM did not answer in time.",
}


def openai_errors(*statuses: int) -> dict[int, OpenApiResponse]:
    return {s: OpenApiResponse(openai_serializers.OpenAIErrorSerializer, description=_ERRORS[s]) for s in statuses}


COMPLETIONS_DESCRIPTION = (
    "OpenAI's chat completions API: point an OpenAI or Groq SDK at `<this service>/v1` with an API key "
    "(or an access token) as its `api_key`.\n\n"
    "The service's `SYSTEM_PROMPT`, when set, always goes upstream first, before your own system messages. "
    "Without `X-Session-Id` the call is stateless: your `messages` follow it as given. With `X-Session-Id` the "
    "service keeps that session's history, as `/chat/` does (same sessions, same per-admin isolation): after "
    "`SYSTEM_PROMPT` go your leading system messages, then the stored history, then the rest of your messages. "
    "The turn stored is your messages from your last user message on (or, answering the tool calls of the last "
    "reply, your tool results) and the reply, tool calls included. So send only the new messages each time.\n\n"
    "Every message has at most `MAX_MESSAGE_CHARS` characters, and a request at most `MAX_REQUEST_MESSAGES` "
    "messages; `tools` at most `MAX_REQUEST_TOOLS` definitions of `MAX_TOOLS_CHARS` characters together (as JSON), a "
    "`json_schema` at most `MAX_SCHEMA_CHARS` characters, and the messages with every other parameter that goes "
    "upstream at most `MAX_REQUEST_CHARS` characters together; over a limit is a 400 that names it. Tools and "
    "schemas count in a token budget's estimate as the prompt tokens they are.\n\n"
    "With `stream: true` the answer is Server-Sent Events of `chat.completion.chunk` objects ending with "
    "`data: [DONE]`; `stream_options.include_usage` adds a last chunk with the usage. Every parameter Groq accepts "
    "is passed on: `temperature`, `top_p`, `max_tokens`/`max_completion_tokens`, `stop`, `seed`, `user`, "
    "`presence_penalty`, `frequency_penalty`, `response_format` (`json_object`, `json_schema`), `tools`, "
    "`tool_choice`, `parallel_tool_calls`, `reasoning_effort`, `reasoning_format`, `include_reasoning`, "
    "`service_tier`. What Groq refuses (`n` above 1, `logprobs`, `logit_bias`, unknown parameters) is a 400 "
    "naming it. Messages are text only; the `developer` role is sent as `system`."
)


def completion_replay(request: Request, stored: StoredResponse) -> Response | StreamingHttpResponse:
    """A retry's answer from the stored completion: the retry's body is the first one's, stream or not."""
    data = request.data
    headers = {SESSION_HEADER: request.headers[SESSION_HEADER]} if request.headers.get(SESSION_HEADER) else {}
    if not BooleanField().to_internal_value(data.get("stream", False)):
        return Response(stored.body, status=stored.status, headers=headers)
    include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
    chunks = replayed_chunks(stored.body, model=data["model"], include_usage=include_usage)
    return StreamingHttpResponse(chunks, content_type="text/event-stream", headers={**SSE_HEADERS, **headers})


class ChatCompletionsView(OpenAIView):
    @idempotent(headers=(SESSION_HEADER,), replay=completion_replay)
    @extend_schema(
        tags=[TAG],
        summary="Create a chat completion (OpenAI-compatible)",
        operation_id="v1_chat_completions_create",
        description=COMPLETIONS_DESCRIPTION,
        request=openai_serializers.ChatCompletionRequestSerializer,
        parameters=[
            OpenApiParameter(
                SESSION_HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=False,
                description="Keep and use this session's history (1-100 of [A-Za-z0-9_-]). Omit for a stateless call.",
            )
        ],
        responses={
            200: OpenApiResponse(
                openai_serializers.ChatCompletionSerializer, description="The completion (or an event stream)."
            ),
            **openai_errors(400, 401, 404, 409, 415, 429, 502, 503, 504),
        },
        examples=[
            OpenApiExample(
                "A question",
                value={"model": "openai/gpt-oss-20b", "messages": [{"role": "user", "content": "Hello!"}]},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, claim: Claim | None) -> Response | StreamingHttpResponse:
        with lent_serializer(openai_serializers.ChatCompletionRequestSerializer, request.data) as body:
            body.is_valid(raise_exception=True)
            data, params = body.validated_data, body.generation_params()
        session_id = session_id_of(request)
        max_tokens = data.get("max_completion_tokens") or data.get("max_tokens")
        turn = {
            "admin": request.user,
            "session_id": session_id,
            "messages": data["messages"],
            "options": ChatOptions(data["model"], data.get("temperature"), max_tokens, params),
            "budget_owners": request_budget_owners(request),
            "leases": claim_leases(claim),
        }
        headers = {SESSION_HEADER: session_id} if session_id else {}
        ids = {"completion_id": new_completion_id(), "created": int(time.time())}
        if data["stream"]:

            def body_of(result: TurnResult) -> dict[str, Any]:
                return completion_body(result.completion, **ids)

            events = recorded(claim, completion_stream(**turn), body_of)
            first = next(events)  # errors before the first piece still get their own HTTP status
            include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
            chunks = completion_chunks(first, events, **ids, model=data["model"], include_usage=include_usage)
            headers = {**SSE_HEADERS, **headers, **rate_limit_headers(request.user)}
            return StreamingHttpResponse(chunks, content_type="text/event-stream", headers=headers)
        result = completion_send(**turn)
        return Response(
            completion_body(result.completion, **ids), headers={**headers, **rate_limit_headers(request.user)}
        )


def model_card(model: str) -> dict[str, Any]:
    """A model as OpenAIModelSerializer renders it (`object` is its default)."""
    return {"id": model, "created": 0, "owned_by": settings.LLM_PROVIDER}


class ModelListView(OpenAIView):
    @extend_schema(
        tags=[TAG],
        summary="The models a completion may use (OpenAI-compatible): CHAT_ALLOWED_MODELS",
        operation_id="v1_models_list",
        responses={
            200: openai_serializers.OpenAIModelListSerializer,
            **openai_errors(401, 503),
        },
    )
    def get(self, request: Request) -> Response:
        cards = [model_card(m) for m in settings.CHAT_ALLOWED_MODELS]
        return Response(openai_serializers.OpenAIModelListSerializer({"data": cards}).data)


class ModelDetailView(OpenAIView):
    @extend_schema(
        tags=[TAG],
        summary="One model (OpenAI-compatible)",
        operation_id="v1_models_retrieve",
        responses={200: openai_serializers.OpenAIModelSerializer, **openai_errors(401, 404, 503)},
    )
    def get(self, request: Request, model: str) -> Response:
        completion_model_check(model)
        return Response(openai_serializers.OpenAIModelSerializer(model_card(model)).data)


@csrf_exempt
def openai_not_found(request: HttpRequest) -> JsonResponse:
    body = openai_error(f"Unknown path {request.path}.", status=404, code="unknown_url")
    return JsonResponse(body, status=404)
