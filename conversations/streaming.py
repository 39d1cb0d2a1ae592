"""Server-Sent Events for streamed chat replies."""

from __future__ import annotations

import json
import queue
from collections.abc import Iterator
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import TypeVar

from conversations.serializers import chat_response_data
from conversations.services import ChatReply
from core.cooperative import run_beside
from core.errors import as_service_error
from llm_provider.types import StreamDelta

T = TypeVar("T")
KEEPALIVE = b": keep-alive\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(event: str, data: dict[str, object]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def delta_event(text: str) -> bytes:
    """sse_event("delta", {"content": text}), byte for byte, without building the dict: one per piece."""
    return f'event: delta\ndata: {{"content": {encode_basestring_ascii(text)}}}\n\n'.encode()


# What the helper hands over besides the items: the end of `events`, or (with the exception) its failure.
_END, _FAILED = object(), object()


def with_keepalive(events: Iterator[T], interval: float) -> Iterator[T | None]:
    """Yields the items of `events`, and None whenever `interval` seconds pass without one.

    `events` runs beside the caller (a greenlet under gevent) so that silence can be noticed. Closing this generator
    (a client that went away) stops the helper where it waits, under gevent, which closes the upstream request at
    once; a thread closes `events` at its next item instead."""
    # The items themselves go through the queue (no tuple per item); the end and a failure are marked.
    items: queue.SimpleQueue[object] = queue.SimpleQueue()
    stopped = False

    def pump() -> None:
        put = items.put
        try:
            for item in events:
                put(item)
                if stopped:
                    break
            put(_END)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_FAILED)
            put(exc)
        finally:
            events.close()  # type: ignore[attr-defined]

    stop_pump = run_beside(pump)
    get = items.get
    try:
        while True:
            try:
                item = get(timeout=interval)
            except queue.Empty:
                yield None
                continue
            if item is _END:
                return
            if item is _FAILED:
                raise get()  # type: ignore[misc]
            yield item  # type: ignore[misc]
    finally:
        stopped = True
        stop_pump()


def sse_stream(
    first: StreamDelta | ChatReply, rest: Iterator[StreamDelta | ChatReply], interval: float
) -> Iterator[bytes]:
    """The event stream: `delta` events, then `done` with the whole reply, or `error` if the upstream fails.
    Pieces without text (a reasoning model's reasoning) are not sent."""
    yield _event_for(first)
    try:
        for item in with_keepalive(rest, interval):
            yield KEEPALIVE if item is None else _event_for(item)
    except Exception as exc:
        error = as_service_error(exc)
        if error is None:
            raise
        yield sse_event("error", {"detail": error.detail, "code": error.code, "status": error.status_code})


def replayed_sse(reply: dict[str, object]) -> Iterator[bytes]:
    """A stored reply (the JSON answer's body) as the stream that sent it: its text in one `delta`, then `done`."""
    if reply.get("response"):
        yield sse_event("delta", {"content": reply["response"]})
    yield sse_event("done", reply)


def _event_for(item: StreamDelta | ChatReply) -> bytes:
    if isinstance(item, StreamDelta):
        return delta_event(item.text) if item.text else b""
    return sse_event("done", chat_response_data(item))
