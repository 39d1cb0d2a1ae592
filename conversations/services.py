"""The use cases of the conversations app, one service each: a chat (JSON or streamed), a redo of the last
exchange (regenerate, edit), a completion (`/v1`, JSON or streamed), the admin's test chat, and the writes on stored
sessions. Each builds its turn (conversations.turns) from what its view parsed, applies the rules of its use case,
and answers in its reply's shape; views parse and render."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from accounts.budgets import BudgetOwner
from accounts.models import AdminUser
from conversations.history import MAX_STORED_MESSAGES, message
from conversations.history.base import StoreOptions
from conversations.limits import turn_hold_seconds
from conversations.session_ids import new_session_id
from conversations.stores import history_store
from conversations.turns import (
    ChatOptions,
    Turn,
    TurnResult,
    new_turn_messages,
    turn_answer,
    turn_stream,
)
from core.exceptions import ServiceError
from core.leases import Lease
from llm_provider.services import PROVIDER
from llm_provider.types import StreamDelta


class ModelNotFound(ServiceError):
    status_code = 404
    code = "model_not_found"
    param = "model"


class NoNewMessage(ServiceError):
    status_code = 400
    code = "invalid"
    param = "messages"


@dataclass(frozen=True)
class ChatReply:
    response: str
    session_id: str
    llm_provider: str
    model: str
    username: str
    usage: dict[str, int]  # this turn's tokens
    session_usage: dict[str, int]  # the session's tokens and requests


def _chat_reply(turn: Turn, result: TurnResult) -> ChatReply:
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


def _chat_replies(turn: Turn) -> Iterator[StreamDelta | ChatReply]:
    """The turn's pieces, then its ChatReply; see turn_stream."""
    events = turn_stream(turn)
    try:
        for item in events:
            yield _chat_reply(turn, item) if isinstance(item, TurnResult) else item
    finally:
        events.close()


def _chat_turn(
    *,
    admin: AdminUser,
    session_id: str | None,
    text: str,
    options: ChatOptions,
    budget_owners: tuple[BudgetOwner, ...],
    leases: tuple[Lease, ...],
) -> Turn:
    """A `/chat/` turn: the user's message to the session (a new session without an id)."""
    messages = [{"role": "user", "content": text}]
    return Turn(admin, messages, session_id or new_session_id(), options, budget_owners=budget_owners, leases=leases)


def chat_send(
    *,
    admin: AdminUser,
    session_id: str | None,
    text: str,
    options: ChatOptions,
    budget_owners: tuple[BudgetOwner, ...],
    leases: tuple[Lease, ...] = (),
) -> ChatReply:
    """`/chat/`: the user's message answered in its session. `leases`: what the request holds that its turn keeps
    too (its Idempotency-Key's claim)."""
    turn = _chat_turn(
        admin=admin, session_id=session_id, text=text, options=options, budget_owners=budget_owners, leases=leases
    )
    return _chat_reply(turn, turn_answer(turn))


def chat_stream(
    *,
    admin: AdminUser,
    session_id: str | None,
    text: str,
    options: ChatOptions,
    budget_owners: tuple[BudgetOwner, ...],
    leases: tuple[Lease, ...] = (),
) -> Iterator[StreamDelta | ChatReply]:
    """chat_send's answer as it comes: the reply's pieces, then its ChatReply once the turn is stored."""
    turn = _chat_turn(
        admin=admin, session_id=session_id, text=text, options=options, budget_owners=budget_owners, leases=leases
    )
    return _chat_replies(turn)


def _redo_turn(
    *,
    admin: AdminUser,
    session_id: str,
    text: str | None,
    options: ChatOptions,
    budget_owners: tuple[BudgetOwner, ...],
    leases: tuple[Lease, ...],
) -> Turn:
    messages = [] if text is None else [{"role": "user", "content": text}]
    return Turn(admin, messages, session_id, options, redo=True, budget_owners=budget_owners, leases=leases)


def redo_send(
    *,
    admin: AdminUser,
    session_id: str,
    text: str | None,
    options: ChatOptions,
    budget_owners: tuple[BudgetOwner, ...],
    leases: tuple[Lease, ...] = (),
) -> ChatReply:
    """Regenerate (no text: the last user message answered again) or edit (its text replaced), in a turn that
    replaces the session's last exchange."""
    turn = _redo_turn(
        admin=admin, session_id=session_id, text=text, options=options, budget_owners=budget_owners, leases=leases
    )
    return _chat_reply(turn, turn_answer(turn))


def redo_stream(
    *,
    admin: AdminUser,
    session_id: str,
    text: str | None,
    options: ChatOptions,
    budget_owners: tuple[BudgetOwner, ...],
    leases: tuple[Lease, ...] = (),
) -> Iterator[StreamDelta | ChatReply]:
    """redo_send's answer as it comes, as chat_stream's."""
    turn = _redo_turn(
        admin=admin, session_id=session_id, text=text, options=options, budget_owners=budget_owners, leases=leases
    )
    return _chat_replies(turn)


def completion_model_check(model: str) -> None:
    """`/v1` answers with CHAT_ALLOWED_MODELS only (ModelNotFound)."""
    if model not in settings.CHAT_ALLOWED_MODELS:
        raise ModelNotFound(f"The model '{model}' does not exist here; see GET /v1/models.")


def _completion_turn(
    *,
    admin: AdminUser,
    session_id: str | None,
    messages: list[dict[str, Any]],
    options: ChatOptions,
    budget_owners: tuple[BudgetOwner, ...],
    leases: tuple[Lease, ...],
) -> Turn:
    """A `/v1` turn: stateless without a session; with one, it must bring something new to store."""
    assert options.model is not None  # a completion always names its model
    completion_model_check(options.model)
    if session_id and not new_turn_messages(messages):
        raise NoNewMessage("With X-Session-Id, send a user message, or the results of the last reply's tool calls.")
    return Turn(admin, messages, session_id, options, budget_owners=budget_owners, leases=leases)


def completion_send(
    *,
    admin: AdminUser,
    session_id: str | None,
    messages: list[dict[str, Any]],
    options: ChatOptions,
    budget_owners: tuple[BudgetOwner, ...],
    leases: tuple[Lease, ...] = (),
) -> TurnResult:
    """`/v1/chat/completions`: `messages` answered, in the session's history when there is one."""
    turn = _completion_turn(
        admin=admin,
        session_id=session_id,
        messages=messages,
        options=options,
        budget_owners=budget_owners,
        leases=leases,
    )
    return turn_answer(turn)


def completion_stream(
    *,
    admin: AdminUser,
    session_id: str | None,
    messages: list[dict[str, Any]],
    options: ChatOptions,
    budget_owners: tuple[BudgetOwner, ...],
    leases: tuple[Lease, ...] = (),
) -> Iterator[StreamDelta | TurnResult]:
    """completion_send's answer as it comes: the pieces, then the TurnResult once the turn is stored (turn_stream).
    The rules are checked here, before the first piece is asked for."""
    turn = _completion_turn(
        admin=admin,
        session_id=session_id,
        messages=messages,
        options=options,
        budget_owners=budget_owners,
        leases=leases,
    )
    return turn_stream(turn)


@dataclass(frozen=True)
class ChatTestResult:
    response: str
    model: str
    latency_ms: float


def admin_test_chat(*, admin: AdminUser, text: str, budget_owners: tuple[BudgetOwner, ...]) -> ChatTestResult:
    """`/admin/test-chat`: one message with SYSTEM_PROMPT and no session, under the chat limits, its usage counted."""
    started = time.perf_counter()
    result = turn_answer(Turn(admin=admin, messages=[{"role": "user", "content": text}], budget_owners=budget_owners))
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return ChatTestResult(response=result.completion.content, model=result.completion.model, latency_ms=latency_ms)


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
        usage = dict(document.get("usage") or {})
        # An export carries no prices: what the imported calls cost is unknown, not nothing.
        usage["unpriced_requests"] = usage.get("requests", 0)
        options = StoreOptions(
            created_at=document.get("created_at"), summary=document.get("summary") or None, admin_usage=False
        )
        held.finish(messages[-MAX_STORED_MESSAGES:], usage, options)
    return session_id
