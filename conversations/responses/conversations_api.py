"""OpenAI's Conversations API on the conversation store: a conversation `conv_...` is the stored session of the
same id, its items that session's messages; a response with `conversation` is a turn of that session."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from accounts.models import AdminUser
from conversations.history.base import SessionTurn, StoreOptions, message
from conversations.limits import turn_hold_seconds
from conversations.responses.items import function_call_item, new_id, page
from conversations.responses.store import CONVERSATION_RECORD, StoredConversation, conversation_put, stored_conversation
from conversations.stores import history_store
from core.exceptions import ServiceError


class ConversationNotFound(ServiceError):
    status_code = 404
    code = "not_found"


class ItemNotFound(ConversationNotFound):
    pass


def _not_found(conversation_id: str) -> ConversationNotFound:
    return ConversationNotFound(
        f"No conversation '{conversation_id}' here: it expired, was deleted, or belongs to another admin."
    )


def conversation_body(conversation_id: str, stored: StoredConversation) -> dict[str, Any]:
    return {
        "id": conversation_id,
        "object": "conversation",
        "created_at": stored.created_at,
        "metadata": stored.metadata,
    }


def conversation_get(*, admin: AdminUser, conversation_id: str) -> dict[str, Any]:
    stored = stored_conversation(admin.id, conversation_id)
    if stored is None:
        raise _not_found(conversation_id)
    return conversation_body(conversation_id, stored)


def conversation_held(held: SessionTurn, conversation_id: str) -> StoredConversation:
    """A turn of a conversation (read with CONVERSATION_RECORD) goes on only while the conversation is kept."""
    stored = StoredConversation.decoded(held.record)
    if stored is None:
        raise _not_found(conversation_id)
    return stored


def _append(
    admin: AdminUser, conversation_id: str, messages: list[dict[str, Any]], *, new: StoredConversation | None = None
) -> list[dict[str, Any]]:
    """Items added by the client, under the session's lock and its caps, counting no usage; the items stored.
    `new`: the conversation is created with them (else it must be kept)."""
    stored = [message(**m) for m in messages]
    store = history_store()
    record = None if new else CONVERSATION_RECORD
    with store.session_turn(admin.id, conversation_id, hold_seconds=turn_hold_seconds(), record=record) as held:
        if new is None:
            conversation_held(held, conversation_id)
        created = (CONVERSATION_RECORD, new.encoded()) if new else None
        held.finish(stored, {}, StoreOptions(admin_usage=False, record=created))
    return [item for m in stored for item in items_of(m)]


def conversation_create(*, admin: AdminUser, messages: list[dict[str, Any]], metadata: dict[str, str]) -> dict:
    conversation_id = new_id("conv")
    stored = StoredConversation(int(time.time()), metadata)
    if messages:
        _append(admin, conversation_id, messages, new=stored)
    else:
        conversation_put(admin.id, conversation_id, stored)
    return conversation_body(conversation_id, stored)


def conversation_update(*, admin: AdminUser, conversation_id: str, metadata: dict[str, str]) -> dict[str, Any]:
    stored = stored_conversation(admin.id, conversation_id)
    if stored is None:
        raise _not_found(conversation_id)
    updated = StoredConversation(stored.created_at, metadata)
    conversation_put(admin.id, conversation_id, updated)
    return conversation_body(conversation_id, updated)


def conversation_delete(*, admin: AdminUser, conversation_id: str) -> None:
    """The conversation with its items and the responses stored in it (records of its session)."""
    if stored_conversation(admin.id, conversation_id) is None:
        raise _not_found(conversation_id)
    history_store().delete(admin.id, conversation_id)


def items_of(stored: dict[str, Any]) -> list[dict[str, Any]]:
    """A stored message as conversation items (an assistant's text and its function calls are items of their own);
    their ids are made from what the message is, so they stay the same while it is kept."""
    digest = hashlib.sha256(f"{stored['at']}:{stored['role']}:{stored['content']}".encode()).hexdigest()[:48]
    role = stored["role"]
    if role == "tool":
        fields = {"call_id": stored.get("tool_call_id"), "output": stored["content"], "status": "completed"}
        return [{"id": f"fco_{digest}", "type": "function_call_output", **fields}]
    items = []
    if stored["content"] or not stored.get("tool_calls"):
        part = "output_text" if role == "assistant" else "input_text"
        content = [{"type": part, "text": stored["content"]}]
        items.append(
            {"id": f"msg_{digest}", "type": "message", "role": role, "status": "completed", "content": content}
        )
    items.extend(function_call_item(call) for call in stored.get("tool_calls") or [])
    return items


def conversation_items(
    *, admin: AdminUser, conversation_id: str, after: str | None, limit: int, order: str
) -> dict[str, Any]:
    if stored_conversation(admin.id, conversation_id) is None:
        raise _not_found(conversation_id)
    stored = history_store().get(admin.id, conversation_id)
    items = [item for m in stored.messages for item in items_of(m)] if stored else []
    return page(items, after=after, limit=limit, order=order)


def conversation_items_add(*, admin: AdminUser, conversation_id: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    items = _append(admin, conversation_id, messages)
    return page(items, after=None, limit=len(items) or 1, order="asc")


def conversation_item(*, admin: AdminUser, conversation_id: str, item_id: str) -> dict[str, Any]:
    if stored_conversation(admin.id, conversation_id) is None:
        raise _not_found(conversation_id)
    stored = history_store().get(admin.id, conversation_id)
    for stored_message in stored.messages if stored else []:
        for item in items_of(stored_message):
            if item["id"] == item_id:
                return item
    raise ItemNotFound(f"No item '{item_id}' in conversation '{conversation_id}'.")


def conversation_item_delete(*, admin: AdminUser, conversation_id: str, item_id: str) -> dict[str, Any]:
    """Removes the message that holds the item (an assistant's text and function calls go together), under the
    session's lock: the messages after it are written back in their place."""
    store = history_store()
    hold_seconds = turn_hold_seconds()
    with store.session_turn(admin.id, conversation_id, hold_seconds=hold_seconds, record=CONVERSATION_RECORD) as held:
        kept = conversation_held(held, conversation_id)
        messages = held.conversation.messages if held.conversation else []
        index = next((i for i, m in enumerate(messages) if any(item["id"] == item_id for item in items_of(m))), None)
        if index is None:
            raise ItemNotFound(f"No item '{item_id}' in conversation '{conversation_id}'.")
        rest = messages[index + 1 :]
        held.finish(rest, {}, StoreOptions(replace_last=len(messages) - index, admin_usage=False))
    return conversation_body(conversation_id, kept)
