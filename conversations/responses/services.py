"""The Responses use cases: create (JSON or streamed), retrieve, delete. A chain of stored responses is one stored
session, named after its first response: each response's turn appends its input and reply to that session, and its
reply keeps the response's id, so a response that continues the chain checks (under the session's lock) that it
continues from the session's last reply; one that continues from an earlier reply starts a new session, a copy of
the chain up to that reply (a branch). TTL, trimming, summaries, per-admin isolation and caps, budgets, usage
and metrics are those of every turn (conversations.turns)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import chain
from typing import Any

from accounts.budgets import BudgetOwner
from accounts.models import AdminUser
from conversations.history import Conversation
from conversations.history.base import StoreOptions
from conversations.limits import turn_hold_seconds
from conversations.responses.conversations_api import conversation_check
from conversations.responses.items import call_ids, new_id, page, response_body, unanswered_outputs
from conversations.responses.store import StoredResponse, response_store
from conversations.services import completion_model_check
from conversations.stores import history_store
from conversations.summaries import summary_message
from conversations.trimming import stored_message_for_upstream
from conversations.turns import ChatOptions, HistoryMoved, Turn, TurnResult, new_turn_messages, turn_answer, turn_stream
from core.exceptions import ServiceError
from core.leases import Lease
from llm_provider.types import StreamDelta


class ResponseNotFound(ServiceError):
    status_code = 404
    code = "not_found"


class PreviousNotFound(ResponseNotFound):
    param = "previous_response_id"


class InvalidInput(ServiceError):
    status_code = 400
    code = "invalid"
    param = "input"


@dataclass(frozen=True)
class ResponseRequest:
    """A validated `POST /v1/responses` (see serializers.ResponseCreateSerializer)."""

    model: str
    messages: list[dict[str, Any]]  # the input as chat messages, `instructions` first
    options: ChatOptions
    previous_response_id: str | None
    conversation: str | None
    store: bool
    echo: dict[str, Any]  # what the response object repeats of the request
    input_items: list[dict[str, Any]]  # the input as items with ids, for `input_items`


@dataclass(frozen=True)
class PlannedResponse:
    response_id: str
    created_at: int
    turn: Turn
    request: ResponseRequest
    previous: StoredResponse | None = None

    def body(self, result: TurnResult) -> dict[str, Any]:
        return response_body(
            self.response_id,
            created_at=self.created_at,
            model=self.request.model,
            echo=self.request.echo,
            completion=result.completion,
        )

    def start_body(self) -> dict[str, Any]:
        return response_body(
            self.response_id, created_at=self.created_at, model=self.request.model, echo=self.request.echo
        )

    def keep(self, result: TurnResult) -> dict[str, Any]:
        """The response object, stored when the request asked for it."""
        body = self.body(result)
        if self.request.store and self.turn.session_id is not None:
            response_store().put(
                self.turn.admin.id,
                self.response_id,
                StoredResponse(self.turn.session_id, body, self.request.input_items),
            )
        return body


def _not_found(response_id: str, kind: type[ResponseNotFound] = ResponseNotFound) -> ResponseNotFound:
    return kind(
        f"No response '{response_id}' here: it expired, was deleted, was created with store: false, or belongs "
        "to another admin."
    )


def _previous(admin: AdminUser, response_id: str) -> StoredResponse:
    previous = response_store().get(admin.id, response_id)
    if previous is None:
        raise _not_found(response_id, PreviousNotFound)
    return previous


def _chain_until(admin: AdminUser, previous_id: str, previous: StoredResponse) -> Conversation:
    """The chain's session as it was up to and including `previous_id`'s reply."""
    conversation = history_store().get(admin.id, previous.session_id)
    if conversation is None:
        raise PreviousNotFound(f"The conversation of '{previous_id}' has expired or was deleted.")
    end = next((i for i, m in enumerate(conversation.messages) if m.get("id") == previous_id), None)
    if end is None:
        raise PreviousNotFound(f"The history up to '{previous_id}' is no longer stored.")
    return replace(conversation, messages=conversation.messages[: end + 1])


def _chain_history(admin: AdminUser, previous_id: str, previous: StoredResponse) -> list[dict[str, Any]]:
    """A chain's history up to and including `previous_id`'s reply, as the upstream takes it: for a response that
    is not stored, which reads the chain and adds nothing to it."""
    conversation = _chain_until(admin, previous_id, previous)
    summary = [summary_message(conversation.summary)] if conversation.summary else []
    return [*summary, *(stored_message_for_upstream(m) for m in conversation.messages)]


def _forked(planned: PlannedResponse) -> PlannedResponse:
    """A response that continues its chain from an earlier response than the latest: its turn goes to a new
    session, named after it, which starts as the chain was up to that response (its summary too)."""
    turn, previous_id = planned.turn, planned.request.previous_response_id
    assert planned.previous is not None and previous_id is not None  # only a continuation is forked
    branch = _chain_until(turn.admin, previous_id, planned.previous)
    store = history_store()
    with store.session_turn(turn.admin.id, planned.response_id, hold_seconds=turn_hold_seconds()) as held:
        options = StoreOptions(summary=branch.summary or None, admin_usage=False)
        held.finish(branch.messages, {}, options)
    return replace(planned, turn=replace(turn, session_id=planned.response_id))


def _planned(
    admin: AdminUser, request: ResponseRequest, budget_owners: tuple[BudgetOwner, ...], leases: tuple[Lease, ...]
) -> PlannedResponse:
    completion_model_check(request.model)
    response_id = new_id("resp")
    previous = _previous(admin, request.previous_response_id) if request.previous_response_id else None
    earlier_calls = call_ids(previous.body) if previous else set()
    # In a conversation the calls answered may be any of its items': the upstream judges those.
    unanswered = [] if request.conversation else unanswered_outputs(request.messages, earlier_calls)
    if unanswered:
        raise InvalidInput(f"No function_call with call_id '{unanswered[0]}' precedes its function_call_output.")
    common = {"options": request.options, "budget_owners": budget_owners, "leases": leases}
    if request.conversation is not None:
        conversation_check(admin, request.conversation)
        if not new_turn_messages(request.messages):
            raise InvalidInput("Send a user message, or the output of the conversation's last function calls.")
        turn = Turn(admin, request.messages, request.conversation, **common, reply_id=response_id)
    elif not request.store:
        history = _chain_history(admin, request.previous_response_id, previous) if previous else []
        leading = [m for m in request.messages[:1] if m["role"] == "system"]  # the instructions
        messages = [*leading, *history, *request.messages[len(leading) :]]
        turn = Turn(admin, messages, None, **common)
    else:
        if not new_turn_messages(request.messages):
            raise InvalidInput("Send a user message, or the output of the previous response's function calls.")
        session_id = previous.session_id if previous else response_id
        after = request.previous_response_id if previous else None
        turn = Turn(admin, request.messages, session_id, **common, after=after, reply_id=response_id)
    return PlannedResponse(response_id, int(time.time()), turn, request, previous)


def response_create(
    *,
    admin: AdminUser,
    request: ResponseRequest,
    budget_owners: tuple[BudgetOwner, ...],
    leases: tuple[Lease, ...] = (),
) -> dict[str, Any]:
    """`POST /v1/responses`: the response object, after its turn (stored with `store`)."""
    planned = _planned(admin, request, budget_owners, leases)
    try:
        result = turn_answer(planned.turn)
    except HistoryMoved:
        planned = _forked(planned)
        result = turn_answer(planned.turn)
    return planned.keep(result)


def response_stream(
    *,
    admin: AdminUser,
    request: ResponseRequest,
    budget_owners: tuple[BudgetOwner, ...],
    leases: tuple[Lease, ...] = (),
) -> tuple[PlannedResponse, Iterator[StreamDelta | dict[str, Any]]]:
    """The response as it comes: the reply's pieces, then the response object once the turn is stored. The rules
    are checked here, before the first piece is asked for."""
    planned = _planned(admin, request, budget_owners, leases)
    return planned, _streamed(planned)


def _streamed(planned: PlannedResponse) -> Iterator[StreamDelta | dict[str, Any]]:
    events = turn_stream(planned.turn)
    try:
        first = next(events)
    except HistoryMoved:
        planned = _forked(planned)
        events = turn_stream(planned.turn)
        first = next(events)
    try:
        for item in chain([first], events):
            yield planned.keep(item) if isinstance(item, TurnResult) else item
    finally:
        events.close()


def response_get(*, admin: AdminUser, response_id: str) -> dict[str, Any]:
    stored = response_store().get(admin.id, response_id)
    if stored is None:
        raise _not_found(response_id)
    return stored.body


def response_input_items(
    *, admin: AdminUser, response_id: str, after: str | None, limit: int, order: str
) -> dict[str, Any]:
    """The input items of a stored response (its own, not its chain's), a page of them."""
    stored = response_store().get(admin.id, response_id)
    if stored is None:
        raise _not_found(response_id)
    return page(stored.input_items, after=after, limit=limit, order=order)


def response_delete(*, admin: AdminUser, response_id: str) -> None:
    """Forgets the response: it can no longer be retrieved or continued. Its chain's session keeps the turns."""
    if not response_store().delete(admin.id, response_id):
        raise _not_found(response_id)
