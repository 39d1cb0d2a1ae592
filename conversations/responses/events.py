"""The Responses event stream: Server-Sent Events with `type` and an increasing `sequence_number`, from
`response.created` to `response.completed` (or `response.incomplete`, or `response.failed` for a failure once the
stream began)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import chain, count
from typing import Any

from django.conf import settings

from conversations.responses.items import message_id_of, message_item
from conversations.streaming import KEEPALIVE, with_keepalive
from core.errors import as_service_error
from llm_provider.types import StreamDelta

_PART = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}


class _Events:
    def __init__(self) -> None:
        self._numbers = count()

    def __call__(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": next(self._numbers), **fields}
        return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()


def _failure_code(status: int) -> str:
    return "rate_limit_exceeded" if status == 429 else "server_error"


def response_events(
    start: dict[str, Any], first: StreamDelta | dict[str, Any], rest: Iterator[StreamDelta | dict[str, Any]]
) -> Iterator[bytes]:
    """`start` is the response in progress; `first` and `rest` the reply's pieces, then the finished response.
    The message's text streams as it comes (output index 0, where the finished response has its message); function
    calls and reasoning follow whole once the reply is done."""
    event = _Events()
    message_id = message_id_of(start["id"])
    at = {"item_id": message_id, "output_index": 0, "content_index": 0}
    opened = False

    def open_message() -> Iterator[bytes]:
        yield event("response.output_item.added", output_index=0, item=message_item(message_id, "", "in_progress"))
        yield event("response.content_part.added", **at, part=_PART)

    yield event("response.created", response=start)
    yield event("response.in_progress", response=start)
    try:
        for piece in chain([first], with_keepalive(rest, settings.STREAM_KEEPALIVE_SECONDS)):
            if piece is None:
                yield KEEPALIVE
            elif isinstance(piece, StreamDelta):
                if piece.text:
                    if not opened:
                        yield from open_message()
                        opened = True
                    yield event("response.output_text.delta", **at, delta=piece.text, logprobs=[])
            else:
                yield from _finished(event, piece, opened=opened, open_message=open_message)
    except Exception as exc:
        error = as_service_error(exc)
        if error is None:
            raise
        failure = {"code": _failure_code(error.status_code), "message": error.detail}
        yield event("response.failed", response={**start, "status": "failed", "error": failure})


def _finished(event: _Events, body: dict[str, Any], *, opened: bool, open_message: Any) -> Iterator[bytes]:
    for index, item in enumerate(body["output"]):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            at = {"item_id": item["id"], "output_index": index, "content_index": 0}
            if not opened:
                yield from open_message()
                if text:
                    yield event("response.output_text.delta", **at, delta=text, logprobs=[])
            yield event("response.output_text.done", **at, text=text, logprobs=[])
            yield event("response.content_part.done", **at, part=item["content"][0])
        elif item["type"] == "function_call":
            yield event("response.output_item.added", output_index=index, item={**item, "arguments": ""})
            at = {"item_id": item["id"], "output_index": index}
            yield event("response.function_call_arguments.delta", **at, delta=item["arguments"])
            yield event("response.function_call_arguments.done", **at, name=item["name"], arguments=item["arguments"])
        else:
            yield event("response.output_item.added", output_index=index, item=item)
        yield event("response.output_item.done", output_index=index, item=item)
    done = "response.incomplete" if body["status"] == "incomplete" else "response.completed"
    yield event(done, response=body)


def replayed_events(body: dict[str, Any]) -> Iterator[bytes]:
    """A stored response as the stream that sent it: its text in one delta."""
    start = {**body, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    return response_events(start, body, (piece for piece in ()))  # a generator: the stream closes it
