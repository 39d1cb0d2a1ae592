"""The Responses use cases: create (JSON or streamed), retrieve, delete. A chain of stored responses is one stored
session, which their ids name (conversations.responses.store): each response's turn appends its input and reply
to that session, and its reply keeps the response's id, so a response that continues the chain checks (under the
session's lock) that it continues from the session's last reply; one that continues from an earlier reply starts a
new session, a copy of the chain up to that reply (a branch). The response itself is a record of the session, read
and written by the turn's own round trips. TTL, trimming, summaries, per-admin isolation and caps, budgets, usage
and metrics are those of every turn (conversations.turns)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import chain
from typing import Any

from django.conf import settings

from accounts.budgets import BudgetOwner
from accounts.models import AdminUser
from conversations.history import Conversation
from conversations.history.base import SessionTurn, StoreOptions
from conversations.limits import turn_hold_seconds
from conversations.responses.conversations_api import conversation_held
from conversations.responses.items import call_ids, new_id, page, response_body, unanswered_outputs
from conversations.responses.store import (
    CONVERSATION_RECORD,
    StoredResponse,
    new_chain_session,
    new_response_id,
    response_forget,
    session_of,
    stored_response,
)
from conversations.services import completion_model_check
from conversations.stores import history_store
from conversations.summaries import summary_message
from conversations.trimming import stored_message_for_upstream
from conversations.turns import ChatOptions, HistoryMoved, Turn, TurnResult, new_turn_messages, turn_answer, turn_stream
from core.exceptions import ServiceError
from core.leases import Lease
from llm_provider.types import Completion, StreamDelta


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
    truncation: bool = True  # "auto": the history is trimmed as a session's is; "disabled": refused instead


@dataclass
class _Records:
    """The records a Responses turn reads and writes beside its session (TurnRecords): the response it continues,
    or the conversation it joins, checked under the session's lock; the response itself, stored with the turn."""

    response_id: str
    created_at: int
    request: ResponseRequest
    read: str | None
    body: dict[str, Any] | None = None  # the response object, once the turn has its completion

    @property
    def kept(self) -> int:
        """A session keeps its newest MAX_STORED_RESPONSES responses; an older one is then unknown (a 404)."""
        return settings.MAX_STORED_RESPONSES

    def check(self, held: SessionTurn) -> None:
        request = self.request
        if self.read is None:  # a new chain, or a branch (whose previous response was read by the first try)
            return
        if request.conversation is not None:
            conversation_held(held, request.conversation)
        elif request.previous_response_id is not None:
            previous = StoredResponse.decoded(held.record)
            if previous is None:
                raise _not_found(request.previous_response_id, PreviousNotFound)
            _check_outputs(request, call_ids(previous.body))

    def written(self, completion: Completion) -> tuple[str, str] | None:
        self.body = response_body(
            self.response_id,
            created_at=self.created_at,
            model=self.request.model,
            echo=self.request.echo,
            completion=completion,
        )
        if not self.request.store:
            return None
        return self.response_id, StoredResponse(self.body, self.request.input_items).encoded()


@dataclass(frozen=True)
class PlannedResponse:
    turn: Turn
    records: _Records

    def start_body(self) -> dict[str, Any]:
        records = self.records
        return response_body(
            records.response_id, created_at=records.created_at, model=records.request.model, echo=records.request.echo
        )

    def body(self) -> dict[str, Any]:
        """The response object, made (and stored, when the request asked for it) as its turn finished."""
        assert self.records.body is not None  # every turn's finish asks for its record (TurnRecords.written)
        return self.records.body


def _not_found(response_id: str, kind: type[ResponseNotFound] = ResponseNotFound) -> ResponseNotFound:
    return kind(
        f"No response '{response_id}' here: it expired, was deleted, was dropped for newer ones of its session "
        "(MAX_STORED_RESPONSES), was created with store: false, or belongs to another admin."
    )


def _check_outputs(request: ResponseRequest, earlier_calls: set[str]) -> None:
    unanswered = unanswered_outputs(request.messages, earlier_calls)
    if unanswered:
        raise InvalidInput(f"No function_call with call_id '{unanswered[0]}' precedes its function_call_output.")


def _chain_until(admin: AdminUser, previous_id: str) -> Conversation:
    """The chain's session as it was up to and including `previous_id`'s reply."""
    session_id = session_of(previous_id)
    conversation = history_store().get(admin.id, session_id) if session_id else None
    if conversation is None:
        raise PreviousNotFound(f"The conversation of '{previous_id}' has expired or was deleted.")
    end = next((i for i, m in enumerate(conversation.messages) if m.get("id") == previous_id), None)
    if end is None:
        raise PreviousNotFound(f"The history up to '{previous_id}' is no longer stored.")
    return replace(conversation, messages=conversation.messages[: end + 1])


def _chain_history(admin: AdminUser, previous_id: str) -> list[dict[str, Any]]:
    """A chain's history up to and including `previous_id`'s reply, as the upstream takes it: for a response that
    is not stored, which reads the chain and adds nothing to it."""
    conversation = _chain_until(admin, previous_id)
    summary = [summary_message(conversation.summary)] if conversation.summary else []
    return [*summary, *(stored_message_for_upstream(m) for m in conversation.messages)]


def _forked(planned: PlannedResponse) -> PlannedResponse:
    """A response that continues its chain from an earlier response than the latest: its turn goes to a new
    session, which starts as the chain was up to that response (its summary too), and its id names that one."""
    turn, previous_id = planned.turn, planned.records.request.previous_response_id
    assert previous_id is not None  # only a continuation is forked
    branch = _chain_until(turn.admin, previous_id)
    session_id = new_chain_session()
    with history_store().session_turn(turn.admin.id, session_id, hold_seconds=turn_hold_seconds()) as held:
        options = StoreOptions(summary=branch.summary or None, admin_usage=False)
        held.finish(branch.messages, {}, options)
    records = replace(planned.records, response_id=new_response_id(session_id), read=None)
    return PlannedResponse(replace(turn, session_id=session_id, reply_id=records.response_id, records=records), records)


def _planned(
    admin: AdminUser, request: ResponseRequest, budget_owners: tuple[BudgetOwner, ...], leases: tuple[Lease, ...]
) -> PlannedResponse:
    completion_model_check(request.model)
    common = {
        "options": request.options,
        "budget_owners": budget_owners,
        "leases": leases,
        "truncation": request.truncation,
    }
    previous_id, created_at = request.previous_response_id, int(time.time())
    if request.conversation is None and not request.store:
        # Reads the previous response and its chain (two more round trips) and stores nothing.
        previous = _previous(admin, previous_id) if previous_id else None
        _check_outputs(request, call_ids(previous.body) if previous else set())
        history = _chain_history(admin, previous_id) if previous_id else []
        leading = [m for m in request.messages[:1] if m["role"] == "system"]  # the instructions
        messages = [*leading, *history, *request.messages[len(leading) :]]
        records = _Records(new_id("resp"), created_at, request, read=None)
        return PlannedResponse(Turn(admin, messages, None, **common, records=records), records)
    if not new_turn_messages(request.messages):
        raise InvalidInput("Send a user message, or the output of the last response's function calls.")
    if request.conversation is not None:
        session_id, read, after = request.conversation, CONVERSATION_RECORD, None
    elif previous_id is not None:
        session_id, read, after = session_of(previous_id), previous_id, previous_id
        if session_id is None:
            raise _not_found(previous_id, PreviousNotFound)
    else:
        _check_outputs(request, set())
        session_id, read, after = new_chain_session(), None, None
    records = _Records(new_response_id(session_id), created_at, request, read=read)
    turn = Turn(
        admin, request.messages, session_id, **common, after=after, reply_id=records.response_id, records=records
    )
    return PlannedResponse(turn, records)


def _previous(admin: AdminUser, response_id: str) -> StoredResponse:
    previous = stored_response(admin.id, response_id)
    if previous is None:
        raise _not_found(response_id, PreviousNotFound)
    return previous


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
        turn_answer(planned.turn)
    except HistoryMoved:
        planned = _forked(planned)
        turn_answer(planned.turn)
    return planned.body()


def response_stream(
    *,
    admin: AdminUser,
    request: ResponseRequest,
    budget_owners: tuple[BudgetOwner, ...],
    leases: tuple[Lease, ...] = (),
) -> Iterator[StreamDelta | dict[str, Any]]:
    """The response as it comes: its start (the response object in progress), the reply's pieces, then the
    response object once the turn is stored. The rules are checked here and by the first next(), before the
    start: a failure there still gets its own HTTP status."""
    return _streamed(_planned(admin, request, budget_owners, leases))


def _streamed(planned: PlannedResponse) -> Iterator[StreamDelta | dict[str, Any]]:
    events = turn_stream(planned.turn)
    try:
        first = next(events)
    except HistoryMoved:
        planned = _forked(planned)  # a new id: the start is not sent yet
        events = turn_stream(planned.turn)
        first = next(events)
    try:
        yield planned.start_body()
        for item in chain([first], events):
            yield planned.body() if isinstance(item, TurnResult) else item
    finally:
        events.close()


def response_get(*, admin: AdminUser, response_id: str) -> dict[str, Any]:
    stored = stored_response(admin.id, response_id)
    if stored is None:
        raise _not_found(response_id)
    return stored.body


def response_input_items(
    *, admin: AdminUser, response_id: str, after: str | None, limit: int, order: str
) -> dict[str, Any]:
    """The input items of a stored response (its own, not its chain's), a page of them."""
    stored = stored_response(admin.id, response_id)
    if stored is None:
        raise _not_found(response_id)
    return page(stored.input_items, after=after, limit=limit, order=order)


def response_delete(*, admin: AdminUser, response_id: str) -> None:
    """Forgets the response: it can no longer be retrieved or continued. Its chain's session keeps the turns."""
    if not response_forget(admin.id, response_id):
        raise _not_found(response_id)
