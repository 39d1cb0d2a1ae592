"""The benchmark's floor: a bare Django view that forwards a chat to the upstream, with no authentication, history,
limits, middleware or logging. `make bench` serves it with the service's gunicorn worker class, workers and threads
(bench/processes.py: floor), so every table shows what the service's features cost above it.

    gunicorn --preload --worker-class server.worker.GuardedGeventWorker ... bench.floor:application

Django is configured in-process (no settings module); GROQ_BASE_URL and GROQ_API_KEY name the upstream.
"""

from __future__ import annotations

import json
import os
import secrets

import httpcore
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from llm_provider.connections import UpstreamConnections

UPSTREAM = os.environ.get("GROQ_BASE_URL", "http://127.0.0.1:8001/openai/v1").rstrip("/") + "/chat/completions"
API_KEY = os.environ.get("GROQ_API_KEY", "bench-key")
MODEL = "openai/gpt-oss-20b"

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY=secrets.token_urlsafe(48),
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        DATABASES={},
        USE_TZ=True,
        LOGGING_CONFIG=None,
        # What server.worker.GuardedGeventWorker reads, at the service's defaults.
        REQUEST_READ_TIMEOUT_SECONDS=float(os.environ.get("REQUEST_READ_TIMEOUT_SECONDS", "20")),
        RESPONSE_WRITE_TIMEOUT_SECONDS=float(os.environ.get("RESPONSE_WRITE_TIMEOUT_SECONDS", "10")),
        MAX_REQUEST_BYTES=int(os.environ.get("MAX_REQUEST_BYTES", str(1024 * 1024))),
        REQUEST_BUFFER_BYTES=int(os.environ.get("REQUEST_BUFFER_BYTES", str(64 * 1024 * 1024))),
        # The floor takes every chat: the worker's admission runs (its cost is the service's) but never refuses.
        MAX_CHATS_IN_FLIGHT=10**9,
        CHAT_ADMIT_MAX_LOOP_LAG_MS=10**9,
    )

# One pool of keep-alive connections per process, made in the worker (after the fork), of the same kind as the
# service's (llm_provider/connections.py).
_pools: dict[int, UpstreamConnections] = {}
TIMEOUT = {"connect": 60.0, "read": 60.0, "write": 60.0, "pool": 60.0}


def _pool() -> UpstreamConnections:
    pool = _pools.get(os.getpid())
    if pool is None:
        pool = _pools[os.getpid()] = UpstreamConnections(httpcore.ConnectionPool(), 512)
    return pool


def _post(content: bytes) -> tuple[int, bytes]:
    url = httpcore.URL(UPSTREAM)
    headers = [
        (b"Host", url.host if url.port is None else b"%b:%d" % (url.host, url.port)),
        (b"Authorization", f"Bearer {API_KEY}".encode()),
        (b"Content-Type", b"application/json"),
        (b"Content-Length", str(len(content)).encode()),
    ]
    request = httpcore.Request("POST", url, headers=headers, content=content, extensions={"timeout": TIMEOUT})
    response = _pool().handle_request(request)
    try:
        return response.status, response.read()
    finally:
        response.close()


def chat(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return JsonResponse({"detail": "POST only"}, status=405)
    try:
        message = json.loads(request.body)["message"]
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"detail": "a JSON body with a message"}, status=400)
    body = {"model": MODEL, "messages": [{"role": "user", "content": message}], "temperature": 0.7, "max_tokens": 1024}
    try:
        status, content = _post(json.dumps(body).encode())
    except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
        return JsonResponse({"detail": f"upstream: {type(exc).__name__}"}, status=502)
    if status != 200:
        return JsonResponse({"detail": f"upstream answered {status}"}, status=502)
    return JsonResponse({"reply": json.loads(content)["choices"][0]["message"]["content"]})


def live(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [path("chat/", chat), path("health/live", live)]

application = get_wsgi_application()
