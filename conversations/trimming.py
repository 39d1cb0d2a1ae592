"""What goes upstream: the system prompt, the newest history that fits, then the new messages.

Token counts are estimates (about four characters a token, plus a few per message): close enough to keep a
conversation inside the model's context, and nothing has to download a tokenizer."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from conversations.history.base import MESSAGE_FIELDS
from conversations.summaries import summary_message

PER_MESSAGE_TOKENS = 4


def estimate_tokens(text: str) -> int:
    return chars_tokens(len(text))


def chars_tokens(chars: int) -> int:
    """The estimate for a message of `chars` characters."""
    return (chars + 3) // 4 + PER_MESSAGE_TOKENS


def message_tokens(message: Mapping[str, Any]) -> int:
    """A message's text, with its tool calls and the call id and name that go upstream with it."""
    tool_calls = message.get("tool_calls")
    calls = json.dumps(tool_calls) if tool_calls else ""
    ids = (message.get("tool_call_id") or "") + (message.get("name") or "")
    return estimate_tokens((message.get("content") or "") + calls + ids)


def params_tokens(params: Mapping[str, Any]) -> int:
    """The request's other parameters (tools, response_format, stop, ...) as the JSON that goes upstream: Groq
    bills tool definitions and schemas as prompt tokens. Characters past ASCII count as their escapes, which
    errs on the side of more tokens."""
    return estimate_tokens(json.dumps(params)) if params else 0


def request_tokens(messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> int:
    """The prompt of an upstream request: its messages and its other parameters."""
    return sum(message_tokens(m) for m in messages) + params_tokens(params)


def trim_history(history: Sequence[dict[str, Any]], *, max_messages: int, max_tokens: int) -> list[dict[str, Any]]:
    """The longest suffix of `history` within both limits that starts with a user message."""
    kept: list[dict[str, Any]] = []
    budget = max_tokens
    for message in reversed(history[-max_messages:] if max_messages else []):
        cost = message_tokens(message)
        if cost > budget:
            break
        budget -= cost
        kept.append(message)
    kept.reverse()
    # A reply without the question that prompted it only confuses the model, and a tool result without the call
    # that asked for it is refused upstream.
    while kept and kept[0]["role"] != "user":
        kept.pop(0)
    return kept


def with_system_prompt(messages: Sequence[dict[str, Any]], system_prompt: str) -> list[dict[str, Any]]:
    """The service's prompt before everything else, so that no caller's system message can precede it."""
    prompt = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*prompt, *messages]


def upstream_messages(
    messages: Sequence[dict[str, Any]],
    history: Sequence[dict[str, Any]],
    *,
    system_prompt: str,
    summary: str = "",
) -> list[dict[str, Any]]:
    """The service's prompt, the session's summary, the caller's leading system messages, the stored history,
    then the rest of the caller's messages (for `/chat/`, its one new message)."""
    leading_system = 0
    while leading_system < len(messages) and messages[leading_system]["role"] == "system":
        leading_system += 1
    folded = [summary_message(summary)] if summary else []
    stored = [stored_message_for_upstream(m) for m in history]
    caller = [*folded, *messages[:leading_system], *stored, *messages[leading_system:]]
    return with_system_prompt(caller, system_prompt)


def stored_message_for_upstream(message: Mapping[str, Any]) -> dict[str, Any]:
    """A stored message without what only the store keeps (its time)."""
    return {name: message[name] for name in MESSAGE_FIELDS if name in message}
