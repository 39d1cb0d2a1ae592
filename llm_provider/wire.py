"""Groq's OpenAI-compatible wire format: request bodies out, JSON answers and server-sent events in.

Pure functions with no I/O; anything the upstream sends that does not fit the format is an LLMBadGateway.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
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
    messages: list[dict[str, Any]],
    *,
    model: str,
    temperature: float,
    max_tokens: int,
    max_tokens_param: str,
    stream: bool,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`params` are further request parameters Groq accepts (top_p, stop, tools, ...), passed on as given."""
    body: dict[str, Any] = {
        **(params or {}),
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


# The most tokens one call is counted as: whatever an upstream reports, a count is taken within 0 and this, so that
# the counters it is added to (Redis integers, Prometheus counters) never fail on it.
MAX_CALL_TOKENS = 10**12


def parse_usage(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    try:
        prompt, completion = _count(data.get("prompt_tokens")), _count(data.get("completion_tokens"))
        return Usage(prompt, completion, _count(data.get("total_tokens") or prompt + completion))
    except (TypeError, ValueError, OverflowError):
        return None


def _count(value: Any) -> int:
    return min(max(int(value or 0), 0), MAX_CALL_TOKENS)


def usage_details(data: Any) -> dict[str, Any]:
    """The upstream's usage fields beyond the three token counts (Groq's queue/prompt/completion/total times)."""
    if not isinstance(data, dict):
        return {}
    return {name: value for name, value in data.items() if name not in _TOKEN_COUNTS}


_TOKEN_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


def parse_completion(data: dict[str, Any], *, default_model: str) -> Completion:
    try:
        choice = data["choices"][0]
        message = choice["message"]
        content = message.get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise LLMBadGateway() from None
    tool_calls = message.get("tool_calls") or []
    if not (isinstance(content, str) or (content is None and tool_calls)) or not _are_tool_calls(tool_calls):
        raise LLMBadGateway()
    reasoning = message.get("reasoning")
    return Completion(
        content or "",
        str(data.get("model") or default_model),
        choice.get("finish_reason"),
        parse_usage(data.get("usage")) or Usage(0, 0, 0),
        tool_calls=tool_calls,
        reasoning=reasoning if isinstance(reasoning, str) else None,
        usage_details=usage_details(data.get("usage")),
    )


def _are_tool_calls(calls: Any) -> bool:
    return isinstance(calls, list) and all(
        isinstance(call, dict) and isinstance(call.get("id"), str) and isinstance(call.get("function"), dict)
        for call in calls
    )


def parse_models(data: dict[str, Any]) -> list[ModelInfo]:
    entries = data.get("data")
    if not isinstance(entries, list):
        raise LLMBadGateway()
    return [ModelInfo(str(e["id"])) for e in entries if isinstance(e, dict) and e.get("id")]


def sse_data(chunks: Iterable[bytes]) -> Iterator[str]:
    """Yield the data of each server-sent event of a body that arrives in `chunks` (cut anywhere, even within a
    line or a character); comment lines (keep-alives) and other fields are skipped. One generator from bytes to
    events, since it runs for every piece of a streamed reply."""
    pending = b""
    buffer: list[str] = []
    for chunk in chunks:
        complete, newline, pending = (pending + chunk).rpartition(b"\n")
        if not newline:
            continue
        for line in complete.decode().split("\n"):
            line = line.removesuffix("\r")
            if line.startswith("data:"):
                buffer.append(line[5:].removeprefix(" "))
            elif not line and buffer:
                yield "\n".join(buffer)
                buffer.clear()
    last = pending.removesuffix(b"\r").decode()
    if last.startswith("data:"):
        buffer.append(last[5:].removeprefix(" "))
    if buffer:
        yield "\n".join(buffer)


class StreamReader:
    """Assembles a streamed answer from the data of its events: feed() each one, then done()."""

    def __init__(self, default_model: str) -> None:
        self.parts: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}  # by the index the upstream gives each call
        self.usage: Usage | None = None
        self.usage_details: dict[str, Any] = {}
        self.model = default_model
        self.finish_reason: str | None = None
        self.finished = False

    def feed(self, data: str) -> list[StreamDelta]:
        """The pieces of text, reasoning or tool calls in one event's data (a list: most events carry one). It runs
        for every piece of a streamed reply, hence the checks written out here rather than in helpers."""
        if data.strip() == "[DONE]":
            self.finished = True
            return []
        try:
            chunk = _json_value(data)
        except ValueError:
            raise LLMBadGateway() from None
        if not isinstance(chunk, dict):
            raise LLMBadGateway()
        if "x_groq" in chunk or "error" in chunk or "usage" in chunk:  # most chunks: a piece of the reply only
            _raise_for_stream_error(chunk)
            if usage := _chunk_usage(chunk):
                self.usage, self.usage_details = usage
        model = self.model = str(chunk.get("model") or self.model)
        deltas = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                raise LLMBadGateway()
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self.finish_reason = reason
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            text, reasoning, calls = delta.get("content"), delta.get("reasoning"), delta.get("tool_calls") or []
            text = text if isinstance(text, str) else ""
            reasoning = reasoning if isinstance(reasoning, str) else ""
            if calls and not _are_tool_call_pieces(calls):
                raise LLMBadGateway()
            if not (text or reasoning or calls):
                continue
            self.parts.append(text)
            self.reasoning.append(reasoning)
            for piece in calls:
                self._add_tool_call_piece(piece)
            deltas.append(StreamDelta(text, reasoning, calls, model))
        return deltas

    def _add_tool_call_piece(self, piece: dict[str, Any]) -> None:
        call = self.tool_calls.setdefault(piece["index"], {"id": "", "type": "function", "function": {}})
        call["id"] = piece.get("id") or call["id"]
        call["type"] = piece.get("type") or call["type"]
        function = piece.get("function") or {}
        for name in ("name", "arguments"):
            if isinstance(function.get(name), str):
                call["function"][name] = call["function"].get(name, "") + function[name]

    def done(self) -> StreamDone:
        if not self.finished and self.finish_reason is None:
            raise LLMBadGateway(TRUNCATED)
        reasoning = "".join(self.reasoning)
        return StreamDone(
            Completion(
                "".join(self.parts),
                self.model,
                self.finish_reason,
                self.usage or Usage(0, 0, 0),
                tool_calls=[self.tool_calls[index] for index in sorted(self.tool_calls)],
                reasoning=reasoning or None,
                usage_details=self.usage_details,
            )
        )


_DECODER = json.JSONDecoder()


def _json_value(data: str) -> Any:
    """json.loads(data), through the decoder's raw_decode when `data` is one value and nothing else (every event an
    upstream sends): the same value for a quarter less work than json.loads's checks around it, once per piece."""
    value, end = _DECODER.raw_decode(data) if data[:1] == "{" else (None, -1)
    return value if end == len(data) else json.loads(data)


def _chunk_usage(chunk: dict[str, Any]) -> tuple[Usage, dict[str, Any]] | None:
    """Groq puts usage in the last chunk's x_groq; with include_usage an OpenAI-style final chunk carries it too."""
    x_groq = chunk.get("x_groq")
    for data in (chunk.get("usage"), x_groq.get("usage") if isinstance(x_groq, dict) else None):
        if usage := parse_usage(data):
            return usage, usage_details(data)
    return None


def _raise_for_stream_error(chunk: dict[str, Any]) -> None:
    x_groq = chunk.get("x_groq")
    error = (x_groq.get("error") if isinstance(x_groq, dict) else None) or chunk.get("error")
    if error:
        logger.warning("The language model service stopped a stream: %.300s", error)
        raise LLMStreamError()


def _are_tool_call_pieces(pieces: Any) -> bool:
    return isinstance(pieces, list) and all(
        isinstance(piece, dict) and isinstance(piece.get("index"), int) and not isinstance(piece["index"], bool)
        for piece in pieces
    )
