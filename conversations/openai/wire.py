"""OpenAI's wire format for chat completions: the completion object, its stream chunks and the error shape
`{"error": {message, type, code, param}}`, which is what lets the SDKs raise their typed errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from itertools import chain
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from django.conf import settings

from conversations.streaming import KEEPALIVE, with_keepalive
from conversations.turns import TurnResult
from core.errors import as_service_error
from llm_provider.types import Completion, StreamDelta, Usage

DONE = b"data: [DONE]\n\n"


def error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def openai_error(message: str, *, status: int, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type(status), "code": code, "param": param}}


def error_param(errors: Any, path: str = "") -> str | None:
    """`messages[1].role` for DRF's `{"messages": {1: {"role": [...]}}}`: where the first problem is."""
    if isinstance(errors, list) and any(isinstance(item, dict | list) for item in errors):
        errors = dict(enumerate(errors))
    if not isinstance(errors, dict):
        return path or None
    for name, value in errors.items():
        if not value:
            continue
        if name == "non_field_errors":
            return path or None
        index = isinstance(name, int) or str(name).isdigit()
        return error_param(value, f"{path}[{name}]" if index else f"{path}.{name}" if path else str(name))
    return path or None


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def completion_body(completion: Completion, *, completion_id: str, created: int) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": completion.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": reply_message(completion),
                "logprobs": None,
                "finish_reason": completion.finish_reason or "stop",
            }
        ],
        "usage": usage_body(completion),
    }


def completion_of(body: dict[str, Any]) -> Completion:
    """The completion a `completion_body` was made from: what a stored answer is replayed from."""
    choice = body["choices"][0]
    message = choice["message"]
    details = dict(body.get("usage") or {})
    usage = Usage(*(int(details.pop(name, 0)) for name in ("prompt_tokens", "completion_tokens", "total_tokens")))
    return Completion(
        content=message.get("content") or "",
        model=body["model"],
        finish_reason=choice.get("finish_reason"),
        usage=usage,
        tool_calls=message.get("tool_calls") or [],
        reasoning=message.get("reasoning"),
        usage_details=details,
    )


def reply_message(completion: Completion) -> dict[str, Any]:
    """OpenAI's assistant message: content is null when the reply is only tool calls."""
    message: dict[str, Any] = {"role": "assistant", "content": completion.content}
    if completion.tool_calls:
        message["content"] = completion.content or None
        message["tool_calls"] = completion.tool_calls
    if completion.reasoning is not None:
        message["reasoning"] = completion.reasoning
    return message


def usage_body(completion: Completion) -> dict[str, Any]:
    return {**completion.usage_details, **completion.usage.as_dict()}


def delta_body(delta: StreamDelta) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if delta.text:
        body["content"] = delta.text
    if delta.reasoning:
        body["reasoning"] = delta.reasoning
    if delta.tool_calls:
        body["tool_calls"] = delta.tool_calls
    return body


def _data(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def completion_chunks(
    first: StreamDelta | TurnResult,
    rest: Iterator[StreamDelta | TurnResult],
    *,
    completion_id: str,
    created: int,
    model: str,
    include_usage: bool,
) -> Iterator[bytes]:
    """OpenAI's `chat.completion.chunk` events: the role first, then content, then the finish reason, then (with
    `stream_options.include_usage`) a chunk with no choices and the usage, then `[DONE]`. A failure midway is one
    `{"error": ...}` event, which the SDKs raise as an APIError; the stream then ends without `[DONE]`."""
    envelope: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": (first.completion if isinstance(first, TurnResult) else first).model or model,
        "system_fingerprint": None,
    }
    if include_usage:
        envelope["usage"] = None

    # _data({**envelope, "choices": [choice]}) byte for byte, with the envelope's JSON made once: one per piece.
    head = f'data: {json.dumps(envelope)[:-1]}, "choices": [{{"index": 0, "delta": '

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        tail = f'"logprobs": null, "finish_reason": {json.dumps(finish_reason)}}}]}}\n\n'
        return f"{head}{json.dumps(delta)}, {tail}".encode()

    # chunk({"content": text}), byte for byte, without a dict or json.dumps: most pieces are text only.
    text_head, text_tail = f'{head}{{"content": ', '}, "logprobs": null, "finish_reason": null}]}\n\n'

    yield chunk({"role": "assistant", "content": ""})
    try:
        for item in chain([first], with_keepalive(rest, settings.STREAM_KEEPALIVE_SECONDS)):
            if item is None:
                yield KEEPALIVE
            elif isinstance(item, StreamDelta):
                if item.text and not item.reasoning and not item.tool_calls:
                    yield f"{text_head}{encode_basestring_ascii(item.text)}{text_tail}".encode()
                else:
                    yield chunk(delta_body(item))
            else:
                yield chunk({}, item.completion.finish_reason or "stop")
                if include_usage:
                    yield _data({**envelope, "choices": [], "usage": usage_body(item.completion)})
    except Exception as exc:
        error = as_service_error(exc)
        if error is None:
            raise
        yield _data(openai_error(error.detail, status=error.status_code, code=error.code))
        return
    yield DONE


def replayed_chunks(body: dict[str, Any], *, model: str, include_usage: bool) -> Iterator[bytes]:
    """A stored completion (`completion_body`) as the stream that sent it, under its id: the role, all of the
    reply in one chunk, the finish reason, the usage if asked for, `[DONE]`."""
    completion = completion_of(body)
    tool_calls = [{"index": index, **call} for index, call in enumerate(completion.tool_calls)]
    whole = StreamDelta(text=completion.content, reasoning=completion.reasoning or "", tool_calls=tool_calls)
    ids = {"completion_id": body["id"], "created": body["created"]}
    rest = (item for item in [TurnResult(completion, None, {}, None)])  # a generator: the stream closes what it reads
    return completion_chunks(whole, rest, **ids, model=model, include_usage=include_usage)
