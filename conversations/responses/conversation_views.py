"""`/v1/conversations`: OpenAI's Conversations API, in its shapes and error shape; the use cases are in
conversations.responses.conversations_api."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.audit_views import audited, url_argument
from conversations.idempotency import Claim, idempotent
from conversations.openai.views import TAG, OpenAIView, openai_errors
from conversations.responses import conversations_api as api
from conversations.responses import serializers

DESCRIPTION = (
    "OpenAI's Conversations API: a conversation `conv_...` is the stored session of the same id (listed by "
    "`/chat/sessions`, under the same TTL, trimming, summaries and caps); its items are that session's messages, "
    "and a response created with `conversation` adds its input and output to it."
)


def _valid(serializer_class: type, data: object) -> dict:
    body = serializer_class(data=data)
    body.is_valid(raise_exception=True)
    return body.validated_data


class ConversationsView(OpenAIView):
    @idempotent()
    @extend_schema(
        tags=[TAG],
        summary="Create a conversation (OpenAI's Conversations API)",
        operation_id="v1_conversations_create",
        description=DESCRIPTION,
        request=serializers.ConversationCreateSerializer,
        responses={200: serializers.ConversationSerializer, **openai_errors(400, 401, 409, 415, 429, 503)},
    )
    def post(self, request: Request, claim: Claim | None) -> Response:  # the decorator keeps the answer
        data = _valid(serializers.ConversationCreateSerializer, request.data)
        created = api.conversation_create(
            admin=request.user, messages=data.get("items") or [], metadata=data.get("metadata") or {}
        )
        return Response(created)


class ConversationDetailView(OpenAIView):
    @extend_schema(
        tags=[TAG],
        summary="A conversation",
        operation_id="v1_conversations_retrieve",
        responses={200: serializers.ConversationSerializer, **openai_errors(401, 404, 503)},
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        return Response(api.conversation_get(admin=request.user, conversation_id=conversation_id))

    @extend_schema(
        tags=[TAG],
        summary="Update a conversation's metadata",
        operation_id="v1_conversations_update",
        request=serializers.ConversationUpdateSerializer,
        responses={200: serializers.ConversationSerializer, **openai_errors(400, 401, 404, 415, 503)},
    )
    def post(self, request: Request, conversation_id: str) -> Response:
        data = _valid(serializers.ConversationUpdateSerializer, request.data)
        updated = api.conversation_update(admin=request.user, conversation_id=conversation_id, **data)
        return Response(updated)

    @extend_schema(
        tags=[TAG],
        summary="Delete a conversation and its items",
        operation_id="v1_conversations_destroy",
        responses={200: serializers.ConversationDeletedSerializer, **openai_errors(401, 404, 503)},
    )
    @audited("session.deleted", target=url_argument("conversation_id"))
    def delete(self, request: Request, conversation_id: str) -> Response:
        api.conversation_delete(admin=request.user, conversation_id=conversation_id)
        return Response({"id": conversation_id, "object": "conversation.deleted", "deleted": True})


class ConversationItemsView(OpenAIView):
    @extend_schema(
        tags=[TAG],
        summary="A conversation's items, a page of them",
        operation_id="v1_conversations_items_list",
        parameters=[serializers.InputItemsQuerySerializer],
        responses={200: serializers.InputItemListSerializer, **openai_errors(400, 401, 404, 503)},
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        query = _valid(serializers.InputItemsQuerySerializer, request.query_params)
        items = api.conversation_items(
            admin=request.user,
            conversation_id=conversation_id,
            after=query.get("after"),
            limit=query["limit"],
            order=query["order"],
        )
        return Response(items)

    @idempotent()
    @extend_schema(
        tags=[TAG],
        summary="Add items to a conversation",
        operation_id="v1_conversations_items_create",
        request=serializers.ConversationItemsCreateSerializer,
        responses={200: serializers.InputItemListSerializer, **openai_errors(400, 401, 404, 409, 415, 429, 503)},
    )
    def post(self, request: Request, conversation_id: str, claim: Claim | None) -> Response:
        data = _valid(serializers.ConversationItemsCreateSerializer, request.data)
        added = api.conversation_items_add(admin=request.user, conversation_id=conversation_id, messages=data["items"])
        return Response(added)


class ConversationItemView(OpenAIView):
    @extend_schema(
        tags=[TAG],
        summary="One item of a conversation",
        operation_id="v1_conversations_items_retrieve",
        responses={200: serializers.OutputItemSerializer, **openai_errors(401, 404, 503)},
    )
    def get(self, request: Request, conversation_id: str, item_id: str) -> Response:
        return Response(api.conversation_item(admin=request.user, conversation_id=conversation_id, item_id=item_id))

    @extend_schema(
        tags=[TAG],
        summary="Delete an item of a conversation: the conversation as it is after",
        operation_id="v1_conversations_items_destroy",
        responses={200: serializers.ConversationSerializer, **openai_errors(401, 404, 409, 503)},
    )
    def delete(self, request: Request, conversation_id: str, item_id: str) -> Response:
        deleted = api.conversation_item_delete(admin=request.user, conversation_id=conversation_id, item_id=item_id)
        return Response(deleted)
