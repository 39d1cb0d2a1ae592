"""Groq's OpenAI-compatible wire format: request bodies out, JSON answers and server-sent events in.

Pure functions with no I/O; anything the upstream sends that does not fit the format is an LLMBadGateway.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from .exceptions import TRUNCATED, LLMBadGateway, LLMStreamError
from .types import Completion, ModelInfo, StreamDelta, StreamDone, Usage

logger = logging.getLogger(__name__)


def max_tokens_param(setting: str, base_url: str) -> str:
    if setting != "auto":
        return setting
    host = urlsplit(base_url).hostname or ""
    # Groq deprecates max_tokens; other OpenAI-compatible servers (Ollama, vLLM) only know max_tokens.
    return "max_completion_tokens" if host == "api.groq.com" else "max_tokens"


def chat_body(
    messages: list[dict[str, str]],
    *,
    model: str,
    temperature: float,
    max_tokens: int,
    max_tokens_param: str,
    stream: bool,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "temperature": temperature,
        max_tokens_param: max_tokens,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def json_object(raw: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise LLMBadGateway()
    return data


def error_fields(raw: bytes) -> tuple[str, str]:
    """Return Groq's (code, message) for an error answer, or empty strings if the body is not Groq's shape."""
    try:
        error = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code") or ""), str(error.get("message") or "")


def parse_usage(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    try:
        prompt, completion = int(data.get("prompt_tokens") or 0), int(data.get("completion_tokens") or 0)
        return Usage(prompt, completion, int(data.get("total_tokens") or prompt + completion))
    except (TypeError, ValueError):
        return None


def parse_completion(data: dict[str, Any], *, default_model: str) -> Completion:
    try:
        choice = data["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise LLMBadGateway() from None
    if not isinstance(content, str):
        raise LLMBadGateway()
    usage = parse_usage(data.get("usage")) or Usage(0, 0, 0)
    return Completion(content, str(data.get("model") or default_model), choice.get("finish_reason"), usage)


def parse_models(data: dict[str, Any]) -> list[ModelInfo]:
    entries = data.get("data")
    if not isinstance(entries, list):
        raise LLMBadGateway()
    return [ModelInfo(str(e["id"])) for e in entries if isinstance(e, dict) and e.get("id")]


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """Yield the data of each server-sent event; comment lines (keep-alives) and other fields are skipped."""
    buffer: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            buffer.append(line[5:].removeprefix(" "))
        elif not line and buffer:
            yield "\n".join(buffer)
            buffer.clear()
    if buffer:
        yield "\n".join(buffer)


class StreamReader:
    """Assembles a streamed answer from the data of its events: feed() each one, then done()."""

    def __init__(self, default_model: str) -> None:
        self.parts: list[str] = []
        self.usage: Usage | None = None
        self.model = default_model
        self.finish_reason: str | None = None
        self.finished = False

    def feed(self, data: str) -> Iterator[StreamDelta]:
        if data.strip() == "[DONE]":
            self.finished = True
            return
        chunk = json_object(data)
        _raise_for_stream_error(chunk)
        self.usage = _chunk_usage(chunk) or self.usage
        self.model = str(chunk.get("model") or self.model)
        for choice in chunk.get("choices") or []:
            self.finish_reason = _choice_finish_reason(choice) or self.finish_reason
            if text := _delta_text(choice):
                self.parts.append(text)
                yield StreamDelta(text)

    def done(self) -> StreamDone:
        if not self.finished and self.finish_reason is None:
            raise LLMBadGateway(TRUNCATED)
        return StreamDone(Completion("".join(self.parts), self.model, self.finish_reason, self.usage or Usage(0, 0, 0)))


def _chunk_usage(chunk: dict[str, Any]) -> Usage | None:
    """Groq puts usage in the last chunk's x_groq; with include_usage an OpenAI-style final chunk carries it too."""
    x_groq = chunk.get("x_groq")
    return parse_usage(chunk.get("usage")) or parse_usage(x_groq.get("usage") if isinstance(x_groq, dict) else None)


def _raise_for_stream_error(chunk: dict[str, Any]) -> None:
    x_groq = chunk.get("x_groq")
    error = (x_groq.get("error") if isinstance(x_groq, dict) else None) or chunk.get("error")
    if error:
        logger.warning("The language model service stopped a stream: %.300s", error)
        raise LLMStreamError()


def _choice_finish_reason(choice: Any) -> str | None:
    if not isinstance(choice, dict):
        raise LLMBadGateway()
    reason = choice.get("finish_reason")
    return reason if isinstance(reason, str) else None


def _delta_text(choice: dict[str, Any]) -> str:
    delta = choice.get("delta")
    text = delta.get("content") if isinstance(delta, dict) else None
    return text if isinstance(text, str) else ""
