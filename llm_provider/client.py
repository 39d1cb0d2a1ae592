"""A small client for Groq's OpenAI-compatible chat API: pooled HTTP, one deadline per call, bounded retries."""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, suppress
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from core import metrics

from .exceptions import (
    LLMAuthFailed,
    LLMBadGateway,
    LLMContextTooLong,
    LLMError,
    LLMModelUnavailable,
    LLMNotConfigured,
    LLMRateLimited,
    LLMRequestRejected,
    LLMStreamError,
    LLMTimeout,
    LLMUnavailable,
)
from .types import Completion, ModelInfo, StreamDelta, StreamDone, Usage

logger = logging.getLogger(__name__)

T = TypeVar("T")
RETRYABLE_STATUSES = frozenset({429, 498, 500, 502, 503, 504})
TRY_AGAIN_RE = re.compile(r"try again in ((?:\d+(?:\.\d+)?(?:h|ms|us|µs|ns|m|s))+)", re.IGNORECASE)
GO_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
TRUNCATED = "The language model service closed the connection before the answer was complete."
GO_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    api_key: str | None = field(repr=False)  # configs end up in logs and tracebacks; the key must not
    model: str
    temperature: float
    max_tokens: int
    timeout_seconds: float = 60.0
    connect_timeout: float = 5.0
    max_retries: int = 2
    max_connections: int = 100
    max_tokens_param: str = "auto"
    backoff_base: float = 0.5
    backoff_max: float = 8.0


class _Retryable(Exception):
    """Wraps an error that another attempt may cure; never escapes the client."""

    def __init__(self, error: LLMError) -> None:
        super().__init__(str(error))
        self.error = error


class ChatClient:
    def __init__(self, config: LLMConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        self._config = config
        limits = httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=config.max_connections)
        self._http = httpx.Client(
            base_url=config.base_url.rstrip("/"),
            limits=limits,
            timeout=httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout),
            transport=transport,
        )

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        model_from_request: bool = False,
    ) -> Completion:
        body = self._chat_body(messages, model=model, temperature=temperature, max_tokens=max_tokens, stream=False)
        deadline = self._deadline()

        def attempt() -> Completion:
            response = self._open("POST", "/chat/completions", deadline, body=body, from_request=model_from_request)
            with closing(response):
                _read_body(response)
            return parse_completion(_json_object(response.content), default_model=body["model"])

        return self._with_retries(attempt, deadline)

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        model_from_request: bool = False,
    ) -> Iterator[StreamDelta | StreamDone]:
        """Yield the answer as it arrives, then a StreamDone.

        Nothing is sent before the first next(); every failure before the first delta (refusal, rate limit,
        timeout) is raised from that first next(), so a caller can fetch it before committing to a response.
        """
        body = self._chat_body(messages, model=model, temperature=temperature, max_tokens=max_tokens, stream=True)
        deadline = self._deadline()
        response = self._with_retries(
            lambda: self._open("POST", "/chat/completions", deadline, body=body, from_request=model_from_request),
            deadline,
        )
        # Leaving the with-block (also via generator.close()) closes the connection, which tells the upstream to stop.
        with closing(response):
            try:
                yield from read_stream(response, default_model=body["model"], deadline=deadline)
            except LLMError as exc:
                metrics.upstream_error(exc.code)
                raise

    def list_models(self) -> list[ModelInfo]:
        self._require_key()
        deadline = self._deadline()

        def attempt() -> list[ModelInfo]:
            response = self._open("GET", "/models", deadline)
            with closing(response):
                _read_body(response)
            return parse_models(_json_object(response.content))

        return self._with_retries(attempt, deadline)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _require_key(self) -> str:
        if not self._config.api_key:
            raise LLMNotConfigured()
        return self._config.api_key

    def _deadline(self) -> float:
        return time.monotonic() + self._config.timeout_seconds

    def _chat_body(
        self,
        messages: list[dict[str, str]],
        *,
        model: str | None,
        temperature: float | None,
        max_tokens: int | None,
        stream: bool,
    ) -> dict[str, Any]:
        self._require_key()
        config = self._config
        body: dict[str, Any] = {
            "model": model or config.model,
            "messages": messages,
            "temperature": config.temperature if temperature is None else temperature,
            max_tokens_param(config): config.max_tokens if max_tokens is None else max_tokens,
        }
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _open(
        self,
        method: str,
        path: str,
        deadline: float,
        *,
        body: dict[str, Any] | None = None,
        from_request: bool = False,
    ) -> httpx.Response:
        """One attempt: send the request and return a 200 response whose body is still unread."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LLMTimeout()
        # httpx's read timeout bounds each read, not the whole body; Groq sends a non-streamed body at once,
        # so capping every read by the time left keeps a call close to its deadline.
        timeout = httpx.Timeout(remaining, connect=min(self._config.connect_timeout, remaining))
        headers = {"Authorization": f"Bearer {self._require_key()}"}
        request = self._http.build_request(method, path, json=body, headers=headers, timeout=timeout)
        operation = "models" if path == "/models" else "chat_stream" if (body or {}).get("stream") else "chat"
        started = time.perf_counter()
        try:
            response = self._http.send(request, stream=True)
        except httpx.TimeoutException as exc:
            metrics.upstream_attempt(operation, started, LLMTimeout.code)
            raise _Retryable(LLMTimeout()) from exc
        except httpx.TransportError as exc:
            logger.warning("Cannot reach the language model service: %s", type(exc).__name__)
            metrics.upstream_attempt(operation, started, LLMUnavailable.code)
            raise _Retryable(LLMUnavailable()) from exc
        if response.status_code == 200:
            metrics.upstream_attempt(operation, started, "ok")
            return response
        with closing(response):
            error = error_for_response(response, model=(body or {}).get("model", ""), from_request=from_request)
        metrics.upstream_attempt(operation, started, error.code)
        raise _Retryable(error) if response.status_code in RETRYABLE_STATUSES else error

    def _with_retries(self, attempt: Callable[[], T], deadline: float) -> T:
        attempt_number = 0
        while True:
            try:
                return attempt()
            except _Retryable as retryable:
                error, cause = retryable.error, retryable.__cause__
            except LLMError as final:
                metrics.upstream_error(final.code)
                raise
            metrics.upstream_error(error.code)
            if attempt_number >= self._config.max_retries:
                raise error from cause
            delay = self._backoff(attempt_number, error.retry_after)
            if time.monotonic() + delay >= deadline:
                raise error from cause
            logger.info("Retrying the language model call in %.2fs after %s", delay, error.code)
            metrics.upstream_retry(error.code)
            time.sleep(delay)
            attempt_number += 1

    def _backoff(self, attempt_number: int, hint: float | None) -> float:
        ceiling = min(self._config.backoff_max, self._config.backoff_base * 2**attempt_number)
        # Jitter spreads the retries of many workers that failed at the same moment.
        jittered = random.uniform(ceiling / 2, ceiling)
        return max(jittered, hint or 0.0)


def max_tokens_param(config: LLMConfig) -> str:
    if config.max_tokens_param != "auto":
        return config.max_tokens_param
    host = urlsplit(config.base_url).hostname or ""
    # Groq deprecates max_tokens; other OpenAI-compatible servers (Ollama, vLLM) only know max_tokens.
    return "max_completion_tokens" if host == "api.groq.com" else "max_tokens"


def parse_go_duration(text: str) -> float | None:
    parts = GO_DURATION_PART_RE.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * GO_DURATION_UNITS[unit] for number, unit in parts)


def retry_after_seconds(response: httpx.Response, message: str) -> float | None:
    hints: list[float] = []
    header = response.headers.get("retry-after")
    # An HTTP-date is ignored: Groq sends seconds, and its message usually carries the same wait.
    with suppress(ValueError):
        hints.append(float(header or ""))
    match = TRY_AGAIN_RE.search(message)
    if match and (seconds := parse_go_duration(match.group(1))) is not None:
        hints.append(seconds)
    return max(hints) if hints else None


def upstream_error_fields(response: httpx.Response) -> tuple[str, str]:
    """Return Groq's (code, message) for an error answer, or empty strings if the body is not Groq's shape."""
    try:
        response.read()
        error = response.json().get("error")
    except (httpx.HTTPError, ValueError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code") or ""), str(error.get("message") or "")


def error_for_response(response: httpx.Response, *, model: str, from_request: bool) -> LLMError:
    status = response.status_code
    code, message = upstream_error_fields(response)
    logger.warning("The language model service answered %s (%s): %.300s", status, code or "no code", message)
    if status in (401, 403):
        return LLMAuthFailed()
    if (status == 400 and code == "model_decommissioned") or (status == 404 and code == "model_not_found"):
        return LLMModelUnavailable(model, from_request=from_request)
    if (status == 400 and code == "context_length_exceeded") or status == 413:
        return LLMContextTooLong()
    if status == 429:
        return LLMRateLimited(retry_after=retry_after_seconds(response, message))
    if status in (498, 503):
        return LLMUnavailable(retry_after=retry_after_seconds(response, message))
    if 400 <= status < 500:
        return LLMRequestRejected()
    return LLMBadGateway()


def _read_body(response: httpx.Response) -> None:
    try:
        response.read()
    except httpx.TimeoutException as exc:
        raise _Retryable(LLMTimeout()) from exc
    except httpx.TransportError as exc:
        raise LLMBadGateway(TRUNCATED) from exc


def _json_object(raw: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise LLMBadGateway()
    return data


def parse_usage(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    try:
        prompt, completion = int(data.get("prompt_tokens") or 0), int(data.get("completion_tokens") or 0)
        return Usage(prompt, completion, int(data.get("total_tokens") or prompt + completion))
    except (TypeError, ValueError):
        return None


def chunk_usage(chunk: dict[str, Any]) -> Usage | None:
    """Groq puts usage in the last chunk's x_groq; with include_usage an OpenAI-style final chunk carries it too."""
    x_groq = chunk.get("x_groq")
    return parse_usage(chunk.get("usage")) or parse_usage(x_groq.get("usage") if isinstance(x_groq, dict) else None)


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
    return [
        ModelInfo(str(e["id"]), e.get("owned_by"), e.get("context_window"), e.get("active"))
        for e in entries
        if isinstance(e, dict) and e.get("id")
    ]


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


def raise_for_stream_error(chunk: dict[str, Any]) -> None:
    x_groq = chunk.get("x_groq")
    error = (x_groq.get("error") if isinstance(x_groq, dict) else None) or chunk.get("error")
    if error:
        logger.warning("The language model service stopped a stream: %.300s", error)
        raise LLMStreamError()


def read_stream(response: httpx.Response, *, default_model: str, deadline: float) -> Iterator[StreamDelta | StreamDone]:
    """Turn Groq's event stream into deltas and a final StreamDone.

    The call's deadline only bounds the wait for the first content: a long answer may legitimately stream
    for longer than any sensible deadline, so after that only the per-read timeout applies.
    """
    parts: list[str] = []
    usage: Usage | None = None
    model, finish_reason, finished = default_model, None, False
    try:
        for data in sse_data(response.iter_lines()):
            # Reading on after [DONE] drains the body, so the connection can return to the pool.
            if finished:
                continue
            if data.strip() == "[DONE]":
                finished = True
                continue
            if not parts and time.monotonic() > deadline:
                raise LLMTimeout()
            chunk = _json_object(data)
            raise_for_stream_error(chunk)
            usage = chunk_usage(chunk) or usage
            model = str(chunk.get("model") or model)
            for choice in chunk.get("choices") or []:
                finish_reason = _choice_finish_reason(choice) or finish_reason
                if text := _delta_text(choice):
                    parts.append(text)
                    yield StreamDelta(text)
    except httpx.TimeoutException as exc:
        if not finished:
            raise LLMTimeout() from exc
    except httpx.TransportError as exc:
        if not finished:
            raise LLMBadGateway(TRUNCATED) from exc
    if not finished and finish_reason is None:
        raise LLMBadGateway(TRUNCATED)
    yield StreamDone(Completion("".join(parts), model, finish_reason, usage or Usage(0, 0, 0)))


def _choice_finish_reason(choice: Any) -> str | None:
    if not isinstance(choice, dict):
        raise LLMBadGateway()
    reason = choice.get("finish_reason")
    return reason if isinstance(reason, str) else None


def _delta_text(choice: dict[str, Any]) -> str:
    delta = choice.get("delta")
    text = delta.get("content") if isinstance(delta, dict) else None
    return text if isinstance(text, str) else ""


# httpcore's pool walks all of its connections under one lock on every request and every response, so a single
# pool shared by a worker's 64+ threads serialises them: with 128 chats in flight one worker managed about 100
# chats/s, most threads waiting on that lock. Threads therefore spread over a few clients, each with its share of
# LLM_MAX_CONNECTIONS; a thread keeps its client, so its connections stay warm.
CLIENT_SHARDS = 16

_clients: dict[tuple[int, LLMConfig], list[ChatClient | None]] = {}
_clients_lock = threading.Lock()
_thread_shard = threading.local()
_next_shard = itertools.count()


def get_client(config: LLMConfig) -> ChatClient:
    """Return this thread's share of the process's clients for `config`; a forked worker gets its own (sockets must
    not be shared)."""
    shard = getattr(_thread_shard, "index", None)
    if shard is None:
        shard = _thread_shard.index = next(_next_shard) % CLIENT_SHARDS
    key = (os.getpid(), config)
    with _clients_lock:
        clients = _clients.get(key)
        if clients is None:
            for stale in [k for k in _clients if k[0] != key[0]]:
                # The parent's connections belong to the parent: forget them without closing.
                del _clients[stale]
            clients = _clients[key] = [None] * CLIENT_SHARDS
        client = clients[shard]
        if client is None:
            share = max(1, -(-config.max_connections // CLIENT_SHARDS))
            client = clients[shard] = ChatClient(replace(config, max_connections=share))
        return client
