"""The values the language model client returns; other apps use these, never the client's internals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class Completion:
    content: str  # "" when the reply is only tool calls
    model: str
    finish_reason: str | None
    usage: Usage
    # OpenAI's `[{id, type: "function", function: {name, arguments}}]`, as the upstream sent them.
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    reasoning: str | None = None  # with reasoning_format "parsed"
    # What the upstream's `usage` carries beyond the token counts: Groq's timings, cached-token details.
    usage_details: dict[str, Any] = field(default_factory=dict)


# Not frozen, unlike the others: one is made per piece of a streamed reply, and a frozen dataclass's constructor
# (object.__setattr__ per field) costs three times a plain one's.
@dataclass(slots=True)
class StreamDelta:
    text: str
    reasoning: str = ""
    # Pieces of tool calls as the upstream streams them: `[{index, id?, type?, function: {name?, arguments}}]`.
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""  # the model that answers, as the upstream names it (a fallback model, say)


@dataclass(frozen=True)
class StreamDone:
    completion: Completion


@dataclass(frozen=True)
class ModelInfo:
    id: str
