"""One chat turn, whichever endpoint asks for it: `/chat/` (JSON and stream), `/v1/chat/completions` (with or
without a session, JSON and stream), regenerate and edit, and `/admin/test-chat`. Here, and only here, a turn holds
a chat slot of the process and of the admin, holds the session's lock, reads its history (folding what no longer
fits into the summary, with HISTORY_SUMMARY), reserves its worst case against the token budgets, calls the model,
stores the turn and counts the usage, so a new step of a turn is written once.

A turn with a session stores the caller's new messages (see new_turn_messages) and the reply; a redo replaces the
session's last exchange instead; without a session nothing is stored. A failed call stores nothing: two messages to
one session are answered one after the other and neither is lost."""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from redis.client import Pipeline

from accounts.budgets import BudgetOwner, Reservation, owners_key_id
from accounts.key_rules import admin_requests_per_minute, caller_models, model_check
from accounts.models import AdminUser
from accounts.rate_limits import RateReservation, RateStatus, caller_rates, limits_reserve, limits_settle_into
from conversations import summaries
from conversations.history import Conversation, SessionTurn, message
from conversations.history.base import NEW_EXCHANGE, ChatSlot, SessionNotFound, StoreOptions, writes_together
from conversations.limits import AdminSlot, chat_limits, process_chats, turn_hold_seconds
from conversations.stores import history_store
from conversations.summaries import summary_message
from conversations.trimming import (
    chars_tokens,
    message_tokens,
    request_tokens,
    stored_message_for_upstream,
    trim_history,
    upstream_messages,
)
from conversations.usage import admin_usage_totals
from conversations.usage_history import CallUsage, turn_usage, usage_day
from core import metrics
from core.exceptions import ServiceError
from core.leases import Hold, Lease
from core.redis_store import PipelineWrites, RepliesHandler
from llm_provider.exceptions import LLMError
from llm_provider.pricing import worst_cost_micros
from llm_provider.services import llm_client
from llm_provider.types import Completion, StreamDelta, StreamDone

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatOptions:
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    # Further parameters for the upstream, already validated (top_p, stop, seed, response_format, tools, ...).
    params: Mapping[str, Any] = field(default_factory=dict)

    def llm_kwargs(self) -> dict[str, object]:
        """The client's keyword arguments; a model named by the request is the request's fault if it is gone."""
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "model_from_request": self.model is not None,
            "params": self.params,
        }


class TurnRecords(Protocol):
    """What a turn keeps beside its session's history (a stored response, see StoreOptions.record): `read` names
    the record read with the history, which `check` judges once the session's lock is held (raising to refuse the
    turn); `written` is the record stored with the turn, in the same write, which counts in a cap of `kept` such
    records per session (StoreOptions.records_kept)."""

    read: str | None
    kept: int

    def check(self, held: SessionTurn) -> None: ...
    def written(self, completion: Completion) -> tuple[str, str] | None: ...


class ContextTooLong(ServiceError):
    status_code = 400
    code = "context_length_exceeded"


@dataclass(frozen=True)
class Turn:
    admin: AdminUser
    messages: list[dict[str, Any]]  # what the caller sends: /chat/'s one user message, or a /v1 `messages` list
    session_id: str | None = None  # None: stateless, nothing is stored
    options: ChatOptions = field(default_factory=ChatOptions)
    # Answer the session's last user message again (or `messages` instead of it), replacing that exchange.
    redo: bool = False
    budget_owners: tuple[BudgetOwner, ...] = ()  # the token budgets the turn counts against
    leases: tuple[Lease, ...] = ()  # what the request holds that the turn keeps too (its Idempotency-Key's claim)
    # A turn that continues a stored session from one of its replies (a Responses chain): the reply's item id,
    # which must still be the session's last message when the turn holds its lock.
    after: str | None = None
    reply_id: str | None = None  # the item id the stored reply keeps, for a later turn's `after`
    records: TurnRecords | None = None
    # False: a history that HISTORY_MAX_* would trim (or HISTORY_SUMMARY fold) refuses the turn (ContextTooLong)
    truncation: bool = True


class HistoryMoved(ServiceError):
    status_code = 409
    code = "not_latest"


class NothingToRedo(ServiceError):
    status_code = 409
    code = "nothing_to_redo"


@dataclass(frozen=True)
class RateLimits:
    """Where the caller stands against its own per-minute limits (the tightest of its admin's and its key's) once
    the turn was let through: the `x-ratelimit-*` headers of its answer. None: no such limit."""

    requests: RateStatus | None = None
    tokens: RateStatus | None = None


@dataclass(frozen=True)
class TurnResult:
    completion: Completion
    session_id: str | None
    usage: dict[str, int]  # this turn's tokens and requests
    session_usage: dict[str, int] | None  # the session's totals, this turn included


def turn_answer(turn: Turn) -> TurnResult:
    with _turn_held(turn) as plan:
        completion = llm_client().complete(plan.upstream, **turn.options.llm_kwargs(), models_allowed=plan.models)
        return _turn_record(turn, plan, completion)


def turn_stream(turn: Turn) -> Iterator[StreamDelta | TurnResult]:
    """Yields the reply's pieces as they arrive, then the TurnResult once the turn is stored.

    Failures before the first piece are raised from the first next(), so the caller can still answer with an
    error status. Closing the generator early closes the upstream request and stores nothing."""
    with _turn_held(turn) as plan:
        upstream = llm_client().stream(plan.upstream, **turn.options.llm_kwargs(), models_allowed=plan.models)
        completion = yield from _relay(upstream, plan)
        yield _turn_record(turn, plan, completion)


def new_turn_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a turn with a session stores of the caller's messages: from its last user message on, or, answering
    the tool calls of the stored history's last reply, its trailing tool results. The rest (system messages,
    examples before the question) goes upstream and is not kept."""
    last_user = next((i for i in range(len(messages) - 1, -1, -1) if messages[i]["role"] == "user"), None)
    if last_user is not None:
        return messages[last_user:]
    first_tool = len(messages)
    while first_tool > 0 and messages[first_tool - 1]["role"] == "tool":
        first_tool -= 1
    return messages[first_tool:]


@dataclass
class _StatelessTurn:
    """A turn without a session: only the admin's slot is held, and only the admin's usage totals are written."""

    slot: AdminSlot
    slot_held: bool
    conversation: None = None
    leases: list[Lease] = field(default_factory=list)

    def finish(
        self,
        messages: list[dict[str, Any]],
        usage: dict[str, int],
        options: StoreOptions = NEW_EXCHANGE,
        *,
        with_writes: PipelineWrites | None = None,
    ) -> None:
        release = self.slot.release_into if self.slot_held else None  # in the same round trip
        admin_usage_totals.record(
            self.slot.admin_id, usage, with_writes=writes_together(release, with_writes), day=options.usage_day
        )
        self.slot_held = False


@contextmanager
def _stateless_turn(admin_id: str, requests_per_minute: int | None) -> Iterator[_StatelessTurn]:
    slot = chat_limits.slot(admin_id, requests_per_minute)
    turn = _StatelessTurn(slot, slot.take())
    if turn.slot_held:
        turn.leases.append(slot.lease())
    try:
        yield turn
    finally:
        if turn.slot_held:
            turn.slot_held = False
            slot.give_back()


@dataclass
class _TurnPlan:
    held: SessionTurn | _StatelessTurn  # its `finish` stores the turn
    hold: Hold  # everything the turn holds in Redis, kept while it runs
    upstream: list[dict[str, Any]]  # what goes to the model
    new: list[dict[str, Any]]  # the caller's messages the turn stores, before the reply
    replace_last: int  # stored messages the turn replaces (a redone exchange)
    reservation: Reservation  # the worst case held against the token budgets until the turn settles it
    rates: RateReservation  # and against the tokens per minute
    models: tuple[str, ...] = ()  # the models the caller may use (its API key's); (): any
    drop_first: int = 0  # stored messages folded into the new summary
    summary: str | None = None  # the session's new summary, when the turn folded one
    fold_usage: dict[str, int] = field(default_factory=dict)  # the summary call's tokens
    fold_call: CallUsage | None = None  # the summary call's, for its cost and the usage of the day
    received_chars: int = 0  # of a streamed reply so far: what a stream closed early is charged for

    def unfinished_cost(self, params: Mapping[str, Any], models: list[str]) -> tuple[int, int]:
        """The tokens and micro-dollars a turn that ends without a reply spent: its summary call's, and if a reply
        began, its prompt (`params` are the request's other parameters) and what came of it, at the dearest price
        of the `models` it may have gone to (0 for a cost unknown)."""
        spent = self.fold_usage.get("total_tokens", 0)
        cost = (self.fold_call.cost_micros or 0) if self.fold_call else 0
        if not self.received_chars:
            return spent, cost
        prompt, reply = request_tokens(self.upstream, params), chars_tokens(self.received_chars)
        return spent + prompt + reply, cost + (worst_cost_micros(models, prompt, reply) or 0)


@contextmanager
def _turn_held(turn: Turn) -> Iterator[_TurnPlan]:
    """Holds the chat slots (and the session's lock) for the turn and plans it. The process slot comes first:
    refusing it costs no Redis round trip and counts nothing against the admin. What the turn holds in Redis is
    one Hold, which the turn keeps (renews) whenever it hears from the upstream."""
    models = caller_models(turn.admin)
    if models:
        model_check(turn.options.model or settings.GROQ_MODEL_NAME, models)
    per_minute = turn.admin.limits.requests_per_minute
    with process_chats.slot(settings.MAX_CHATS_IN_FLIGHT), ExitStack() as stack:
        hold_seconds = turn_hold_seconds()
        hold = Hold(list(turn.leases))
        held: SessionTurn | _StatelessTurn
        if turn.session_id is None:
            held = stack.enter_context(_stateless_turn(turn.admin.id, per_minute))
        else:
            store = history_store()
            record = turn.records.read if turn.records else None
            held = stack.enter_context(
                store.session_turn(
                    turn.admin.id,
                    turn.session_id,
                    hold_seconds=hold_seconds,
                    record=record,
                    requests_per_minute=per_minute,
                )
            )
        hold.add(*held.leases)
        if turn.records is not None and turn.session_id is not None:
            turn.records.check(held)
        if turn.after is not None:
            _check_continues(held.conversation, turn.after)
        stored = held.conversation.messages if held.conversation else []
        summary = held.conversation.summary if held.conversation else ""
        messages, replace_last = turn.messages, 0
        if turn.redo:
            messages, stored, replace_last = _redone(turn, held.conversation)
        history, to_fold = _fitting_history(stored, summary, may_fold=settings.HISTORY_SUMMARY and bool(stored))
        if not turn.truncation and (len(history) < len(stored) or to_fold):
            raise ContextTooLong(
                f"The conversation's {len(stored)} stored messages exceed HISTORY_MAX_MESSAGES or HISTORY_MAX_TOKENS "
                "and truncation is 'disabled': send truncation 'auto' to drop (or summarize) the oldest."
            )
        kept = stored[len(to_fold) :]  # what a fold leaves of the history
        upstream = upstream_messages(messages, history, system_prompt=settings.SYSTEM_PROMPT, summary=summary)
        rates = caller_rates(turn.admin)
        worst_case, worst_cost = 0, 0
        if turn.budget_owners or any(rate.tokens_per_minute for rate in rates):
            worst_case = _worst_case_tokens(turn, upstream, summary, to_fold, messages=messages, kept=kept)
        if turn.budget_owners:
            worst_cost = _worst_case_cost(turn, worst_case, folds=bool(to_fold))
        reservation, rate_reservation = limits_reserve(
            turn.budget_owners, rates, worst_case, micros=worst_cost, hold_seconds=hold_seconds
        )
        hold.add(*reservation.leases(), *rate_reservation.leases())
        turn.admin.rate_limits = _rate_limits(turn.admin, held.slot, rate_reservation)
        plan = _TurnPlan(
            held, hold, upstream, new_turn_messages(messages), replace_last, reservation, rate_reservation, models
        )
        try:
            if to_fold:
                _fold(plan, summary, to_fold, kept=kept, messages=messages)
                hold.keep()
            yield plan
        finally:
            if not reservation.settled or not rate_reservation.settled:  # a finished turn has settled them
                tokens, micros = plan.unfinished_cost(turn.options.params, _chat_models(turn))
                reservation.settle(tokens, micros)
                rate_reservation.settle(tokens)


def _worst_case_tokens(
    turn: Turn,
    upstream: list[dict[str, Any]],
    summary: str,
    to_fold: list[dict[str, Any]],
    *,
    messages: list[dict[str, Any]],
    kept: list[dict[str, Any]],
) -> int:
    """The most tokens the turn may spend, reserved against its budgets: its whole prompt (messages, tools,
    schemas, stop sequences) and longest reply, and when it folds history the summary call's too. After a fold
    the reply's prompt carries the new summary and the `kept` history, which may be longer than `upstream`; after
    a failed fold it is `upstream`."""
    params = turn.options.params
    prompt = request_tokens(upstream, params)
    reply = turn.options.max_tokens or settings.MAX_TOKENS
    if not to_fold:
        return prompt + reply
    fold_call = request_tokens(summaries.fold_request(summary, to_fold), {}) + settings.HISTORY_SUMMARY_MAX_TOKENS
    longest_summary = message_tokens(summary_message("")) + settings.HISTORY_SUMMARY_MAX_TOKENS
    folded = upstream_messages(messages, kept, system_prompt=settings.SYSTEM_PROMPT)
    return max(prompt, request_tokens(folded, params) + longest_summary) + reply + fold_call


def _chat_models(turn: Turn) -> list[str]:
    """The models a turn's reply may come from: its own, then the fallbacks."""
    return [turn.options.model or settings.GROQ_MODEL_NAME, *settings.GROQ_FALLBACK_MODELS]


def _worst_case_cost(turn: Turn, worst_case: int, *, folds: bool) -> int | None:
    """The most the turn's `worst_case` tokens may cost, in micro-dollars: its replies (max_tokens, and the summary
    call's) at the dearest output price, the rest at the dearest input price of every model the turn may call; None
    when one has no price."""
    models = _chat_models(turn)
    output = turn.options.max_tokens or settings.MAX_TOKENS
    if folds:
        models.append(settings.HISTORY_SUMMARY_MODEL or settings.GROQ_MODEL_NAME)
        output += settings.HISTORY_SUMMARY_MAX_TOKENS
    return worst_cost_micros(models, max(worst_case - output, 0), output)


def _fitting_history(
    stored: list[dict[str, Any]], summary: str, *, may_fold: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The newest history that fits beside the summary, and (when summaries are on and not all of it fits) the
    oldest messages to fold into a new summary: those that do not fit beside a summary as long as it may get."""
    summary_tokens = message_tokens(summary_message(summary)) if summary else 0
    limits = {"max_messages": settings.HISTORY_MAX_MESSAGES}
    history = trim_history(stored, max_tokens=settings.HISTORY_MAX_TOKENS - summary_tokens, **limits)
    if not may_fold or len(history) == len(stored):
        return history, []
    longest_summary = message_tokens(summary_message("")) + settings.HISTORY_SUMMARY_MAX_TOKENS
    kept = trim_history(stored, max_tokens=settings.HISTORY_MAX_TOKENS - longest_summary, **limits)
    return history, stored[: len(stored) - len(kept)]


def _fold(
    plan: _TurnPlan,
    summary: str,
    to_fold: list[dict[str, Any]],
    *,
    kept: list[dict[str, Any]],
    messages: list[dict[str, Any]],
) -> None:
    """One summary call folds `to_fold` into the summary; the turn then sends the new summary and `kept`. When the
    call fails the turn goes on with the trimmed history, and a later turn tries again."""
    try:
        folded = summaries.fold(summary, [stored_message_for_upstream(m) for m in to_fold])
    except LLMError as exc:
        logger.warning("Could not fold %d messages into the summary (%s); trimming instead", len(to_fold), exc.code)
        return
    plan.summary, plan.drop_first = folded.content, len(to_fold)
    plan.fold_usage = {**folded.usage.as_dict(), "requests": 1}
    plan.fold_call = CallUsage(folded.model, folded.usage.prompt_tokens, folded.usage.completion_tokens)
    plan.upstream = upstream_messages(messages, kept, system_prompt=settings.SYSTEM_PROMPT, summary=folded.content)


def _check_continues(conversation: Conversation | None, after: str) -> None:
    if conversation is None:
        raise SessionNotFound("The conversation this continues has expired or was deleted.")
    if not conversation.messages or conversation.messages[-1].get("id") != after:
        raise HistoryMoved(
            "The conversation has gone on since that response: continue from its latest response instead."
        )


def _redone(turn: Turn, conversation: Conversation | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """For a turn that redoes the session's last exchange (from its last user message on): the messages to
    answer, the history before that exchange, and how many stored messages the turn replaces."""
    if conversation is None:
        raise SessionNotFound("No such session.")
    stored = conversation.messages
    last_user = next((i for i in range(len(stored) - 1, -1, -1) if stored[i]["role"] == "user"), None)
    if last_user is None:
        raise NothingToRedo("This session has no user message to answer again.")
    messages = turn.messages or [stored_message_for_upstream(stored[last_user])]
    return messages, stored[:last_user], len(stored) - last_user


def _turn_record(turn: Turn, plan: _TurnPlan, completion: Completion) -> TurnResult:
    """Stores the turn; its usage is the reply's and, when the turn folded a summary, the summary call's too.
    A turn that lost the session's lock (LeaseLost) stores nothing; its tokens still count against its budgets."""
    reply_usage = {**completion.usage.as_dict(), "requests": 1}
    usage = {name: reply_usage[name] + plan.fold_usage.get(name, 0) for name in reply_usage}
    calls = [CallUsage(completion.model, completion.usage.prompt_tokens, completion.usage.completion_tokens)]
    calls += [plan.fold_call] if plan.fold_call else []
    usage.update(turn_usage(calls))
    metrics.tokens_record(usage)
    spent, cost = usage["total_tokens"], usage["cost_micros"]

    def settle(pipe: Pipeline) -> RepliesHandler | None:
        # The budgets' new use, for their alerts.
        return limits_settle_into(pipe, plan.reservation, plan.rates, spent, cost)

    reply = message("assistant", completion.content, tool_calls=completion.tool_calls, item_id=turn.reply_id)
    stored = [*(message(**m) for m in plan.new), reply]
    record = turn.records.written(completion) if turn.records else None
    options = StoreOptions(
        replace_last=plan.replace_last,
        drop_first=plan.drop_first,
        summary=plan.summary,
        usage_day=usage_day(turn.admin.id, owners_key_id(turn.budget_owners), calls),
        record=record,
        records_kept=turn.records.kept if turn.records else 0,
    )
    # The reservations settle in the finish's round trip; without any, the finish needs no pipeline.
    reserved = bool(plan.reservation.usage_keys or plan.rates.windows)
    totals = plan.held.finish(stored, usage, options, with_writes=settle if reserved else None)
    return TurnResult(completion=completion, session_id=turn.session_id, usage=usage, session_usage=totals)


def _rate_limits(admin: AdminUser, slot: ChatSlot, rates: RateReservation) -> RateLimits:
    """The tightest of the caller's limits: the one with the least remaining."""
    requests = list(rates.requests)
    per_minute = admin_requests_per_minute(admin)
    if per_minute and slot.requests:
        requests.append(RateStatus(per_minute, max(per_minute - slot.requests, 0), 60 - slot.started % 60))
    tightest = min(requests, key=lambda status: status.remaining, default=None)
    return RateLimits(tightest, min(rates.tokens, key=lambda status: status.remaining, default=None))


def _relay(upstream: Iterator[StreamDelta | StreamDone], plan: _TurnPlan) -> Generator[StreamDelta, None, Completion]:
    """Passes the reply's pieces on, keeping the turn's hold as they come, and returns the finished completion.
    Closing early closes the upstream."""
    completion = None
    try:
        for event in upstream:
            plan.hold.keep()
            if isinstance(event, StreamDone):
                completion = event.completion
            else:
                plan.received_chars += len(event.text) + len(event.reasoning)
                yield event
    finally:
        upstream.close()
    assert completion is not None  # the client always ends a stream with StreamDone or an error
    return completion
