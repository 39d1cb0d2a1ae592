"""The Responses event stream: Server-Sent Events with `type` and an increasing `sequence_number`, from
`response.created` to `response.completed` (or `response.incomplete`, or `response.failed` for a failure once the
stream began, after an `error` event when no output had been sent)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import chain, count
from typing import Any

from django.conf import settings

from conversations.responses.items import function_call_item, message_id_of, message_item
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


class _Output:
    """The output items a stream has opened, in the order it opened them (their output_index): the message, and the
    function calls by the index the upstream gives each, which stream their arguments as they come."""

    def __init__(self, event: _Events, message_id: str) -> None:
        self.event, self.message_id = event, message_id
        self.keys: list[str] = []  # "message", "call:<upstream index>", or "whole:<item id>" (opened at the end)
        # By upstream index: the call's id and name, the arguments sent, and those held until it can be opened.
        self.calls: dict[int, dict[str, Any]] = {}

    def index(self, key: str) -> int | None:
        return self.keys.index(key) if key in self.keys else None

    def _open(self, key: str, item: dict[str, Any]) -> Iterator[bytes]:
        self.keys.append(key)
        yield self.event("response.output_item.added", output_index=len(self.keys) - 1, item=item)

    def text(self, delta: str) -> Iterator[bytes]:
        if "message" not in self.keys:
            yield from self._open("message", message_item(self.message_id, "", "in_progress"))
            yield self.event("response.content_part.added", **self.message_at(), part=_PART)
        if delta:
            yield self.event("response.output_text.delta", **self.message_at(), delta=delta, logprobs=[])

    def message_at(self) -> dict[str, Any]:
        return {"item_id": self.message_id, "output_index": self.index("message"), "content_index": 0}

    def call_pieces(self, pieces: list[dict[str, Any]]) -> Iterator[bytes]:
        """Pieces of tool calls (`{index, id?, function: {name?, arguments?}}`): a call is opened once its id and
        name are known; its arguments are sent as they come (held until then)."""
        for piece in pieces:
            upstream_index = piece.get("index", 0)
            call = self.calls.setdefault(upstream_index, {"id": "", "name": "", "arguments": "", "pending": ""})
            function = piece.get("function") or {}
            call["id"] = call["id"] or piece.get("id") or ""
            call["name"] = call["name"] or function.get("name") or ""
            call["pending"] += function.get("arguments") or ""
            key = f"call:{upstream_index}"
            if key not in self.keys:
                if not (call["id"] and call["name"]):
                    continue
                opened = function_call_item({"id": call["id"], "function": {"name": call["name"], "arguments": ""}})
                yield from self._open(key, {**opened, "status": "in_progress"})
            if call["pending"]:
                at = {"item_id": "fc_" + call["id"].removeprefix("call_"), "output_index": self.index(key)}
                yield self.event("response.function_call_arguments.delta", **at, delta=call["pending"])
                call["arguments"] += call["pending"]
                call["pending"] = ""

    def streamed_call(self, item: dict[str, Any]) -> tuple[int, str] | None:
        """A finished function call item's output_index and the arguments already sent, if the stream opened it."""
        for upstream_index, call in self.calls.items():
            index = self.index(f"call:{upstream_index}")
            if index is not None and call["id"] == item["call_id"]:
                return index, call["arguments"]
        return None


def response_events(
    start: dict[str, Any], first: StreamDelta | dict[str, Any], rest: Iterator[StreamDelta | dict[str, Any]]
) -> Iterator[bytes]:
    """`start` is the response in progress; `first` and `rest` the reply's pieces, then the finished response.
    The message's text and the function calls' arguments stream as they come; reasoning follows whole once the
    reply is done. Items are numbered (output_index) in the order they open, which the finished response's output
    then follows."""
    event = _Events()
    output = _Output(event, message_id_of(start["id"]))
    yield event("response.created", response=start)
    yield event("response.in_progress", response=start)
    try:
        for piece in chain([first], with_keepalive(rest, settings.STREAM_KEEPALIVE_SECONDS)):
            if piece is None:
                yield KEEPALIVE
            elif isinstance(piece, StreamDelta):
                if piece.text:
                    yield from output.text(piece.text)
                if piece.tool_calls:
                    yield from output.call_pieces(piece.tool_calls)
            else:
                yield from _finished(event, piece, output)
    except Exception as exc:
        error = as_service_error(exc)
        if error is None:
            raise
        failure = {"code": _failure_code(error.status_code), "message": error.detail}
        if not output.keys:
            yield event("error", **failure, param=None)
        yield event("response.failed", response={**start, "status": "failed", "error": failure})


def _finished(event: _Events, body: dict[str, Any], output: _Output) -> Iterator[bytes]:
    placed: list[tuple[int, dict[str, Any]]] = []
    for item in body["output"]:
        if item["type"] == "message":
            text = item["content"][0]["text"]
            if output.index("message") is None:
                yield from output.text(text)
            at = output.message_at()
            yield event("response.output_text.done", **at, text=text, logprobs=[])
            yield event("response.content_part.done", **at, part=item["content"][0])
            index = at["output_index"]
        elif item["type"] == "function_call":
            streamed = output.streamed_call(item)
            if streamed is None:
                index, sent = len(output.keys), ""
                output.keys.append(f"whole:{item['id']}")
                yield event("response.output_item.added", output_index=index, item={**item, "arguments": ""})
            else:
                index, sent = streamed
            at = {"item_id": item["id"], "output_index": index}
            if item["arguments"] != sent:  # the rest, or (rarely: a call the upstream mended) the whole again
                rest = item["arguments"].removeprefix(sent)
                yield event("response.function_call_arguments.delta", **at, delta=rest)
            yield event("response.function_call_arguments.done", **at, name=item["name"], arguments=item["arguments"])
        else:
            index = len(output.keys)
            output.keys.append(f"whole:{item['id']}")
            yield event("response.output_item.added", output_index=index, item=item)
        yield event("response.output_item.done", output_index=index, item=item)
        placed.append((index, item))
    done = "response.incomplete" if body["status"] == "incomplete" else "response.completed"
    yield event(done, response={**body, "output": [item for _, item in sorted(placed, key=lambda p: p[0])]})


def replayed_events(body: dict[str, Any]) -> Iterator[bytes]:
    """A stored response as the stream that sent it: its text in one delta."""
    start = {**body, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    return response_events(start, body, (piece for piece in ()))  # a generator: the stream closes it
