"""The values the language model client returns; other apps use these, never the client's internals."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class Completion:
    content: str
    model: str
    finish_reason: str | None
    usage: Usage


@dataclass(frozen=True)
class StreamDelta:
    text: str


@dataclass(frozen=True)
class StreamDone:
    completion: Completion


@dataclass(frozen=True)
class ModelInfo:
    id: str
