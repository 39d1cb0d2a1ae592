"""OpenTelemetry traces, off unless the standard OTEL_* variables ask for them (docs/configuration.md, Tracing).

When on, each request is a trace: the request's span (`traced_wsgi`, ended when the server closes the body, so a
stream's span lasts as long as the stream), a span per Redis command (OpenTelemetry's Redis instrumentation) and a
span for the call to the upstream (`upstream_span`: the upstream client speaks httpcore, which no instrumentation
covers), with the GenAI semantic conventions' attributes. The sampler is the SDK's, from OTEL_TRACES_SAMPLER and
OTEL_TRACES_SAMPLER_ARG (by default parentbased_always_on: every trace the caller did not mark as dropped); a
request it drops makes no span at all below its own.

When off, nothing here imports OpenTelemetry, and every function is a check of one module-level flag."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

DEFAULT_SERVICE_NAME = "chatbot-api"
GEN_AI_SYSTEM = "groq"

_tracer: Tracer | None = None
_provider: TracerProvider | None = None

# The SDK's modules whose `threading.Lock()` guards a span's own state: the span (`opentelemetry.sdk.trace`), its
# attributes (`opentelemetry.attributes`), its events and links (`opentelemetry.sdk.util`). See `_os_locks`.
SPAN_LOCK_MODULES = ("opentelemetry.sdk.trace", "opentelemetry.attributes", "opentelemetry.sdk.util")


class TracingConfigurationError(ValueError):
    pass


def _off(value: str | None) -> bool:
    return (value or "").strip().lower() in ("", "none")


def tracing_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """On when OTEL_TRACES_EXPORTER names an exporter, or an OTLP endpoint is set; OTEL_SDK_DISABLED=true wins."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if "OTEL_TRACES_EXPORTER" in environ:
        return not _off(environ["OTEL_TRACES_EXPORTER"])
    return not (
        _off(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) and _off(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    )


def tracing_enabled() -> bool:
    return _tracer is not None


def _exporter_names(environ: Mapping[str, str]) -> list[str]:
    names = [name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if name.strip()]
    for name in names:
        if name not in ("otlp", "console", "none"):
            raise TracingConfigurationError(f"OTEL_TRACES_EXPORTER={name} is not supported: use otlp, console or none.")
    if "otlp" in names:
        protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        if protocol.strip().lower() != "http/protobuf":
            raise TracingConfigurationError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported: this service exports OTLP over HTTP "
                "(http/protobuf); point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port (4318)."
            )
    return names


SAMPLERS = (
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
    "always_on",
    "always_off",
    "traceidratio",
)


def _sampler_check(environ: Mapping[str, str]) -> None:
    """The SDK reads OTEL_TRACES_SAMPLER(_ARG) itself, but takes a name it does not know, or a ratio that is not a
    number, for its default (every trace): a typo would cost every chat its traces' CPU unannounced."""
    name = environ.get("OTEL_TRACES_SAMPLER", SAMPLERS[0]).strip().lower()
    if name not in SAMPLERS:
        raise TracingConfigurationError(
            f"OTEL_TRACES_SAMPLER={name} is not supported: use one of {', '.join(SAMPLERS)}."
        )
    if name.endswith("traceidratio") and "OTEL_TRACES_SAMPLER_ARG" in environ:
        ratio = environ["OTEL_TRACES_SAMPLER_ARG"].strip()
        try:
            valid = 0.0 <= float(ratio) <= 1.0
        except ValueError:
            valid = False
        if not valid:
            raise TracingConfigurationError(
                f"OTEL_TRACES_SAMPLER_ARG={ratio} is not a ratio: give the share of traces to keep, from 0 to 1 "
                "(0.1 keeps a tenth)."
            )


def tracing_configuration_check(environ: Mapping[str, str] = os.environ) -> None:
    """Raises TracingConfigurationError, naming the variable, for OTEL_* settings this service cannot follow: at
    start, in gunicorn's master, rather than in every worker."""
    if tracing_requested(environ):
        _exporter_names(environ)
        _sampler_check(environ)


def _exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    for name in _exporter_names(environ):
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
    return exporters


def tracing_start(exporter: SpanExporter | None = None, *, environ: Mapping[str, str] = os.environ) -> None:
    """Sets up tracing in this process, once: the exporters OTEL_TRACES_EXPORTER names (or `exporter`, given
    directly: the tests' in-memory one, whose spans are then handed over at once), and the Redis instrumentation.
    Called where the WSGI application is made, so under gunicorn in each worker after it forked: the batch
    processor's export thread (a greenlet under gevent) belongs to the worker."""
    global _tracer, _provider
    if _tracer is not None:
        return
    from opentelemetry import trace
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import OTEL_SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    _os_locks(True)
    attributes = {} if environ.get(OTEL_SERVICE_NAME) else {"service.name": DEFAULT_SERVICE_NAME}
    provider = TracerProvider(resource=_resource_hashed_once(Resource.create(attributes)))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for each in _exporters(environ):
            provider.add_span_processor(BatchSpanProcessor(each))
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    _provider = provider
    _tracer = provider.get_tracer("chatbot")


def _resource_hashed_once(resource: Resource) -> Resource:
    """`resource` with its hash computed once: the OTLP exporter groups each span by its resource, and the SDK's
    `Resource.__hash__` serialises the attributes to JSON every time (a resource never changes)."""
    from opentelemetry.sdk.resources import Resource as SdkResource

    class HashedOnce(SdkResource):
        def __init__(self, attributes: Mapping[str, Any], schema_url: str | None) -> None:
            super().__init__(attributes, schema_url)
            self._hash = super().__hash__()

        def __hash__(self) -> int:
            return self._hash

    return HashedOnce(resource.attributes, resource.schema_url)


def tracing_stop() -> None:
    """Exports what is left and turns tracing off in this process (a gunicorn worker's exit; the tests)."""
    global _tracer, _provider
    if _provider is None:
        return
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor().uninstrument()
    _provider.shutdown()
    _tracer = _provider = None
    _os_locks(False)


class _OsLockThreading:
    """`threading` as the span modules see it under gevent: `Lock` is the operating system's, the rest gevent's."""

    def __init__(self, lock: Callable[[], Any]) -> None:
        self.Lock = lock

    def __getattr__(self, name: str) -> Any:
        import threading

        return getattr(threading, name)


def _os_locks(on: bool) -> None:
    """Under gevent (a gunicorn worker), gives the locks of a span's own state OS locks instead of gevent's.

    The SDK makes a lock per span, per attribute dictionary, per event and link list, and takes two at each
    `set_attribute` (the Redis instrumentation sets seven per command): gevent's lock is Python code, and was the
    largest single item of a traced chat's CPU (docs/performance.md, Tracing). An OS lock is safe here because no
    greenlet switch can happen while one of these is held: they guard a few dictionary and deque operations, no I/O
    and no gevent call, and a span is used by the one request that made it (the one exception, a warning logged
    under a span's lock when an ended span is given an attribute, could at worst switch to a greenlet that does not
    use that span). The batch processor's lock and event, which its export (I/O) runs under, are in another module
    and stay gevent's. tests/test_tracing.py fails if the SDK's modules start using `threading` for anything but
    these locks."""
    import importlib
    import threading

    try:
        from gevent import monkey
    except ImportError:
        return
    if not monkey.is_module_patched("threading"):
        return
    replacement = _OsLockThreading(monkey.get_original("_thread", "allocate_lock")) if on else threading
    for name in SPAN_LOCK_MODULES:
        importlib.import_module(name).threading = replacement  # type: ignore[attr-defined]


def traced_wsgi(application: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """`application` with a span per request (and the incoming `traceparent` honoured) when tracing is on."""
    if _tracer is None:
        return application
    return _TracedWsgi(application, _tracer)


class _TracedWsgi:
    """The request's span, made here rather than by OpenTelemetry's WSGI instrumentation, which before the sampler
    decides builds some fifteen attributes, four metric records and two wrappers per request (docs/performance.md,
    Tracing). A request the sampler drops gets a non-recording span (its trace id still in the log line and the
    header, and passed on) and instrumentation suppressed, so its Redis commands and upstream call make no spans at
    all. The span and the context end when the server closes the body: a stream's when the stream ends."""

    __slots__ = ("application", "tracer")

    def __init__(self, application: Callable[..., Iterable[bytes]], tracer: Tracer) -> None:
        self.application = application
        self.tracer = tracer

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from opentelemetry import context, propagate, trace
        from opentelemetry.instrumentation.wsgi import wsgi_getter
        from opentelemetry.trace import SpanKind

        method = environ.get("REQUEST_METHOD") or "_OTHER"
        parent = propagate.extract(environ, getter=wsgi_getter)
        span = self.tracer.start_span(method, parent, kind=SpanKind.SERVER)
        recording = span.is_recording()
        if recording:
            # The path without the query string, which may carry credentials (the request log leaves it out too).
            span.set_attributes(
                {
                    "http.request.method": method,
                    "url.scheme": environ.get("wsgi.url_scheme", "http"),
                    "url.path": environ.get("PATH_INFO") or "/",
                    "server.address": _host_name(environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")),
                }
            )
        current = trace.set_span_in_context(span, parent)
        if not recording:
            current = context.set_value(context._SUPPRESS_INSTRUMENTATION_KEY, True, current)
        token = context.attach(current)

        def traced_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if recording:
                code = int(status[:3])
                span.set_attribute("http.response.status_code", code)
                if code >= 500:
                    from opentelemetry.trace import Status, StatusCode

                    span.set_attribute("error.type", status[:3])
                    span.set_status(Status(StatusCode.ERROR))
            return start_response(status, headers, exc_info)

        try:
            body = self.application(environ, traced_start_response)
        except BaseException as error:
            _failed(span, error)
            span.end()
            context.detach(token)
            raise
        return _TracedBody(body, span, token)


class _TracedBody:
    """The application's answer, ending the request's span and context when the server closes it (PEP 3333: it
    always does, also when the client left before the last byte)."""

    __slots__ = ("body", "span", "token")

    def __init__(self, body: Iterable[bytes], span: Span, token: object) -> None:
        self.body = body
        self.span = span
        self.token = token

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        from opentelemetry import context

        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        except BaseException as error:
            _failed(self.span, error)
            raise
        finally:
            self.span.end()
            context.detach(self.token)  # type: ignore[arg-type]


def _host_name(host: str) -> str:
    """`example.com:8000` -> `example.com`, `[::1]:8000` -> `::1`."""
    name, colon, port = host.rpartition(":")
    if not colon or not port.isdigit() or (name.count(":") and not name.endswith("]")):
        name = host
    return name.strip("[]")


def _failed(span: Span, error: BaseException) -> None:
    if span.is_recording() and not isinstance(error, GeneratorExit):
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("error.type", type(error).__qualname__)
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, str(error)))


def current_trace_id() -> str | None:
    """The trace id of the request being served, as 32 hex digits; None with tracing off or outside a trace."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def route_template(pattern: str) -> str:
    """A URL pattern as the semantic conventions' http.route: `^chat/?$` -> `/chat`, `<str:session_id>` and
    `(?P<session_id>[^/]+)` -> `{session_id}`."""
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern)
    route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
    route = route.removeprefix("^").removesuffix("$").replace("/?", "")
    return "/" + route.lstrip("/")


def request_span_name(method: str, pattern: str | None) -> None:
    """Names the request's span as the semantic conventions say, `{method} {route}`, once the URL is resolved."""
    if _tracer is None or not pattern:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        route = route_template(pattern)
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)


class UpstreamSpan:
    """The span of one call to the upstream, from its first attempt to its last byte; not made the current span,
    since a stream's caller goes on with other work (Redis) between the pieces it reads."""

    __slots__ = ("_span",)

    def __init__(self, span: Span | None) -> None:
        self._span = span

    def __enter__(self) -> UpstreamSpan:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: object) -> None:
        span = self._span
        if span is None:
            return
        if error is not None and not isinstance(error, GeneratorExit):
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("error.type", getattr(error, "code", None) or type(error).__qualname__)
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)))
        span.end()

    def answered(
        self,
        *,
        model: str,
        finish_reasons: Sequence[str],
        input_tokens: int,
        output_tokens: int,
    ) -> None:
        if self._span is None:
            return
        self._span.set_attributes(
            {
                "gen_ai.response.model": model,
                "gen_ai.response.finish_reasons": list(finish_reasons),
                "gen_ai.usage.input_tokens": input_tokens,
                "gen_ai.usage.output_tokens": output_tokens,
            }
        )


_NO_SPAN = UpstreamSpan(None)


def upstream_span(body: Mapping[str, Any], host: str) -> UpstreamSpan:
    """The span for a chat completion with request `body` sent to `host` (host:port)."""
    if _tracer is None:
        return _NO_SPAN
    from opentelemetry import context
    from opentelemetry.trace import SpanKind

    if context.get_value(context._SUPPRESS_INSTRUMENTATION_KEY):  # a request the sampler dropped
        return _NO_SPAN

    model = str(body.get("model", ""))
    address, _, port = host.rpartition(":")
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": GEN_AI_SYSTEM,
        "gen_ai.provider.name": GEN_AI_SYSTEM,
        "gen_ai.request.model": model,
        "server.address": (address or port).strip("[]"),
    }
    if address and port.isdigit():
        attributes["server.port"] = int(port)
    for name, key in (("temperature", "gen_ai.request.temperature"), ("top_p", "gen_ai.request.top_p")):
        if isinstance(body.get(name), int | float):
            attributes[key] = body[name]
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(limit, int):
        attributes["gen_ai.request.max_tokens"] = limit
    return UpstreamSpan(_tracer.start_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes))
