"""What `/chat/` and `/admin/test-chat` answer: a turn (conversations.turns) in the shape of their replies, and
the writes on stored sessions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from accounts.models import AdminUser
from conversations.history import history_store
from conversations.turns import ChatOptions, Turn, TurnResult, turn_answer, turn_stream
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


def chat_turn(*, admin: AdminUser, session_id: str, text: str, options: ChatOptions) -> Turn:
    return Turn(admin=admin, messages=[{"role": "user", "content": text}], session_id=session_id, options=options)


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


def session_delete(*, admin: AdminUser, session_id: str) -> bool:
    return history_store().delete(admin.id, session_id)
