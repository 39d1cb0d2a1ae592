"""OpenAI-style chat completions (`/v1/chat/completions`): the client sends a whole `messages` list.

SYSTEM_PROMPT, when set, always goes first, as on `/chat/`. Without a session the client's messages follow it as
given, and nothing is stored. With a session (the `X-Session-Id` header) the call joins the same conversation
store as `/chat/`: after SYSTEM_PROMPT go the client's leading system messages, then the session's stored history
(trimmed as for `/chat/`), then the rest of the client's messages; the last user message and the reply are stored
as the turn. Either way the usage counts for the admin, and a turn holds one of the admin's chat slots, as `/chat/`
does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

from django.conf import settings

from accounts.models import AdminUser
from conversations.history import HistoryStore, history_store
from conversations.limits import chat_slot
from conversations.services import ChatOptions, relay_stream, turn_record
from conversations.trimming import trim_history, with_system_prompt
from llm_provider.client import Completion, StreamDelta, StreamDone
from llm_provider.services import llm_client


def last_user_text(messages: list[dict[str, str]]) -> str | None:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), None)


def with_session_history(
    store: HistoryStore, admin: AdminUser, session_id: str, messages: list[dict[str, str]]
) -> list[dict[str, str]]:
    conversation = store.get(admin.id, session_id)
    history = trim_history(
        conversation.messages if conversation else [],
        max_messages=settings.HISTORY_MAX_MESSAGES,
        max_tokens=settings.HISTORY_MAX_TOKENS,
    )
    leading_system = 0
    while leading_system < len(messages) and messages[leading_system]["role"] == "system":
        leading_system += 1
    stored = [{"role": m["role"], "content": m["content"]} for m in history]
    return messages[:leading_system] + stored + messages[leading_system:]


def _enter_turn(
    stack: ExitStack, admin: AdminUser, session_id: str | None, messages: list[dict[str, str]]
) -> tuple[tuple[HistoryStore, str] | None, list[dict[str, str]]]:
    """Takes the admin's chat slot (and the session's lock); returns the session and what goes upstream."""
    stack.enter_context(chat_slot(admin.id))
    if session_id is None:
        return None, with_system_prompt(messages, settings.SYSTEM_PROMPT)
    store = history_store()
    stack.enter_context(store.session_lock(admin.id, session_id))
    upstream = with_session_history(store, admin, session_id, messages)
    return (store, session_id), with_system_prompt(upstream, settings.SYSTEM_PROMPT)


def completion_send(
    *, admin: AdminUser, session_id: str | None, messages: list[dict[str, str]], options: ChatOptions
) -> Completion:
    with ExitStack() as stack:
        session, upstream = _enter_turn(stack, admin, session_id, messages)
        completion = llm_client().complete(upstream, **options.llm_kwargs())
        turn_record(admin=admin, session=session, text=last_user_text(messages) or "", completion=completion)
        return completion


def completion_stream(
    *, admin: AdminUser, session_id: str | None, messages: list[dict[str, str]], options: ChatOptions
) -> Iterator[StreamDelta | StreamDone]:
    """Yields the reply's pieces, then StreamDone once the usage (and the turn) is stored.

    As with chat_stream, failures before the first piece are raised from the first next(), and closing the
    generator early closes the upstream request and stores nothing."""
    with ExitStack() as stack:
        session, upstream_messages = _enter_turn(stack, admin, session_id, messages)
        completion = yield from relay_stream(llm_client().stream(upstream_messages, **options.llm_kwargs()))
        turn_record(admin=admin, session=session, text=last_user_text(messages) or "", completion=completion)
        yield StreamDone(completion)
