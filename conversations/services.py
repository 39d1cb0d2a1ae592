"""A chat turn: add the session's history, ask the model, store the turn, answer (at once or as a stream).

A turn holds one of the admin's chat slots (per-admin limits) and the session lock, so two messages to one
session are answered one after the other and neither is lost. A failed call stores nothing."""

from __future__ import annotations

import secrets
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass

from django.conf import settings

from accounts.models import AdminUser
from conversations.history import HistoryStore, history_store, message
from conversations.limits import chat_slot
from conversations.trimming import upstream_messages
from conversations.usage import usage_record
from llm_provider.client import Completion, StreamDelta, StreamDone
from llm_provider.services import PROVIDER, llm_client


@dataclass(frozen=True)
class ChatOptions:
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None

    def llm_kwargs(self) -> dict[str, object]:
        """The client's keyword arguments; a model named by the request is the request's fault if it is gone."""
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "model_from_request": self.model is not None,
        }


@dataclass(frozen=True)
class ChatReply:
    response: str
    session_id: str
    llm_provider: str
    model: str
    user_id: str
    usage: dict[str, int]
    session_usage: dict[str, int]


def new_session_id() -> str:
    return secrets.token_urlsafe(12)


def _messages_for(store: HistoryStore, admin: AdminUser, session_id: str, text: str) -> list[dict[str, str]]:
    conversation = store.get(admin.id, session_id)
    return upstream_messages(
        conversation.messages if conversation else [],
        text,
        system_prompt=settings.SYSTEM_PROMPT,
        max_messages=settings.HISTORY_MAX_MESSAGES,
        max_tokens=settings.HISTORY_MAX_TOKENS,
    )


def turn_record(
    *, admin: AdminUser, session: tuple[HistoryStore, str] | None, text: str, completion: Completion
) -> tuple[dict[str, int], dict[str, int] | None]:
    """Stores the question and the reply in the session (if there is one) and counts the usage for the admin;
    returns this turn's usage and the session's totals."""
    usage = {**asdict(completion.usage), "requests": 1}
    totals = None
    if session is not None:
        store, session_id = session
        turn = [message("user", text), message("assistant", completion.content)]
        totals = store.append(admin.id, session_id, turn, usage)
    usage_record(admin.id, usage)
    return usage, totals


def relay_stream(upstream: Iterator[StreamDelta | StreamDone]) -> Generator[StreamDelta, None, Completion]:
    """Passes the reply's pieces on and returns the finished completion. Closing early closes the upstream."""
    completion = None
    try:
        for event in upstream:
            if isinstance(event, StreamDone):
                completion = event.completion
            else:
                yield event
    finally:
        upstream.close()
    assert completion is not None  # the client always ends a stream with StreamDone or an error
    return completion


def _store_turn(store: HistoryStore, admin: AdminUser, session_id: str, text: str, completion: Completion) -> ChatReply:
    usage, totals = turn_record(admin=admin, session=(store, session_id), text=text, completion=completion)
    assert totals is not None
    return ChatReply(
        response=completion.content,
        session_id=session_id,
        llm_provider=PROVIDER,
        model=completion.model,
        user_id=admin.username,
        usage={k: v for k, v in usage.items() if k != "requests"},
        session_usage=totals,
    )


def chat_send(*, admin: AdminUser, session_id: str | None, text: str, options: ChatOptions) -> ChatReply:
    session_id = session_id or new_session_id()
    store = history_store()
    with chat_slot(admin.id), store.session_lock(admin.id, session_id):
        messages = _messages_for(store, admin, session_id, text)
        completion = llm_client().complete(messages, **options.llm_kwargs())
        return _store_turn(store, admin, session_id, text, completion)


def chat_stream(
    *, admin: AdminUser, session_id: str | None, text: str, options: ChatOptions
) -> Iterator[StreamDelta | ChatReply]:
    """Yields the reply's pieces as they arrive, then the ChatReply once the turn is stored.

    Failures before the first piece are raised from the first next(), so the caller can still answer with
    an error status. Closing the generator early closes the upstream request and stores nothing."""
    session_id = session_id or new_session_id()
    store = history_store()
    with chat_slot(admin.id), store.session_lock(admin.id, session_id):
        messages = _messages_for(store, admin, session_id, text)
        completion = yield from relay_stream(llm_client().stream(messages, **options.llm_kwargs()))
        yield _store_turn(store, admin, session_id, text, completion)
