"""What `/chat/` and `/admin/test-chat` answer: a turn (conversations.turns) in the shape of their replies, and
the writes on stored sessions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from accounts.budgets import BudgetOwner
from accounts.models import AdminUser
from conversations.history import MAX_STORED_MESSAGES, message
from conversations.history.base import StoreOptions
from conversations.limits import turn_hold_seconds
from conversations.session_ids import new_session_id
from conversations.stores import history_store
from conversations.turns import ChatOptions, Turn, TurnResult, turn_answer, turn_stream
from core.exceptions import ServiceError
from core.leases import Lease
from llm_provider.services import PROVIDER
from llm_provider.types import StreamDelta


@dataclass(frozen=True)
class ChatReply:
    response: str
    session_id: str
    llm_provider: str
    model: str
    username: str
    usage: dict[str, int]  # this turn's tokens
    session_usage: dict[str, int]  # the session's tokens and requests


def chat_turn(
    *,
    admin: AdminUser,
    session_id: str,
    text: str,
    options: ChatOptions,
    budget_owners: tuple[BudgetOwner, ...],
    leases: tuple[Lease, ...] = (),
) -> Turn:
    return Turn(
        admin=admin,
        messages=[{"role": "user", "content": text}],
        session_id=session_id,
        options=options,
        budget_owners=budget_owners,
        leases=leases,
    )


def chat_reply(turn: Turn, result: TurnResult) -> ChatReply:
    assert result.session_id is not None and result.session_usage is not None  # a chat always has a session
    return ChatReply(
        response=result.completion.content,
        session_id=result.session_id,
        llm_provider=PROVIDER,
        model=result.completion.model,
        username=turn.admin.username,
        usage={name: value for name, value in result.usage.items() if name != "requests"},
        session_usage=result.session_usage,
    )


def chat_send(turn: Turn) -> ChatReply:
    return chat_reply(turn, turn_answer(turn))


def chat_stream(turn: Turn) -> Iterator[StreamDelta | ChatReply]:
    """The turn's pieces, then its ChatReply; see turn_stream."""
    events = turn_stream(turn)
    try:
        for item in events:
            yield chat_reply(turn, item) if isinstance(item, TurnResult) else item
    finally:
        events.close()


def redo_turn(
    *,
    admin: AdminUser,
    session_id: str,
    text: str | None,
    options: ChatOptions,
    budget_owners: tuple[BudgetOwner, ...],
    leases: tuple[Lease, ...] = (),
) -> Turn:
    """Regenerate (no text: the last user message answered again) or edit (its text replaced), in a turn that
    replaces the session's last exchange."""
    messages = [] if text is None else [{"role": "user", "content": text}]
    return Turn(admin, messages, session_id, options, redo=True, budget_owners=budget_owners, leases=leases)


def session_delete(*, admin: AdminUser, session_id: str) -> bool:
    return history_store().delete(admin.id, session_id)


class SessionExists(ServiceError):
    status_code = 409
    code = "session_exists"


def session_import(*, admin: AdminUser, document: dict[str, Any]) -> str:
    """Stores an exported session (validated) under its `session_id`, or a new one; returns the id. Under the
    session's lock and admitted like a new chat session (the per-admin and store caps), all or nothing; the
    session keeps its usage, which does not count again in the admin's totals."""
    session_id = document.get("session_id") or new_session_id()
    messages = [
        message(m["role"], m["content"], tool_calls=m.get("tool_calls"), tool_call_id=m.get("tool_call_id"))
        | ({"at": m["created_at"]} if "created_at" in m else {})
        for m in document["messages"]
    ]
    with history_store().session_turn(admin.id, session_id, hold_seconds=turn_hold_seconds()) as held:
        if held.conversation is not None:
            raise SessionExists(f"The session '{session_id}' exists; delete it first or import under another id.")
        usage = document.get("usage") or {}
        options = StoreOptions(
            created_at=document.get("created_at"), summary=document.get("summary") or None, admin_usage=False
        )
        held.finish(messages[-MAX_STORED_MESSAGES:], usage, options)
    return session_id
