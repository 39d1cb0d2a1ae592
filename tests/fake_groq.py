"""A fake Groq upstream speaking the OpenAI-compatible protocol over real HTTP on loopback.

In-process: `with FakeGroq() as fake: ... fake.url`. Standalone (for benchmarks):
`python -m tests.fake_groq --port 8100 --latency 0.3`, then steer it over HTTP via `/_fake/*`.

Faults each consume one chat request: `status` (HTTP error with Groq's body, plus `retry-after` when
`retry_after` is set), `hang` (sleep `seconds`, or until `release()`, then answer), `malformed` (200 with invalid JSON),
`truncated` (connection closed mid-body), `stream_error` (`after_chunks` chunks, then a chunk carrying
`x_groq.error`; a non-stream request gets a 500 instead).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import signal
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any

from aiohttp import web

LIMIT_REQUESTS, LIMIT_TOKENS = 14_400, 250_000
TIMINGS = {"queue_time": 0.01, "prompt_time": 0.001, "completion_time": 0.002, "total_time": 0.003}
MODELS = ("openai/gpt-oss-20b", "openai/gpt-oss-120b", "llama-3.1-8b-instant")
DECOMMISSIONED = ("llama3-8b-8192", "mixtral-8x7b-32768")
MODEL_CARD = {"object": "model", "created": 1_700_000_000, "active": True, "context_window": 131_072}
ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("Bad request", "invalid_request_error", "invalid_request"),
    401: ("Invalid API Key", "invalid_request_error", "invalid_api_key"),
    403: ("Permission denied", "permission_error", "permission_denied"),
    404: ("Not found", "invalid_request_error", "not_found"),
    413: ("Request Entity Too Large", "invalid_request_error", "request_too_large"),
    429: ("Rate limit reached", "tokens", "rate_limit_exceeded"),
    498: ("Flex tier capacity exceeded. Please try again later.", "capacity_exceeded", "capacity_exceeded"),
    500: ("Internal Server Error", "internal_server_error", "internal_server_error"),
    503: ("Service Unavailable", "internal_server_error", "service_unavailable"),
}


@dataclass
class Fault:
    kind: str
    status: int = 500
    retry_after: float | None = None
    message: str | None = None
    code: str | None = None
    seconds: float = 30.0
    after_chunks: int = 2


@dataclass
class Settings:
    api_key: str = "test-key"
    models: list[str] = field(default_factory=lambda: list(MODELS))
    decommissioned: list[str] = field(default_factory=lambda: list(DECOMMISSIONED))
    context_window: int = 131_072
    latency: float = 0.0
    chunk_delay: float = 0.0
    reply: str | None = None
    reasoning: bool = False  # reason aloud on every answer, as gpt-oss does unless told otherwise
    completion_tokens: int | None = None  # report this many completion tokens (a reply that used its max_tokens)


class FakeError(Exception):
    def __init__(self, status: int, message: str | None = None, code: str | None = None, **extra: str) -> None:
        default_message, self.type, default_code = ERRORS.get(status, ERRORS[400 if status < 500 else 500])
        self.status, self.extra = status, extra
        self.message, self.code = message or default_message, code or default_code
        super().__init__(self.message)

    def response(self, headers: dict[str, str]) -> web.Response:
        error = {"message": self.message, "type": self.type, **self.extra, "code": self.code}
        return web.json_response({"error": error}, status=self.status, headers=headers)


def go_duration(seconds: float) -> str:
    minutes, secs = divmod(max(seconds, 0.0), 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """About four characters a token, of everything a message gives the model: its text, tool calls and ids."""
    return sum(math.ceil(len(message_text(m)) / 4) for m in messages)


def message_text(message: dict[str, Any]) -> str:
    calls = json.dumps(message["tool_calls"], ensure_ascii=False) if message.get("tool_calls") else ""
    return (message.get("content") or "") + calls + (message.get("tool_call_id") or "") + (message.get("name") or "")


def prompt_tokens(body: dict[str, Any], messages: list[dict[str, Any]]) -> int:
    """What Groq bills as the prompt: the messages, and the tool definitions and response format it renders into
    the model's prompt beside them."""
    rendered = [json.dumps(body[name], ensure_ascii=False) for name in ("tools", "response_format") if body.get(name)]
    return estimate_tokens(messages) + estimate_tokens([{"content": text} for text in rendered])


def model_owner(model: str) -> str:
    return "OpenAI" if model.startswith("openai/") else "Meta"


def split_words(content: str) -> list[str]:
    return re.findall(r"\s*\S+\s*", content) or ([content] if content else [])


def tool_call_pieces(call: dict[str, Any]) -> list[dict[str, Any]]:
    """A tool call as Groq streams it: the id and name first, then the arguments in two pieces."""
    arguments = call["function"]["arguments"]
    half = len(arguments) // 2
    head = {
        "index": 0,
        "id": call["id"],
        "type": "function",
        "function": {"name": call["function"]["name"], "arguments": ""},
    }
    return [head, *({"index": 0, "function": {"arguments": part}} for part in (arguments[:half], arguments[half:]))]


def fault_error(fault: Fault, model: str) -> FakeError:
    if fault.status != 429 or fault.message:
        return FakeError(fault.status, fault.message, fault.code)
    wait = go_duration(fault.retry_after if fault.retry_after is not None else 1.5)
    message = (
        f"Rate limit reached for model `{model}` in organization `org_fake` service tier `on_demand` on tokens per "
        f"minute (TPM): Limit 6000, Used 6000, Requested 100. Please try again in {wait}."
    )
    return FakeError(429, message, fault.code)


def validate(body: Any, settings: Settings) -> tuple[str, list[dict[str, Any]]]:
    if not isinstance(body, dict):
        raise FakeError(400, "Request body must be a JSON object")
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not model:
        raise FakeError(400, "'model' : property 'model' is missing", param="model")
    if not isinstance(messages, list) or not messages or not all(is_message(m) for m in messages):
        raise FakeError(400, "'messages' : must be a non-empty list of {role, content}", param="messages")
    temperature = body.get("temperature", 1)
    if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        raise FakeError(400, "'temperature' : must be between 0 and 2", param="temperature")
    if model in settings.decommissioned:
        message = f"The model `{model}` has been decommissioned and is no longer supported."
        raise FakeError(400, message, "model_decommissioned")
    if model not in settings.models:
        message = f"The model `{model}` does not exist or you do not have access to it."
        raise FakeError(404, message, "model_not_found", param="model")
    if body.get("n") not in (None, 1):
        raise FakeError(400, "'n' : number must be at most 1", param="n")
    if body.get("logprobs"):
        raise FakeError(400, "'logprobs' : is not supported with this model", param="logprobs")
    if body.get("reasoning_format") == "raw" and (body.get("tools") or body.get("response_format")):
        raise FakeError(400, "reasoning_format=raw is not supported with JSON mode or tool calling")
    if estimate_tokens(messages) > settings.context_window:
        message = "Please reduce the length of the messages or completion."
        raise FakeError(400, message, "context_length_exceeded", param="messages")
    return model, messages


def schema_instance(schema: Any, root: dict[str, Any], text: str, depth: int = 0) -> Any:
    """A value that follows the JSON schema `schema` (`root` holds its `$defs`): every property filled in, strings
    echoing `text`, the first of each enum or alternative. What `client.chat.completions.parse` reads back."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return schema_instance(target, root, text, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for alternatives in ("anyOf", "oneOf", "allOf"):
        if schema.get(alternatives):
            return schema_instance(schema[alternatives][0], root, text, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: schema_instance(sub, root, text, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        count = max(1, schema.get("minItems", 1))
        return [schema_instance(schema.get("items") or {}, root, text, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        least = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        return int(least) if kind == "integer" else float(least)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = text.ljust(schema.get("minLength", 0), ".")
    return text[: schema["maxLength"]] if "maxLength" in schema else text


def is_message(message: Any) -> bool:
    if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant", "tool"):
        return False
    if message["role"] == "tool" and not isinstance(message.get("tool_call_id"), str):
        return False
    tool_calls = message.get("tool_calls")
    if tool_calls is not None and (message["role"] != "assistant" or not isinstance(tool_calls, list)):
        return False
    return isinstance(message.get("content"), str) or (message.get("content") is None and bool(tool_calls))


def tool_call_for(body: dict[str, Any], messages: list[dict[str, Any]], question: str) -> dict[str, Any] | None:
    """With `tools`, the fake calls one unless told not to or answering tool results: the tool named by
    `tool_choice`, else the first, with `{"text": <the last user message>}` as its arguments."""
    tools, choice = body.get("tools") or [], body.get("tool_choice", "auto")
    if not tools or choice == "none" or messages[-1]["role"] == "tool":
        return None
    name = choice["function"]["name"] if isinstance(choice, dict) else tools[0]["function"]["name"]
    arguments = json.dumps({"text": question})
    return {
        "id": f"call_{uuid.uuid4().hex[:12]}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


@dataclass
class Answer:
    model: str
    content: str | None
    usage: dict[str, Any]
    tool_call: dict[str, Any] | None = None
    reasoning: str | None = None
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4()}")
    request_id: str = field(default_factory=lambda: f"req_{uuid.uuid4().hex[:26]}")
    created: int = field(default_factory=lambda: int(time.time()))

    def envelope(self, kind: str) -> dict[str, Any]:
        ids = {"id": self.id, "object": kind, "created": self.created, "model": self.model}
        return ids | {"system_fingerprint": "fp_fake0000"}

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_call else "stop"

    def body(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_call:
            message["tool_calls"] = [self.tool_call]
        if self.reasoning:
            message["reasoning"] = self.reasoning
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}
        answer = {"choices": [choice], "usage": self.usage, "x_groq": {"id": self.request_id}}
        return self.envelope("chat.completion") | answer

    def event(self, delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        chunk = {**self.envelope("chat.completion.chunk"), "choices": choices, **extra}
        return f"data: {json.dumps(chunk)}\n\n".encode()


class FakeGroq:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, base_path: str = "/openai/v1", **settings: Any):
        self.host, self.port, self.base_path = host, port, "/" + base_path.strip("/")
        self._initial = settings
        self.settings = Settings(**settings)
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._requests: deque[dict[str, Any]] = deque(maxlen=10_000)
        self.disconnects = self.in_flight = self._used_requests = self._used_tokens = 0
        self.held = 0  # requests waiting in a `hang` fault now: what a test waits for before it reads their effect
        # reset() starts a new generation: a request of an earlier one (a test's leftover, still waiting upstream)
        # no longer counts in `in_flight` or `disconnects`, which then describe the current test's requests alone.
        self._generation = 0
        self._wakeup: asyncio.Event | None = None  # set by release(): every wait (latency, hang) ends at once
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def root(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.root + self.base_path

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    def configure(self, **changes: Any) -> None:
        unknown = set(changes) - {f.name for f in fields(Settings)}
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        for name, value in changes.items():
            setattr(self.settings, name, value)

    def add_faults(self, *faults: Fault | dict[str, Any]) -> None:
        parsed = [f if isinstance(f, Fault) else Fault(**f) for f in faults]
        with self._lock:
            self._faults.extend(parsed)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self.disconnects = self.in_flight = self._used_requests = self._used_tokens = 0
            self.held = 0
            self._generation += 1
        self.settings = Settings(**self._initial)

    def release(self) -> None:
        """Ends every wait of the requests in progress now (their latency, a `hang` fault): they answer at once.
        A test holds a request upstream with a long hang, as long as it needs, then releases it."""
        if self._loop is None:
            return
        done = threading.Event()

        def wake() -> None:
            if self._wakeup is not None:
                self._wakeup.set()
            self._wakeup = asyncio.Event()
            done.set()

        self._loop.call_soon_threadsafe(wake)
        done.wait(10)

    async def _wait(self, seconds: float) -> None:
        """Sleeps `seconds`, or less if release() is called meanwhile."""
        if seconds <= 0 or self._wakeup is None:
            await asyncio.sleep(max(seconds, 0))
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    async def _hold(self, seconds: float) -> None:
        with self._lock:
            generation = self._generation
            self.held += 1
        try:
            await self._wait(seconds)
        finally:
            self._add("held", -1, generation)

    def finish(self, timeout: float = 5.0) -> bool:
        """Ends what a test left behind: no more faults or delays, and the requests in progress answered at once;
        then waits until none is in flight (see wait_idle)."""
        with self._lock:
            self._faults.clear()
        self.configure(latency=0.0, chunk_delay=0.0)
        self.release()
        return self.wait_idle(timeout)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no chat request is in progress, so a late disconnect cannot leak into the next test."""
        end = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < end:
            time.sleep(0.01)
        return not self.in_flight

    def _add(self, name: str, delta: int, generation: int | None = None) -> None:
        with self._lock:
            if generation is None or generation == self._generation:
                setattr(self, name, getattr(self, name) + delta)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _record(self, request: web.Request, body: Any) -> dict[str, str]:
        """Record the request and return the headers every Groq answer carries: rate limits, and Cloudflare's
        bot-management cookie."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        entry = {"path": request.path, "method": request.method, "time": time.time(), "headers": headers, "json": body}
        with self._lock:
            self._requests.append(entry)
            self._used_requests += 1
            used_requests, used_tokens = min(self._used_requests, LIMIT_REQUESTS), min(self._used_tokens, LIMIT_TOKENS)
        return {
            "x-ratelimit-limit-requests": str(LIMIT_REQUESTS),
            "x-ratelimit-limit-tokens": str(LIMIT_TOKENS),
            "x-ratelimit-remaining-requests": str(LIMIT_REQUESTS - used_requests),
            "x-ratelimit-remaining-tokens": str(LIMIT_TOKENS - used_tokens),
            "x-ratelimit-reset-requests": go_duration(86_400 * used_requests / LIMIT_REQUESTS),
            "x-ratelimit-reset-tokens": go_duration(60 * used_tokens / LIMIT_TOKENS),
            "set-cookie": "__cf_bm=fake-bot-management; path=/; HttpOnly; SameSite=None",
        }

    def _check_auth(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {self.settings.api_key}":
            raise FakeError(401)

    def _answer(self, model: str, messages: list[dict[str, Any]], body: dict[str, Any]) -> Answer:
        """Echoes the last user message; answers tool results with "Tool said: ...", JSON mode with a JSON object
        (with a `json_schema`, one that follows it), and `reasoning_format: parsed` with a reasoning too."""
        last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        content: str | None = self.settings.reply if self.settings.reply is not None else f"Echo: {last_user}"
        if messages[-1]["role"] == "tool":
            content = f"Tool said: {messages[-1]['content']}"
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_object":
            content = json.dumps({"echo": last_user})
        elif response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema") or {}
            content = json.dumps(schema_instance(schema, schema, last_user))
        tool_call = tool_call_for(body, messages, last_user)
        if tool_call:
            content = None
        reasons = body.get("reasoning_format") == "parsed" or (self.settings.reasoning and not body.get("tools"))
        reasoning = f"Thinking about: {last_user}" if reasons else None
        written = (content or "") + (json.dumps(tool_call) if tool_call else "") + (reasoning or "")
        prompt, completion = prompt_tokens(body, messages), estimate_tokens([{"content": written}])
        if self.settings.completion_tokens is not None:
            completion = self.settings.completion_tokens
        self._add("_used_tokens", prompt + completion)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        return Answer(model, content, usage | TIMINGS, tool_call, reasoning)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body: Any = await request.json()
        except ValueError:
            body = None
        headers = self._record(request, body)
        with self._lock:
            generation = self._generation
            self.in_flight += 1
        try:
            return await self._respond(request, body, headers)
        except FakeError as error:
            return error.response(headers)
        except (asyncio.CancelledError, ConnectionResetError):
            self._add("disconnects", 1, generation)
            raise
        finally:
            self._add("in_flight", -1, generation)

    async def _respond(self, request: web.Request, body: Any, headers: dict[str, str]) -> web.StreamResponse:
        self._check_auth(request)
        model, messages = validate(body, self.settings)
        await self._wait(self.settings.latency)
        fault, streaming = self._next_fault(), bool(body.get("stream"))
        kind = fault.kind if fault else None
        if fault and kind == "status":
            if fault.retry_after is not None:
                headers["retry-after"] = f"{fault.retry_after:g}"
            raise fault_error(fault, model)
        if fault and kind == "hang":
            await self._hold(fault.seconds)
        if kind == "stream_error" and not streaming:
            raise FakeError(500)
        if kind == "malformed":
            text = 'data: {"id": "chatcmpl-broken", "choices": [\n\n' if streaming else '{"id": "chatcmpl-broken", '
            content_type = "text/event-stream" if streaming else "application/json"
            return web.Response(text=text, headers=headers, content_type=content_type)
        answer = self._answer(model, messages, body)
        if streaming:
            return await self._stream(request, body, headers, fault, answer)
        response = web.StreamResponse(headers={**headers, "Content-Type": "application/json"})
        data = json.dumps(answer.body()).encode()
        response.content_length = len(data)
        await response.prepare(request)
        if kind == "truncated":
            return await self._cut(request, response, data[: len(data) // 2])
        await response.write(data)
        return response

    async def _cut(self, request: web.Request, response: web.StreamResponse, data: bytes) -> web.StreamResponse:
        await response.write(data)
        assert request.transport is not None
        request.transport.close()
        return response

    async def _stream(
        self, request: web.Request, body: dict[str, Any], headers: dict[str, str], fault: Fault | None, answer: Answer
    ) -> web.StreamResponse:
        sse_headers = {**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        response = web.StreamResponse(headers=sse_headers)
        await response.prepare(request)
        await response.write(answer.event({"role": "assistant", "content": ""}, x_groq={"id": answer.request_id}))
        for word in split_words(answer.reasoning or ""):
            await response.write(answer.event({"reasoning": word}))
        words = split_words(answer.content or "")
        if fault and fault.kind in ("stream_error", "truncated"):
            words = words[: fault.after_chunks]
        for word in words:
            await self._wait(self.settings.chunk_delay)
            await response.write(answer.event({"content": word}))
        if answer.tool_call:
            for piece in tool_call_pieces(answer.tool_call):
                await response.write(answer.event({"tool_calls": [piece]}))
        if fault and fault.kind == "truncated":
            return await self._cut(request, response, b"")
        if fault and fault.kind == "stream_error":
            error = fault.message or "Stream stopped: the model failed to generate"
            await response.write(answer.event(None, x_groq={"id": answer.request_id, "error": error}))
        else:
            usage = {"id": answer.request_id, "usage": answer.usage}
            await response.write(answer.event({}, answer.finish_reason, x_groq=usage))
            if (body.get("stream_options") or {}).get("include_usage"):
                await response.write(answer.event(None, usage=answer.usage))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _models(self, request: web.Request) -> web.Response:
        headers = self._record(request, None)
        try:
            self._check_auth(request)
        except FakeError as error:
            return error.response(headers)
        data = [{"id": m, **MODEL_CARD, "owned_by": model_owner(m)} for m in self.settings.models]
        return web.json_response({"object": "list", "data": data}, headers=headers)

    async def _control(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        try:
            if action == "config":
                self.configure(**await request.json())
            elif action == "faults":
                self.add_faults(*(await request.json())["faults"])
            elif action == "reset":
                self.reset()
        except (ValueError, TypeError, KeyError) as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response({"ok": True})

    async def _recorded(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": self.requests, "disconnects": self.disconnects})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(f"{self.base_path}/chat/completions", self._chat)
        app.router.add_get(f"{self.base_path}/models", self._models)
        app.router.add_post("/_fake/{action:config|faults|reset}", self._control)
        app.router.add_get("/_fake/requests", self._recorded)
        return app

    def start(self) -> FakeGroq:
        ready = threading.Event()
        loop = self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            # handler_cancellation: a client hanging up cancels its handler, which is how disconnects are seen.
            self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
            await site.start()
            self.port = self._runner.addresses[0][1]
            self._wakeup = asyncio.Event()
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(serve())
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-groq", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake Groq server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = self._runner = self._thread = None

    def __enter__(self) -> FakeGroq:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description="A stand-in for Groq's OpenAI-compatible API on this machine: it echoes each message back "
        '("Echo: ..."), streams word by word, and answers a json_schema response format with JSON that follows '
        "it. Point the service at it with GROQ_BASE_URL=<the URL it prints> and GROQ_API_KEY=<--api-key>, or run "
        "both at once with `make try`.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default: %(default)s).")
    parser.add_argument(
        "--port", type=int, default=8100, help="Port to listen on; 0 picks a free one (default: %(default)s)."
    )
    parser.add_argument(
        "--base-path", default="/openai/v1", help="Path the API is served under, as Groq's (default: %(default)s)."
    )
    parser.add_argument(
        "--api-key",
        default="test-key",
        help="The key clients must send as `Authorization: Bearer` (default: %(default)s).",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="Seconds to wait before each answer (default: %(default)s)."
    )
    parser.add_argument(
        "--chunk-delay",
        type=float,
        default=0.0,
        help="Seconds between the pieces of a streamed answer (default: %(default)s).",
    )
    args = parser.parse_args()
    fake = FakeGroq(**vars(args))
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with fake:
        print(fake.url, flush=True)
        stopping.wait()


if __name__ == "__main__":
    main()
