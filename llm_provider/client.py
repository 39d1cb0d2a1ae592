"""The HTTP calls to Groq's OpenAI-compatible chat API: one deadline per call, bounded retries.

The calls go through httpcore, httpx's own transport layer, under a few lines of request code of ours: one
connection pool per process (connections.py), at most LLM_MAX_CONNECTIONS connections, a call waiting for one
within its deadline. HTTPS_PROXY / HTTP_PROXY / ALL_PROXY and NO_PROXY in the environment are honoured. The upstream
authenticates by the key, so cookies are neither kept nor sent back."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Collection, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpcore

from core import metrics, tracing

from . import wire
from .connections import DEFAULT_PORTS, UpstreamConnections, connection_pool, host_of
from .exceptions import (
    TRUNCATED,
    LLMBadGateway,
    LLMError,
    LLMModelUnavailable,
    LLMNotConfigured,
    LLMTimeout,
    LLMUnavailable,
    error_for_status,
    timed_out,
    unreachable,
)
from .rate_limits import rate_limits_observe
from .reachability import reachability_observe
from .types import Completion, ModelInfo, StreamDelta, StreamDone

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Failures on the way to the upstream or back; a timeout of any kind is told apart first.
TRANSPORT_ERRORS = (
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
    OSError,
)


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
    fallback_models: tuple[str, ...] = ()  # GROQ_FALLBACK_MODELS, tried in order


class ChatClient:
    def __init__(self, config: LLMConfig, *, pool: httpcore.ConnectionPool | UpstreamConnections | None = None) -> None:
        """`pool`: the connections to use instead of the process's own (the tests send a real Groq URL to the
        fake)."""
        self._config = config
        self._max_tokens_param = wire.max_tokens_param(config.max_tokens_param, config.base_url)
        base = urlsplit(config.base_url.rstrip("/"))
        self._host = host_of(base)
        self._pool = pool or connection_pool(base, config.max_connections)
        # Made once: the same URLs and Host header serve every call.
        port = base.port or DEFAULT_PORTS.get(base.scheme)
        self._urls = {
            path: httpcore.URL(
                scheme=base.scheme.encode(),
                host=(base.hostname or "").encode(),
                port=port,
                target=f"{base.path}{path}".encode(),
            )
            for path in ("/chat/completions", "/models")
        }
        self._host_header = base.netloc.rpartition("@")[2].encode()

    def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        model_from_request: bool = False,
        params: Mapping[str, Any] | None = None,
        models_allowed: Collection[str] = (),
    ) -> Completion:
        body = self._chat_body(
            messages, model=model, temperature=temperature, max_tokens=max_tokens, stream=False, params=params
        )
        deadline = self._deadline()

        def attempt(body: dict[str, Any]) -> Completion:
            response = self._open("POST", "/chat/completions", deadline, body=body, from_request=model_from_request)
            reply = wire.json_object(_read_body(response, self._host))
            return wire.parse_completion(reply, default_model=body["model"])

        with tracing.upstream_span(body, self._host) as span:
            completion = self._with_fallback(
                attempt, body, deadline, from_request=model_from_request, models_allowed=models_allowed
            )
            _traced(span, completion)
        return completion

    def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        model_from_request: bool = False,
        params: Mapping[str, Any] | None = None,
        models_allowed: Collection[str] = (),
    ) -> Iterator[StreamDelta | StreamDone]:
        """Yield the answer as it arrives, then a StreamDone.

        Nothing is sent before the first next(); every failure before the first delta (refusal, rate limit,
        timeout) is raised from that first next(), so a caller can fetch it before committing to a response.
        """
        body = self._chat_body(
            messages, model=model, temperature=temperature, max_tokens=max_tokens, stream=True, params=params
        )
        deadline = self._deadline()

        def attempt(body: dict[str, Any]) -> tuple[httpcore.Response, str]:
            response = self._open("POST", "/chat/completions", deadline, body=body, from_request=model_from_request)
            return response, body["model"]

        with tracing.upstream_span(body, self._host) as span:
            # Fallback, like retries, happens only here, before the first delta: never once the answer has begun.
            response, model_sent = self._with_fallback(
                attempt, body, deadline, from_request=model_from_request, models_allowed=models_allowed
            )
            # Leaving early (also via generator.close()) closes the connection, which tells the upstream to stop.
            try:
                done = yield from _read_stream(response, wire.StreamReader(model_sent), deadline, self._host)
                _traced(span, done.completion)
                yield done
            except LLMError as exc:
                metrics.upstream_error(exc.code)
                reachability_observe(exc)
                raise
            finally:
                response.close()

    def list_models(self) -> list[ModelInfo]:
        self._require_key()
        deadline = self._deadline()

        def attempt() -> list[ModelInfo]:
            response = self._open("GET", "/models", deadline)
            return wire.parse_models(wire.json_object(_read_body(response, self._host)))

        return self._with_retries(attempt, deadline)

    def close(self) -> None:
        self._pool.close()

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
        messages: list[dict[str, Any]],
        *,
        model: str | None,
        temperature: float | None,
        max_tokens: int | None,
        stream: bool,
        params: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        self._require_key()
        config = self._config
        return wire.chat_body(
            messages,
            model=model or config.model,
            temperature=config.temperature if temperature is None else temperature,
            max_tokens=config.max_tokens if max_tokens is None else max_tokens,
            max_tokens_param=self._max_tokens_param,
            stream=stream,
            params=params,
        )

    def _open(
        self,
        method: str,
        path: str,
        deadline: float,
        *,
        body: dict[str, Any] | None = None,
        from_request: bool = False,
    ) -> httpcore.Response:
        """One attempt: send the request and return a 200 response whose body is still unread."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise timed_out(self._host)
        # The read timeout bounds each read, not the whole body; Groq sends a non-streamed body at once, so capping
        # every read by the time left keeps a call close to its deadline. The pool timeout bounds the wait for a
        # free connection.
        connect = min(self._config.connect_timeout, remaining)
        timeout = {"connect": connect, "read": remaining, "write": remaining, "pool": remaining}
        headers = [(b"Host", self._host_header), (b"Authorization", f"Bearer {self._require_key()}".encode())]
        content = None if body is None else _json_bytes(body)
        if content is not None:
            headers += [(b"Content-Type", b"application/json"), (b"Content-Length", str(len(content)).encode())]
        request = httpcore.Request(
            method, self._urls[path], headers=headers, content=content, extensions={"timeout": timeout}
        )
        operation = "models" if path == "/models" else "chat_stream" if (body or {}).get("stream") else "chat"
        started = time.perf_counter()
        # A chat's outcome updates the health this process reports; the health probe (`models`) sets it itself.
        observe = reachability_observe if operation != "models" else _ignore
        try:
            response = self._pool.handle_request(request)
        except httpcore.TimeoutException as exc:
            metrics.upstream_attempt(operation, started, LLMTimeout.code)
            error = timed_out(self._host, retryable=True)
            observe(error)
            raise error from exc
        except TRANSPORT_ERRORS as exc:
            error = self._unreachable(exc, operation, started)
            observe(error)
            raise error from exc
        response_headers = _headers(response)
        rate_limits_observe(response_headers)
        if response.status == 200:
            metrics.upstream_attempt(operation, started, "ok")
            observe(None)
            return response
        error = _error_for_response(
            response, response_headers, model=(body or {}).get("model", ""), from_request=from_request, host=self._host
        )
        metrics.upstream_attempt(operation, started, error.code)
        observe(error)
        raise error

    def _unreachable(self, exc: Exception, operation: str, started: float) -> LLMError:
        cause = type(exc).__name__
        logger.warning("Cannot reach the language model service at %s: %s", self._host, cause)
        metrics.upstream_attempt(operation, started, LLMUnavailable.code)
        return unreachable(self._host, cause)

    def _with_fallback(
        self,
        attempt: Callable[[dict[str, Any]], T],
        body: dict[str, Any],
        deadline: float,
        *,
        from_request: bool,
        models_allowed: Collection[str] = (),
    ) -> T:
        """Runs `attempt` on `body`, with its retries; when the model still fails in a way another model may not
        (gone, rate limited, over capacity, failing, unreachable, slow), runs it again with the next of
        GROQ_FALLBACK_MODELS in the body (of `models_allowed` only, when given), within the same deadline. The last
        model's error is the call's."""
        tried: list[str] = []
        while True:
            model = body["model"]
            tried.append(model)
            try:
                return self._with_retries(partial(attempt, body), deadline)
            except LLMError as error:
                failure = error
                if len(tried) > 1 and isinstance(error, LLMModelUnavailable):
                    # A fallback model comes from our settings even when the request named its first model.
                    failure = LLMModelUnavailable(model, fallback=True)
                following = self._fallback_model(
                    failure, tried, deadline, own_model=from_request and len(tried) == 1, allowed=models_allowed
                )
                if following is None:
                    if failure is error:
                        raise
                    raise failure from error
            logger.info("Falling back from model %s to %s after %s", model, following, failure.code)
            metrics.upstream_fallback(model, following, failure.code)
            body = {**body, "model": following}

    def _fallback_model(
        self, error: LLMError, tried: list[str], deadline: float, *, own_model: bool, allowed: Collection[str] = ()
    ) -> str | None:
        """The model to try after `error`, or None. `own_model`: the failed model is the one the request named, and
        one that does not exist is the request's mistake (its 400), not a reason to answer with another."""
        if isinstance(error, LLMModelUnavailable):
            if own_model:
                return None
        elif not error.retryable:
            return None
        if time.monotonic() >= deadline:
            return None
        usable = (m for m in self._config.fallback_models if not allowed or m in allowed)
        return next((m for m in usable if m not in tried), None)

    def _with_retries(self, attempt: Callable[[], T], deadline: float) -> T:
        attempt_number = 0
        while True:
            try:
                return attempt()
            except LLMError as error:
                metrics.upstream_error(error.code)
                delay = self._retry_delay(error, attempt_number, deadline)
                if delay is None:
                    raise
                logger.info("Retrying the language model call in %.2fs after %s", delay, error.code)
                metrics.upstream_retry(error.code)
            time.sleep(delay)
            attempt_number += 1

    def _retry_delay(self, error: LLMError, attempt_number: int, deadline: float) -> float | None:
        """How long to wait before the next attempt, or None if there is none to make."""
        if not error.retryable or attempt_number >= self._config.max_retries:
            return None
        delay = self._backoff(attempt_number, error.retry_after)
        return None if time.monotonic() + delay >= deadline else delay

    def _backoff(self, attempt_number: int, hint: float | None) -> float:
        ceiling = min(self._config.backoff_max, self._config.backoff_base * 2**attempt_number)
        # Jitter spreads the retries of many workers that failed at the same moment.
        jittered = random.uniform(ceiling / 2, ceiling)
        return max(jittered, hint or 0.0)


def _ignore(error: LLMError | None) -> None:
    pass


def _error_for_response(
    response: httpcore.Response, headers: Mapping[str, str], *, model: str, from_request: bool, host: str
) -> LLMError:
    try:
        raw = response.read()
    except (httpcore.TimeoutException, *TRANSPORT_ERRORS):
        raw = b""
    finally:
        response.close()
    code, message = wire.error_fields(raw)
    return error_for_status(
        response.status,
        code=code,
        message=message,
        retry_after=headers.get("retry-after"),
        model=model,
        from_request=from_request,
        host=host,
    )


def _traced(span: tracing.UpstreamSpan, completion: Completion) -> None:
    span.answered(
        model=completion.model,
        finish_reasons=[completion.finish_reason] if completion.finish_reason else [],
        input_tokens=completion.usage.prompt_tokens,
        output_tokens=completion.usage.completion_tokens,
    )


def _headers(response: httpcore.Response) -> dict[str, str]:
    """The answer's headers by lower-case name (what the rate limits and Retry-After are read from)."""
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in response.headers}


def _json_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _read_body(response: httpcore.Response, host: str) -> bytes:
    try:
        return response.read()
    except httpcore.TimeoutException as exc:
        raise timed_out(host, retryable=True) from exc
    except TRANSPORT_ERRORS as exc:
        raise LLMBadGateway(TRUNCATED) from exc
    finally:
        response.close()


def _read_stream(
    response: httpcore.Response, reader: wire.StreamReader, deadline: float, host: str
) -> Generator[StreamDelta, None, StreamDone]:
    """Turn the event stream into deltas, and return the StreamDone.

    The call's deadline only bounds the wait for the first content: a long answer may legitimately stream
    for longer than any sensible deadline, so after that only the per-read timeout applies.
    """
    try:
        for data in wire.sse_data(response.iter_stream()):
            # Reading on after [DONE] drains the body, so the connection can return to the pool.
            if reader.finished:
                continue
            if not reader.parts and time.monotonic() > deadline:
                raise timed_out(host)
            yield from reader.feed(data)
    except httpcore.TimeoutException as exc:
        if not reader.finished:
            raise timed_out(host) from exc
    except TRANSPORT_ERRORS as exc:
        if not reader.finished:
            raise LLMBadGateway(TRUNCATED) from exc
    return reader.done()
