"""`/v1/responses`: OpenAI's Responses API, in its shapes and its error shape; the use cases are in
conversations.responses.services."""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.fields import BooleanField
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.audit_views import audited, url_argument
from accounts.authentication import request_budget_owners
from conversations.idempotency import Claim, StoredResponse, claim_leases, idempotent, recorded
from conversations.openai.views import TAG, OpenAIView, openai_errors
from conversations.rate_headers import rate_limit_headers
from conversations.responses import serializers
from conversations.responses.events import replayed_events, response_events
from conversations.responses.services import (
    ResponseRequest,
    response_create,
    response_delete,
    response_get,
    response_input_items,
    response_stream,
)
from conversations.streaming import SSE_HEADERS
from conversations.turns import ChatOptions
from core.shortcuts import lent_serializer

DESCRIPTION = (
    "OpenAI's Responses API: point an OpenAI SDK at `<this service>/v1` and use `client.responses`.\n\n"
    "A stored response (`store`, the default) can be retrieved and continued: a response with "
    "`previous_response_id` sees that response's whole chain (its input and output, and theirs before it), then "
    "its own input. A chain is one stored session, `resp_` and the first 24 hex digits of its responses' ids: it "
    "is listed by `/chat/sessions` and kept under the same TTL, trimming (HISTORY_MAX_*), summaries "
    "(HISTORY_SUMMARY), caps and budgets, with its stored responses beside it; `SYSTEM_PROMPT` goes first. "
    "`instructions` apply to their own response only. Continuing from "
    "an earlier response than the chain's latest starts a new session (a branch) holding the chain up to it. With "
    "`store: false` a response reads the chain and stores nothing. A response created with `store: false`, "
    "expired, deleted, or another admin's is a 404.\n\n"
    "Input is text: messages (roles user, system, developer, assistant; content a string or input_text / "
    "output_text parts), function_call and function_call_output items. Tools are function tools; built-in tools, "
    "`background` and stored prompts are a 400 naming the parameter. `conversation` (a `conv_...` of "
    "`/v1/conversations`) adds the response to that conversation instead of a chain. `text.format` (`json_object`, "
    "`json_schema`) and `reasoning.effort` are passed on, `safety_identifier` as the chat completion's `user`. "
    "`truncation`: `auto` (the default here) trims history as a session's is, `disabled` makes a request whose "
    "history would be trimmed a 400 (`context_length_exceeded`). The limits of `/v1/chat/completions` apply. With "
    "`stream: true` the answer is the Responses event stream, `response.created` to `response.completed`, text "
    "and function-call arguments as the model sends them."
)


def request_of(data: dict[str, Any]) -> ResponseRequest:
    chat = data["chat"]
    tools = data.get("tools") or []
    text_format = (data.get("text") or {}).get("format") or {"type": "text"}
    echo = {
        "previous_response_id": data.get("previous_response_id"),
        "instructions": data.get("instructions"),
        "metadata": data.get("metadata") or {},
        "store": data["store"],
        "temperature": data.get("temperature"),
        "top_p": data.get("top_p"),
        "max_output_tokens": data.get("max_output_tokens"),
        "tools": tools,
        "tool_choice": data.get("tool_choice") or "auto",
        "parallel_tool_calls": data.get("parallel_tool_calls", True) is not False,
        "text": {"format": text_format},
        "reasoning": data.get("reasoning"),
        "truncation": data["truncation"],
        "user": data.get("user"),
        "safety_identifier": data.get("safety_identifier"),
        "conversation": {"id": data["conversation"]} if data.get("conversation") else None,
    }
    options = ChatOptions(data["model"], data.get("temperature"), data.get("max_output_tokens"), data["params"])
    return ResponseRequest(
        model=data["model"],
        messages=chat["messages"],
        options=options,
        previous_response_id=data.get("previous_response_id"),
        conversation=data.get("conversation"),
        store=data["store"],
        echo=echo,
        input_items=data["input_items"],
        truncation=data["truncation"] == "auto",
    )


def response_replay(request: Request, stored: StoredResponse) -> Response | StreamingHttpResponse:
    """A retry's answer from the stored response, as JSON or as the stream the retry asks for."""
    if not BooleanField().to_internal_value(request.data.get("stream", False)):
        return Response(stored.body, status=stored.status)
    return StreamingHttpResponse(replayed_events(stored.body), content_type="text/event-stream", headers=SSE_HEADERS)


class ResponsesView(OpenAIView):
    @idempotent(replay=response_replay)
    @extend_schema(
        tags=[TAG],
        summary="Create a response (OpenAI's Responses API)",
        operation_id="v1_responses_create",
        description=DESCRIPTION,
        request=serializers.ResponseCreateSerializer,
        responses={
            200: OpenApiResponse(serializers.ResponseSerializer, description="The response (or an event stream)."),
            **openai_errors(400, 401, 404, 409, 415, 429, 502, 503, 504),
        },
        examples=[
            OpenApiExample(
                "A question",
                value={"model": "openai/gpt-oss-20b", "input": "Hello!"},
                request_only=True,
            ),
            OpenApiExample(
                "The next turn of a chain",
                value={"model": "openai/gpt-oss-20b", "input": "And then?", "previous_response_id": "resp_123"},
                request_only=True,
            ),
        ],
    )
    def post(self, request: Request, claim: Claim | None) -> Response | StreamingHttpResponse:
        with lent_serializer(serializers.ResponseCreateSerializer, request.data) as body:
            body.is_valid(raise_exception=True)
            data = body.validated_data
        asked = {
            "admin": request.user,
            "request": request_of(data),
            "budget_owners": request_budget_owners(request),
            "leases": claim_leases(claim),
        }
        if not data["stream"]:
            created = response_create(**asked)
            return Response(created, headers=rate_limit_headers(request.user))
        pieces = response_stream(**asked)
        start = next(pieces)  # errors before the first piece still get their own HTTP status
        pieces = recorded(claim, pieces, lambda finished: finished)
        events = response_events(start, next(pieces), pieces)
        headers = {**SSE_HEADERS, **rate_limit_headers(request.user)}
        return StreamingHttpResponse(events, content_type="text/event-stream", headers=headers)


class ResponseDetailView(OpenAIView):
    @extend_schema(
        tags=[TAG],
        summary="A stored response (OpenAI's Responses API)",
        operation_id="v1_responses_retrieve",
        responses={200: serializers.ResponseSerializer, **openai_errors(401, 404, 503)},
    )
    def get(self, request: Request, response_id: str) -> Response:
        return Response(response_get(admin=request.user, response_id=response_id))

    @extend_schema(
        tags=[TAG],
        summary="Delete a stored response: it can no longer be retrieved or continued",
        operation_id="v1_responses_destroy",
        responses={200: serializers.ResponseDeletedSerializer, **openai_errors(401, 404, 503)},
    )
    @audited("response.deleted", target=url_argument("response_id"))
    def delete(self, request: Request, response_id: str) -> Response:
        response_delete(admin=request.user, response_id=response_id)
        return Response({"id": response_id, "object": "response", "deleted": True})


class ResponseInputItemsView(OpenAIView):
    @extend_schema(
        tags=[TAG],
        summary="A stored response's input items, a page of them (OpenAI's Responses API)",
        operation_id="v1_responses_input_items_list",
        parameters=[serializers.InputItemsQuerySerializer],
        responses={200: serializers.InputItemListSerializer, **openai_errors(400, 401, 404, 503)},
    )
    def get(self, request: Request, response_id: str) -> Response:
        query = serializers.InputItemsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        asked = query.validated_data
        items = response_input_items(
            admin=request.user,
            response_id=response_id,
            after=asked.get("after"),
            limit=asked["limit"],
            order=asked["order"],
        )
        return Response(items)
