from __future__ import annotations

import pytest
from rest_framework.test import APIClient


@pytest.fixture(params=["locmem", "redis"])
def history_backend(request, settings) -> str:
    """Runs a test once with each history store."""
    settings.HISTORY_BACKEND = request.param
    return request.param


def chat(client: APIClient, message: str, session_id: str | None = "s1", **extra):
    body = {"message": message, **extra}
    if session_id is not None:
        body["session_id"] = session_id
    return client.post("/chat/", body, format="json")


def sent_messages(fake) -> list[list[dict]]:
    """What each chat request sent upstream, as (role, content) dicts."""
    return [[{"role": m["role"], "content": m["content"]} for m in r["json"]["messages"]] for r in fake.chat_requests()]
