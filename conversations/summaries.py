"""Summarised memory (HISTORY_SUMMARY): the oldest turns that no longer fit what goes upstream are folded, by one
model call, into a running summary that is stored with the session and sent after SYSTEM_PROMPT."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.conf import settings

from llm_provider.services import llm_client
from llm_provider.types import Completion

INSTRUCTIONS = (
    "You keep the memory of a conversation between a user and an assistant. Merge the summary so far and the "
    "new part of the conversation into one concise summary, written for the assistant: keep names, facts, "
    "preferences, decisions and open questions; leave out greetings and small talk. Answer with the summary only."
)
SUMMARY_PREFIX = "Summary of the earlier conversation:\n"


def summary_message(summary: str) -> dict[str, str]:
    """How a session's summary goes upstream: a system message right after SYSTEM_PROMPT."""
    return {"role": "system", "content": SUMMARY_PREFIX + summary}


def fold_request(previous: str, messages: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    transcript = "\n".join(f"{m['role']}: {_text(m)}" for m in messages)
    return [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": f"Summary so far:\n{previous or '(none)'}\n\nNew part:\n{transcript}"},
    ]


def fold(previous: str, messages: Sequence[dict[str, Any]]) -> Completion:
    """The summary of `previous` and `messages`, by HISTORY_SUMMARY_MODEL; raises the client's LLMError."""
    return llm_client().complete(
        fold_request(previous, messages),
        model=settings.HISTORY_SUMMARY_MODEL,
        temperature=0.2,
        max_tokens=settings.HISTORY_SUMMARY_MAX_TOKENS,
    )


def _text(message: dict[str, Any]) -> str:
    calls = message.get("tool_calls")
    return message.get("content", "") + (f" [tool calls: {json.dumps(calls)}]" if calls else "")
