"""core/wsgi_handler.py: a request answered through the service's WSGI handler is freed by reference counting."""

from __future__ import annotations

import gc
import json
from http import HTTPStatus

import pytest
from django.core.handlers.wsgi import WSGIRequest
from django.test import RequestFactory

from chatbot_project.wsgi import django_application


@pytest.mark.parametrize("stream", [False, True])
def test_an_answered_chat_leaves_nothing_of_its_own_to_the_garbage_collector(alice_tokens, stream):
    # With the chat views' own cycles ended too (core/views.py): a view that keeps DRF's still leaves its request.
    factory = RequestFactory(HTTP_AUTHORIZATION=f"Bearer {alice_tokens['access_token']}")
    body = json.dumps({"session_id": "s1", "message": "hi", "stream": stream})
    environ = factory.post("/chat/", body, content_type="application/json").environ
    statuses: list[str] = []
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        response = django_application(environ, lambda status, headers, exc_info=None: statuses.append(status))
        b"".join(response)
        response.close()  # as the server does once the answer is sent
        del response, environ
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage if isinstance(o, WSGIRequest)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert statuses == [f"{HTTPStatus.OK.value} OK"]
    assert left == []
