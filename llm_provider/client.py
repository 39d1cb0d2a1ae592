"""The HTTP calls to Groq's OpenAI-compatible chat API: one deadline per call, bounded retries."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import httpx

from core import metrics

from . import wire
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
from .types import Completion, ModelInfo, StreamDelta, StreamDone

logger = logging.getLogger(__name__)

T = TypeVar("T")


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
    def __init__(self, config: LLMConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        self._config = config
        self._max_tokens_param = wire.max_tokens_param(config.max_tokens_param, config.base_url)
        limits = httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=config.max_connections)
        self._http = _CookielessClient(
            base_url=config.base_url.rstrip("/"),
            limits=limits,
            timeout=httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout),
            transport=transport,
        )
        self._host = host_of(self._http.base_url)
        # Whole URLs made once: httpx parses and merges a path with base_url on every request otherwise.
        self._urls = {path: self._http.base_url.join(path.lstrip("/")) for path in ("/chat/completions", "/models")}

    def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        model_from_request: bool = False,
        params: Mapping[str, Any] | None = None,
    ) -> Completion:
        body = self._chat_body(
            messages, model=model, temperature=temperature, max_tokens=max_tokens, stream=False, params=params
        )
        deadline = self._deadline()

        def attempt(body: dict[str, Any]) -> Completion:
            response = self._open("POST", "/chat/completions", deadline, body=body, from_request=model_from_request)
            return wire.parse_completion(wire.json_object(_read_body(response)), default_model=body["model"])

        return self._with_fallback(attempt, body, deadline, from_request=model_from_request)

    def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        model_from_request: bool = False,
        params: Mapping[str, Any] | None = None,
    ) -> Iterator[StreamDelta | StreamDone]:
        """Yield the answer as it arrives, then a StreamDone.

        Nothing is sent before the first next(); every failure before the first delta (refusal, rate limit,
        timeout) is raised from that first next(), so a caller can fetch it before committing to a response.
        """
        body = self._chat_body(
            messages, model=model, temperature=temperature, max_tokens=max_tokens, stream=True, params=params
        )
        deadline = self._deadline()

        def attempt(body: dict[str, Any]) -> tuple[httpx.Response, str]:
            response = self._open("POST", "/chat/completions", deadline, body=body, from_request=model_from_request)
            return response, body["model"]

        # Fallback, like retries, happens only here, before the first delta: never once the answer has begun.
        response, model_sent = self._with_fallback(attempt, body, deadline, from_request=model_from_request)
        # Leaving the with-block (also via generator.close()) closes the connection, which tells the upstream to stop.
        with closing(response):
            try:
                yield from _read_stream(response, wire.StreamReader(model_sent), deadline)
            except LLMError as exc:
                metrics.upstream_error(exc.code)
                raise

    def list_models(self) -> list[ModelInfo]:
        self._require_key()
        deadline = self._deadline()

        def attempt() -> list[ModelInfo]:
            response = self._open("GET", "/models", deadline)
            return wire.parse_models(wire.json_object(_read_body(response)))

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
    ) -> httpx.Response:
        """One attempt: send the request and return a 200 response whose body is still unread."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise timed_out(self._host)
        # httpx's read timeout bounds each read, not the whole body; Groq sends a non-streamed body at once,
        # so capping every read by the time left keeps a call close to its deadline.
        timeout = httpx.Timeout(remaining, connect=min(self._config.connect_timeout, remaining))
        headers = {"Authorization": f"Bearer {self._require_key()}"}
        request = self._http.build_request(method, self._urls[path], json=body, headers=headers, timeout=timeout)
        operation = "models" if path == "/models" else "chat_stream" if (body or {}).get("stream") else "chat"
        started = time.perf_counter()
        try:
            response = self._http.send(request, stream=True)
        except httpx.TimeoutException as exc:
            metrics.upstream_attempt(operation, started, LLMTimeout.code)
            raise timed_out(self._host, retryable=True) from exc
        except httpx.TransportError as exc:
            logger.warning("Cannot reach the language model service at %s: %s", self._host, type(exc).__name__)
            metrics.upstream_attempt(operation, started, LLMUnavailable.code)
            raise unreachable(self._host, type(exc).__name__) from exc
        rate_limits_observe(response.headers)
        if response.status_code == 200:
            metrics.upstream_attempt(operation, started, "ok")
            return response
        error = _error_for_response(
            response, model=(body or {}).get("model", ""), from_request=from_request, host=self._host
        )
        metrics.upstream_attempt(operation, started, error.code)
        raise error

    def _with_fallback(
        self, attempt: Callable[[dict[str, Any]], T], body: dict[str, Any], deadline: float, *, from_request: bool
    ) -> T:
        """Runs `attempt` on `body`, with its retries; when the model still fails in a way another model may not
        (gone, rate limited, over capacity, failing, unreachable, slow), runs it again with the next of
        GROQ_FALLBACK_MODELS in the body, within the same deadline. The last model's error is the call's."""
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
                following = self._fallback_model(failure, tried, deadline, own_model=from_request and len(tried) == 1)
                if following is None:
                    if failure is error:
                        raise
                    raise failure from error
            logger.info("Falling back from model %s to %s after %s", model, following, failure.code)
            metrics.upstream_fallback(model, following, failure.code)
            body = {**body, "model": following}

    def _fallback_model(self, error: LLMError, tried: list[str], deadline: float, *, own_model: bool) -> str | None:
        """The model to try after `error`, or None. `own_model`: the failed model is the one the request named, and
        one that does not exist is the request's mistake (its 400), not a reason to answer with another."""
        if isinstance(error, LLMModelUnavailable):
            if own_model:
                return None
        elif not error.retryable:
            return None
        if time.monotonic() >= deadline:
            return None
        return next((m for m in self._config.fallback_models if m not in tried), None)

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


def _error_for_response(response: httpx.Response, *, model: str, from_request: bool, host: str) -> LLMError:
    with closing(response):
        try:
            raw = response.read()
        except httpx.HTTPError:
            raw = b""
    code, message = wire.error_fields(raw)
    retry_after = response.headers.get("retry-after")
    return error_for_status(
        response.status_code,
        code=code,
        message=message,
        retry_after=retry_after,
        model=model,
        from_request=from_request,
        host=host,
    )


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class _CookielessClient(httpx.Client):
    """The upstream authenticates by the key: the cookies it sets (Cloudflare's) are neither kept nor sent back.
    httpx would parse them into its jar on every response, about 0.33M of a call's 2.2M instructions."""

    _no_cookies = _NoCookies()

    @property  # type: ignore[override]
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies


def host_of(url: httpx.URL) -> str:
    """The upstream's host:port, for error details and logs: never the URL, which may carry credentials or a query."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = url.port or {"https": 443, "http": 80}.get(url.scheme)
    return f"{host}:{port}" if port else host


def _read_body(response: httpx.Response) -> bytes:
    with closing(response):
        try:
            return response.read()
        except httpx.TimeoutException as exc:
            raise timed_out(host_of(response.url), retryable=True) from exc
        except httpx.TransportError as exc:
            raise LLMBadGateway(TRUNCATED) from exc


def _read_stream(
    response: httpx.Response, reader: wire.StreamReader, deadline: float
) -> Iterator[StreamDelta | StreamDone]:
    """Turn the event stream into deltas and a final StreamDone.

    The call's deadline only bounds the wait for the first content: a long answer may legitimately stream
    for longer than any sensible deadline, so after that only the per-read timeout applies.
    """
    try:
        for data in wire.sse_data(response.iter_lines()):
            # Reading on after [DONE] drains the body, so the connection can return to the pool.
            if reader.finished:
                continue
            if not reader.parts and time.monotonic() > deadline:
                raise timed_out(host_of(response.url))
            yield from reader.feed(data)
    except httpx.TimeoutException as exc:
        if not reader.finished:
            raise timed_out(host_of(response.url)) from exc
    except httpx.TransportError as exc:
        if not reader.finished:
            raise LLMBadGateway(TRUNCATED) from exc
    yield reader.done()
