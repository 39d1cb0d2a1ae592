"""Helpers the test modules share. Test modules take helpers from here (or from the modules that run something:
fake_groq, server, redis_topologies, failover_load), never from another test module or a conftest. It imports
the service's code only inside the helpers that use it: tests/settings.py takes its free port from here."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis
from django.conf import settings
from hypothesis import HealthCheck
from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from django.test import Client
    from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parent.parent
KEY_MAP = ROOT / "docs" / "architecture.md"

ALICE_PASSWORD = "alice-password-1"
BOB_PASSWORD = "bob-password-22"
# How fast a loaded machine generates examples is not what the property tests are about (tests/conftest.py).
SLOW_MACHINE = [HealthCheck.too_slow]
MODEL = "openai/gpt-oss-20b"


# Ports and waiting


def free_port(*, with_bus: bool = False) -> int:
    """A free loopback port; with `with_bus`, one whose cluster bus port (port + 10000) is free as well."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if not with_bus:
            return port
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def wait_for(condition: Callable[[], object], timeout: float = 15.0, what: str = "the condition") -> None:
    """A test's wait for a state (not for a guessed number of seconds): fails the test if `condition()` does not
    hold within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def wait_until_serving(probe: Callable[[], object], timeout: float, what: str) -> None:
    """Waits for a process that is starting or failing over (a redis-server, a Sentinel, a promotion): a Redis or
    socket error from `probe()` counts as not yet. Raises RuntimeError if `probe()` is not true within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if probe():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


# Logging in


def login(client: APIClient, username: str, password: str) -> dict[str, str]:
    """The tokens of a login through Django's test client."""
    response = client.post("/admin/login", {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def login_headers(url: str, username: str, password: str) -> dict[str, str]:
    """The Authorization header of a fresh login to the server at `url`."""
    response = httpx.post(f"{url}/admin/login", json={"username": username, "password": password}, timeout=30)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def csrf_token_of(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def browser_login(browser: Client, username: str, password: str):
    """A login through the browsable API's form, as a browser posts it."""
    page = browser.get("/api-auth/login/?next=/admin/info")
    return browser.post(
        "/api-auth/login/?next=/admin/info",
        {"username": username, "password": password, "csrfmiddlewaretoken": csrf_token_of(page.content.decode())},
    )


# Chatting and reading answers


def chat(client: APIClient, message: str, session_id: str | None = "s1", **extra):
    body = {"message": message, **extra}
    if session_id is not None:
        body["session_id"] = session_id
    return client.post("/chat/", body, format="json")


def sent_messages(fake) -> list[list[dict]]:
    """What each chat request sent upstream, as (role, content) dicts."""
    return [[{"role": m["role"], "content": m["content"]} for m in r["json"]["messages"]] for r in fake.chat_requests()]


def events_of(raw: bytes) -> list[tuple[str, dict]]:
    """The server-sent events of a streamed /chat/ answer, as (event, data)."""
    events = []
    for block in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


def complete(client, *messages: dict, session: str | None = None, **extra):
    """POST /v1/chat/completions with these messages (and the X-Session-Id of `session`)."""
    body = {"model": MODEL, "messages": list(messages), **extra}
    headers = {"HTTP_X_SESSION_ID": session} if session else {}
    return client.post("/v1/chat/completions", body, format="json", **headers)


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def chunks_of(response) -> list:
    """The chunks of a streamed /v1 answer, "[DONE]" included."""
    raw = b"".join(response.streaming_content).decode()
    events = [block[len("data: ") :] for block in raw.split("\n\n") if block.startswith("data: ")]
    return [event if event == "[DONE]" else json.loads(event) for event in events]


# Token budgets

MAX_TOKENS = 200


def worst_case(settings, text: str) -> int:
    """What the service reserves for one stateless message asking for MAX_TOKENS."""
    from conversations.trimming import message_tokens

    prompt = [{"role": "user", "content": text}]
    if settings.SYSTEM_PROMPT:
        prompt.insert(0, {"role": "system", "content": settings.SYSTEM_PROMPT})
    return sum(message_tokens(m) for m in prompt) + MAX_TOKENS


def ask(client, text: str = "hi", **extra):
    """A stateless /v1 completion asking for MAX_TOKENS."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": MAX_TOKENS}
    return client.post("/v1/chat/completions", {**body, **extra}, format="json")


# The upstream's health


def llm_health_forget(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as a worker that has neither asked the upstream's health nor seen a chat's outcome itself."""
    from llm_provider import reachability, services  # their settings are read once Django is set up

    monkeypatch.setattr(services, "_health", {})
    monkeypatch.setattr(reachability, "_latest", None)


# Metrics


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def scrape(client: APIClient | None = None) -> str:
    from rest_framework.test import APIClient

    response = (client or APIClient()).get("/metrics")
    assert response.status_code == HTTPStatus.OK, response.content
    return response.content.decode()


# Settings checked in a process of their own

GOOD_SETTINGS = {
    "SECRET_KEY": secrets.token_urlsafe(48),
    "DEBUG": "false",
    "ENV_FILE": "",
    "DJANGO_SETTINGS_MODULE": "chatbot_project.settings",
}


def manage_check(**overrides: str | None) -> subprocess.CompletedProcess[str]:
    """`manage.py check` with good production settings and these overrides (None unsets a variable)."""
    env: dict[str, Any] = {
        k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(GOOD_SETTINGS)
    env.update(overrides)
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


# This run's Redis keys


def redis_keys() -> list[bytes]:
    from core.redis_store import redis_client

    return list(redis_client().scan_iter(match=f"{settings.REDIS_KEY_PREFIX}:*", count=1000))


def _permanent_key_patterns() -> list[re.Pattern[str]]:
    """The key families the Redis key map (docs/architecture.md) gives no TTL ("none"), as patterns of whole keys
    under this run's prefix: `P:` is the prefix, `A:` an admin's `P:{a:<admin id>}:`, `<...>` any name."""
    patterns = []
    for line in KEY_MAP.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0].startswith("`") or not cells[2].startswith("none"):
            continue
        for family in re.findall(r"`([^`]+)`", cells[0]):
            family = re.sub(r"^A:", "P:{a:<admin id>}:", family).replace("P:", f"{settings.REDIS_KEY_PREFIX}:", 1)
            parts = re.split(r"<[^>]+>", family)
            patterns.append(re.compile(".+".join(re.escape(part) for part in parts)))
    return patterns


def keys_without_ttl() -> list[str]:
    """This run's keys that never expire and whose family the key map does not document as permanent."""
    from core.redis_store import redis_client

    client = redis_client()
    permanent = _permanent_key_patterns()
    assert permanent, "the key map lists no permanent family: is its table still in docs/architecture.md?"
    found = []
    for key in redis_keys():
        name = key.decode()
        if client.ttl(key) == -1 and not any(pattern.fullmatch(name) for pattern in permanent):
            found.append(name)
    return sorted(found)


def record_usage(
    admin_id: str, day: date, key_id: str, model: str, tokens_in: int, tokens_out: int, micros: int
) -> None:
    """A request's usage of `day` as a chat's finish records it (conversations/usage_history.py), for the days no
    test can chat on."""
    from conversations.usage_history import day_key
    from core.redis_store import redis_client

    pipe = redis_client().pipeline(transaction=False)
    for counter, value in (("requests", 1), ("input_tokens", tokens_in), ("output_tokens", tokens_out)):
        pipe.hincrby(day_key(admin_id, day), f"{counter}\t{key_id}\t{model}", value)
    pipe.hincrby(day_key(admin_id, day), f"cost_micros\t{key_id}\t{model}", micros)
    pipe.execute()


def drf_objects_left_to_the_collector(answer: Callable[[], Any]) -> list[str]:
    """The DRF requests, views and responses that only the garbage collector frees once the test client's response
    from `answer()` (checked there, a stream read there) is done with (core/views.py)."""
    import gc

    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.views import APIView

    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        response = answer()
        response.close()
        del response.json  # the test client's own cycle (a partial of its parser holding the response)
        del response
        gc.collect()
        return [type(o).__name__ for o in gc.garbage if isinstance(o, (Request, Response, APIView))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
