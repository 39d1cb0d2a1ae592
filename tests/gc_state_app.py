"""The service's WSGI application, plus `GET /gc-state`: the serving worker's garbage-collector state, for
tests/test_worker.py to see what a real gunicorn worker set (nothing else can observe it from outside)."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterable
from typing import Any

from chatbot_project.wsgi import application as service


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") != "/gc-state":
        return service(environ, start_response)
    body = json.dumps({"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
