"""OpenTelemetry traces (core/tracing.py): off unless OTEL_* variables ask; when on, a trace per request with spans
for the request, its Redis commands and the upstream call. In process, the WSGI application (as gunicorn calls it)
with the SDK's in-memory exporter; then a real gunicorn exporting OTLP over HTTP to a receiver on loopback."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from django.core.wsgi import get_wsgi_application
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from core import tracing
from tests.server import running_server, server_command, server_env
from tests.support import ALICE_PASSWORD, ROOT, events_of, free_port, login_headers

TRACEPARENT = "00-0af7651916cd43dd8448eb211c903319-b7ad6b7169203331-01"


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "gateway"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
    ],
)
def test_tracing_is_on_only_when_otel_variables_ask_for_it(environ, on):
    assert tracing.tracing_requested(environ) is on


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER=jaeger"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "PROTOCOL=grpc"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "ratio"}, "OTEL_TRACES_SAMPLER=ratio"),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "10%",
            },
            "OTEL_TRACES_SAMPLER_ARG=10%",
        ),
    ],
)
def test_settings_the_service_cannot_follow_are_refused_by_name(environ, named):
    with pytest.raises(tracing.TracingConfigurationError, match=named):
        tracing.tracing_configuration_check(environ)


def test_a_supported_sampler_is_accepted():
    environ = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}
    tracing.tracing_configuration_check({**environ, "OTEL_TRACES_SAMPLER_ARG": "0.1"})


def test_the_server_refuses_to_start_with_an_otlp_protocol_it_cannot_speak():
    env = server_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4317", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    result = subprocess.run(server_command(free_port()), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Configuration error: OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported" in result.stderr
    assert "Traceback" not in result.stderr


def test_with_tracing_off_no_tracing_is_loaded():
    # redis-py loads OpenTelemetry's metrics API when it is installed, for metrics of its own it keeps off.
    script = (
        "import sys, django; django.setup(); import chatbot_project.wsgi; "
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.instrumentation', "
        "'opentelemetry.sdk.trace', 'opentelemetry.exporter'))))"
    )
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("pattern", "route"),
    [
        ("^chat/?$", "/chat"),
        ("admin/keys/<str:key_id>", "/admin/keys/{key_id}"),
        ("^s/(?P<sid>[^/]+)/?$", "/s/{sid}"),
    ],
)
def test_a_url_pattern_is_named_as_a_route(pattern, route):
    assert tracing.route_template(pattern) == route


def test_with_tracing_off_a_response_has_no_trace_id(alice_client):
    response = alice_client.get("/admin/info")
    assert response.status_code == HTTPStatus.OK
    assert "X-Trace-Id" not in response


GEVENT_LOCKS = """
from core.cooperative import gevent_patch_all
gevent_patch_all()
import threading
from gevent import monkey
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from core import tracing

os_lock = monkey.get_original("_thread", "LockType")

def locks_of(span):
    return [span._lock, span._attributes._lock, span._events._lock, span._links._lock]

tracing.tracing_start(InMemorySpanExporter())
span = tracing._tracer.start_span("a", attributes={"a": 1})
span.set_attribute("b", 2)
span.add_event("e")
span.end()
print([type(lock) is os_lock for lock in locks_of(span)])
batch = BatchSpanProcessor(InMemorySpanExporter())._batch_processor
print(type(batch._export_lock) is os_lock, type(batch._export_lock) is type(threading.Lock()))
batch.shutdown()
tracing.tracing_stop()
print([type(lock) is os_lock for lock in locks_of(TracerProvider().get_tracer("b").start_span("b"))])
"""


def test_under_gevent_a_spans_own_state_has_os_locks_and_the_export_gevents():
    # What core/tracing.py's _os_locks relies on: the SDK makes these locks with `threading.Lock()` in
    # these modules, and uses `threading` there for nothing else (no Condition, Event or Thread to keep gevent's).
    import importlib
    import inspect
    import re

    for name in tracing.SPAN_LOCK_MODULES:
        source = inspect.getsource(importlib.import_module(name))
        assert set(re.findall(r"\bthreading\.(\w+)", source)) == {"Lock"}, name
        assert "from threading import" not in source, name

    result = subprocess.run([sys.executable, "-c", GEVENT_LOCKS], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    spans, batch, stopped = result.stdout.splitlines()
    assert spans == "[True, True, True, True]"  # the span's, its attributes', events' and links'
    assert batch == "False True"  # the batch processor's, held while it exports, is still gevent's
    assert stopped == "[False, False, False, False]"  # tracing_stop gives the SDK back gevent's


# In process: the WSGI application with the in-memory exporter


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    tracing.tracing_start(memory)
    yield memory
    tracing.tracing_stop()


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    exporter.clear()
    return exporter


class Wsgi:
    """Calls the application as gunicorn does, traced as chatbot_project/wsgi.py makes it."""

    def __init__(self) -> None:
        self.app = tracing.traced_wsgi(get_wsgi_application())

    def __call__(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, dict[str, str], Any]:
        data = b"" if body is None else json.dumps(body).encode()
        path, _, query = path.partition("?")
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "testserver",
            "CONTENT_LENGTH": str(len(data)),
            "CONTENT_TYPE": "application/json",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(data),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
        }
        answer: dict[str, Any] = {}

        def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            answer["status"] = int(status.split()[0])
            answer["headers"] = dict(response_headers)

        return answer, self.app(environ, start_response)  # type: ignore[return-value]

    def request(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, dict[str, str], bytes]:
        answer, result = self(method, path, body, **headers)
        try:
            content = b"".join(result)
        finally:
            result.close()  # type: ignore[attr-defined]
        return answer["status"], answer["headers"], content


@pytest.fixture
def wsgi(exporter) -> Wsgi:
    return Wsgi()


@pytest.fixture
def bearer(alice_tokens) -> str:
    return f"Bearer {alice_tokens['access_token']}"


def by_kind(finished, kind: SpanKind) -> list:
    return [span for span in finished if span.kind == kind]


def test_a_chat_is_one_trace_of_request_redis_and_upstream_spans(wsgi, bearer, spans, caplog):
    with caplog.at_level(logging.INFO, logger="chatbot.requests"):
        status, headers, content = wsgi.request(
            "POST", "/chat/", {"message": "hello", "session_id": "traced"}, authorization=bearer
        )
    assert status == HTTPStatus.OK, content

    finished = spans.get_finished_spans()
    [request] = by_kind(finished, SpanKind.SERVER)
    trace_id = f"{request.context.trace_id:032x}"
    assert {span.context.trace_id for span in finished} == {request.context.trace_id}
    assert request.name == "POST /chat"
    assert request.attributes["http.route"] == "/chat"
    assert headers["X-Trace-Id"] == trace_id
    [line] = [record.getMessage() for record in caplog.records if record.name == "chatbot.requests"]
    assert f"trace_id={trace_id}" in line

    redis = [span for span in finished if span.attributes.get("db.system") == "redis"]
    assert redis, [span.name for span in finished]
    assert all(span.parent.span_id == request.context.span_id for span in redis)

    [upstream] = [span for span in by_kind(finished, SpanKind.CLIENT) if span.name.startswith("chat ")]
    assert upstream.parent.span_id == request.context.span_id
    reply = json.loads(content)
    attributes = upstream.attributes
    assert attributes["gen_ai.system"] == "groq"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == reply["model"]
    assert attributes["gen_ai.response.model"] == reply["model"]
    assert attributes["gen_ai.usage.input_tokens"] == reply["usage"]["prompt_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] == reply["usage"]["completion_tokens"] > 0
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["server.address"] == "127.0.0.1"
    assert upstream.status.status_code == StatusCode.UNSET


def test_spans_carry_no_query_string_and_no_message(wsgi, bearer, spans):
    wsgi.request("GET", "/admin/info?token=secret-in-query", authorization=bearer)
    wsgi.request("POST", "/chat/", {"message": "a private question", "session_id": "private"}, authorization=bearer)

    finished = spans.get_finished_spans()
    assert {span.name for span in by_kind(finished, SpanKind.SERVER)} == {"GET /admin/info", "POST /chat"}
    values = " ".join(str(value) for span in finished for value in span.attributes.values())
    assert "/admin/info" in values
    assert "secret-in-query" not in values
    assert "private question" not in values
    assert bearer.split()[1] not in values


def test_an_incoming_traceparent_continues_the_callers_trace(wsgi, bearer, spans):
    status, headers, _ = wsgi.request("GET", "/admin/info", authorization=bearer, traceparent=TRACEPARENT)
    assert status == HTTPStatus.OK
    assert headers["X-Trace-Id"] == "0af7651916cd43dd8448eb211c903319"
    [request] = by_kind(spans.get_finished_spans(), SpanKind.SERVER)
    assert request.parent.span_id == 0xB7AD6B7169203331


def test_a_request_the_sampler_drops_makes_no_spans_but_keeps_its_trace_id(wsgi, bearer, spans):
    # The caller's traceparent marks its trace as not sampled (flags 00): the default parent-based sampler drops it.
    dropped = TRACEPARENT.removesuffix("-01") + "-00"
    status, headers, content = wsgi.request(
        "POST", "/chat/", {"message": "hello", "session_id": "dropped"}, authorization=bearer, traceparent=dropped
    )
    assert status == HTTPStatus.OK, content
    assert headers["X-Trace-Id"] == "0af7651916cd43dd8448eb211c903319"
    assert spans.get_finished_spans() == ()

    # The next request, sampled, is traced whole: nothing of the dropped one's suppression is left behind.
    wsgi.request("POST", "/chat/", {"message": "hello", "session_id": "dropped"}, authorization=bearer)
    finished = spans.get_finished_spans()
    assert by_kind(finished, SpanKind.SERVER)
    assert [span for span in finished if span.attributes.get("db.system") == "redis"]
    assert [span for span in finished if span.name.startswith("chat ")]


def test_a_streams_spans_end_when_the_stream_ends(wsgi, bearer, spans, fake_groq):
    fake_groq.configure(chunk_delay=0.01)
    answer, body = wsgi("POST", "/chat/", {"message": "hello", "stream": True}, authorization=bearer)
    pieces = iter(body)
    first = next(pieces)
    assert answer["status"] == HTTPStatus.OK, first
    # Answered, the body begun: neither the request's span nor the upstream call's has ended.
    assert not by_kind(spans.get_finished_spans(), SpanKind.SERVER)
    assert not [span for span in spans.get_finished_spans() if span.name.startswith("chat ")]

    raw = first + b"".join(pieces)
    body.close()
    done = [data for event, data in events_of(raw) if event == "done"]
    assert done, raw

    finished = spans.get_finished_spans()
    [request] = by_kind(finished, SpanKind.SERVER)
    [upstream] = [span for span in finished if span.name.startswith("chat ")]
    assert upstream.parent.span_id == request.context.span_id
    assert upstream.end_time <= request.end_time
    assert upstream.attributes["gen_ai.usage.output_tokens"] > 0
    assert upstream.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    # The turn is stored after the last piece: its Redis commands are still the request's.
    redis = [span for span in finished if span.attributes.get("db.system") == "redis"]
    assert any(span.start_time > upstream.end_time for span in redis)
    assert all(span.context.trace_id == request.context.trace_id for span in redis)


def test_a_stream_the_client_leaves_before_reading_ends_its_spans(wsgi, bearer, spans, fake_groq):
    fake_groq.configure(chunk_delay=0.01)
    answer, body = wsgi("POST", "/chat/", {"message": "hello", "stream": True}, authorization=bearer)
    assert answer["status"] == HTTPStatus.OK
    body.close()  # as the server does when the client is gone before the first piece

    [request] = by_kind(spans.get_finished_spans(), SpanKind.SERVER)
    assert request.name == "POST /chat"
    assert request.attributes["http.response.status_code"] == HTTPStatus.OK


def test_a_failed_upstream_call_is_an_error_span(wsgi, bearer, spans, fake_groq):
    fake_groq.add_faults({"kind": "status", "status": 400, "message": "nope"})
    status, _, content = wsgi.request("POST", "/chat/", {"message": "hello"}, authorization=bearer)
    assert status >= 400, content

    [upstream] = [span for span in spans.get_finished_spans() if span.name.startswith("chat ")]
    assert upstream.status.status_code == StatusCode.ERROR
    assert upstream.attributes["error.type"] == json.loads(content)["code"]


# A real gunicorn exporting OTLP over HTTP


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP traces endpoint on loopback: keeps each span it is sent, with its service name."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", free_port()), ReceiverHandler)


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            for resource_spans in request.resource_spans:
                service = next(
                    a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"
                )
                for scope_spans in resource_spans.scope_spans:
                    self.server.spans.extend((service, span) for span in scope_spans.spans)
        self.send_response(200 if self.path == "/v1/traces" else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def attributes_of(span) -> dict[str, Any]:
    def value(any_value):
        kind = any_value.WhichOneof("value")
        if kind == "array_value":
            return [value(each) for each in any_value.array_value.values]
        return getattr(any_value, kind)

    return {a.key: value(a.value) for a in span.attributes}


def test_a_server_exports_its_traces_over_otlp_http(receiver, alice, tmp_path):
    log = tmp_path / "server.log"
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_address[1]}",
        "OTEL_SERVICE_NAME": "gateway-under-test",
        # Nothing is sent on a timer: what arrives was sent as the worker stopped.
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
        "WEB_CONCURRENCY": "1",
    }
    with log.open("wb") as output, running_server(log=output, **env) as url:
        headers = login_headers(url, "alice", ALICE_PASSWORD)
        response = httpx.post(f"{url}/chat/", json={"message": "hello"}, headers=headers, timeout=30)
        assert response.status_code == HTTPStatus.OK, response.text
        trace_id = response.headers["X-Trace-Id"]
        with httpx.stream("POST", f"{url}/chat/", json={"message": "hi", "stream": True}, headers=headers) as stream:
            stream_trace_id = stream.headers["X-Trace-Id"]
            stream.read()

        assert not receiver.spans

    def spans_of(trace: str) -> list[Any]:
        return [span for _, span in receiver.spans if span.trace_id.hex() == trace]

    # The server's log says why when nothing arrived (an export that failed, a worker that did not exit in time).
    assert {service for service, _ in receiver.spans} == {"gateway-under-test"}, log.read_text()
    spans = spans_of(trace_id)
    [request] = [span for span in spans if span.name == "POST /chat"]
    [upstream] = [span for span in spans if span.name.startswith("chat ")]
    assert upstream.parent_span_id == request.span_id
    attributes = attributes_of(upstream)
    reply = response.json()
    assert attributes["gen_ai.system"] == "groq"
    assert attributes["gen_ai.request.model"] == attributes["gen_ai.response.model"] == reply["model"]
    assert attributes["gen_ai.usage.input_tokens"] == reply["usage"]["prompt_tokens"]
    assert attributes["gen_ai.usage.output_tokens"] == reply["usage"]["completion_tokens"]
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert any(attributes_of(span).get("db.system") == "redis" for span in spans)

    stream_spans = spans_of(stream_trace_id)
    [stream_request] = [span for span in stream_spans if span.name == "POST /chat"]
    [stream_upstream] = [span for span in stream_spans if span.name.startswith("chat ")]
    assert stream_upstream.end_time_unix_nano <= stream_request.end_time_unix_nano

    output = log.read_text()
    lines = [line for line in output.splitlines() if "chatbot.requests" in line and "path=/chat/" in line]
    assert any(f"trace_id={trace_id}" in line for line in lines), lines
    assert "Traceback" not in output and "Failed to detach" not in output, output
