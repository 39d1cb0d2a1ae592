"""Where stored responses and conversations' metadata are kept: as records of the session they belong to, beside
its history (conversations.history: StoreOptions.record), so that they live as long as it does (MEMORY_TTL_SECONDS
since its last turn) and go with it, and a turn reads and writes them in its own round trips. A session keeps its
newest MAX_STORED_RESPONSES responses (StoreOptions.records_kept; a conversation's metadata is not counted): the
write that stores one more drops the oldest.

A response's id names its session: `resp_<session token><own token>`. A chain's session is `resp_<token>` (24 hex
digits), a conversation's `conv_<token>` (48), so reading a response needs no lookup of where it is."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from conversations.stores import history_store

_CHAIN_TOKEN = 24  # hex digits of a chain's session token (a conversation's is that of its id, 48)
_OWN_TOKEN = 24


def new_chain_session() -> str:
    return "resp_" + secrets.token_hex(_CHAIN_TOKEN // 2)


def new_response_id(session_id: str) -> str:
    """A new response's id, naming `session_id` (a chain's `resp_...` or a conversation's `conv_...`)."""
    return "resp_" + session_id.partition("_")[2] + secrets.token_hex(_OWN_TOKEN // 2)


def session_of(response_id: str) -> str | None:
    """The session a response id names; None for an id this service did not make."""
    token = response_id.removeprefix("resp_")
    if len(token) == _CHAIN_TOKEN + _OWN_TOKEN:
        return "resp_" + token[:_CHAIN_TOKEN]
    if len(token) == 48 + _OWN_TOKEN:
        return "conv_" + token[:48]
    return None


@dataclass(frozen=True)
class StoredResponse:
    body: dict[str, Any]
    input_items: list[dict[str, Any]]

    def encoded(self) -> str:
        return json.dumps({"body": self.body, "input_items": self.input_items}, separators=(",", ":"))

    @staticmethod
    def decoded(raw: str | None) -> StoredResponse | None:
        if raw is None:
            return None
        data = json.loads(raw)
        return StoredResponse(data["body"], data["input_items"])


def stored_response(admin_id: str, response_id: str) -> StoredResponse | None:
    session_id = session_of(response_id)
    if session_id is None:
        return None
    return StoredResponse.decoded(history_store().record(admin_id, session_id, response_id))


def response_forget(admin_id: str, response_id: str) -> bool:
    session_id = session_of(response_id)
    return session_id is not None and history_store().record_delete(admin_id, session_id, response_id)


CONVERSATION_RECORD = "conversation"  # the record of a conversation's own session that holds its metadata


@dataclass(frozen=True)
class StoredConversation:
    """A Responses conversation: its own metadata; its items are the messages of the session of the same id."""

    created_at: int
    metadata: dict[str, str]

    def encoded(self) -> str:
        return json.dumps({"created_at": self.created_at, "metadata": self.metadata}, separators=(",", ":"))

    @staticmethod
    def decoded(raw: str | None) -> StoredConversation | None:
        if raw is None:
            return None
        data = json.loads(raw)
        return StoredConversation(data["created_at"], data["metadata"])


def stored_conversation(admin_id: str, conversation_id: str) -> StoredConversation | None:
    return StoredConversation.decoded(history_store().record(admin_id, conversation_id, CONVERSATION_RECORD))


def conversation_put(admin_id: str, conversation_id: str, stored: StoredConversation) -> None:
    history_store().record_put(admin_id, conversation_id, CONVERSATION_RECORD, stored.encoded())
