from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import caches
from rest_framework.test import APIClient

from accounts.models import AdminUser
from accounts.services import admin_create
from conversations.stores import locmem_store
from core.redis_store import redis_client
from llm_provider import services as llm_services
from tests.fake_groq import FakeGroq

ALICE_PASSWORD = "alice-password-1"
BOB_PASSWORD = "bob-password-22"
KEY_MAP = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"


def delete_test_keys() -> None:
    client = redis_client()
    keys = list(client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}:*", count=1000))
    if keys:
        client.delete(*keys)


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
    client = redis_client()
    permanent = _permanent_key_patterns()
    assert permanent, "the key map lists no permanent family: is its table still in docs/architecture.md?"
    found = []
    for key in client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}:*", count=1000):
        name = key.decode()
        if client.ttl(key) == -1 and not any(pattern.fullmatch(name) for pattern in permanent):
            found.append(name)
    return sorted(found)


@pytest.fixture(scope="session", autouse=True)
def fake_groq_server() -> Iterator[FakeGroq]:
    """The upstream every test (and every server a test starts) talks to, on the port tests/settings.py chose."""
    with FakeGroq(port=int(os.environ["TEST_FAKE_GROQ_PORT"])) as fake:
        yield fake


@pytest.fixture
def fake_groq(fake_groq_server: FakeGroq) -> FakeGroq:
    return fake_groq_server


@pytest.fixture(autouse=True)
def _no_cached_llm_health(monkeypatch) -> None:
    """Each test's upstream health is asked afresh, of the fake upstream as that test leaves it."""
    monkeypatch.setattr(llm_services, "_health", {})


@pytest.fixture(autouse=True)
def _clean_state(fake_groq_server: FakeGroq) -> Iterator[None]:
    yield
    fake_groq_server.wait_idle()
    fake_groq_server.reset()
    delete_test_keys()
    if settings.HISTORY_BACKEND == "locmem":
        caches["history"].clear()
        locmem_store.cache_clear()  # and with it the store's record of the sessions just cleared


@pytest.fixture
def redis_down(settings) -> None:
    """Points the service at a port where no Redis listens: connections are refused at once."""
    dead = {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    settings.CACHES = {**settings.CACHES, "default": dead}


@pytest.fixture
def alice() -> AdminUser:
    return admin_create(username="alice", password=ALICE_PASSWORD)


@pytest.fixture
def bob() -> AdminUser:
    return admin_create(username="bob", password=BOB_PASSWORD)


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def login(client: APIClient, username: str, password: str) -> dict[str, str]:
    response = client.post("/admin/login", {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def alice_tokens(api: APIClient, alice: AdminUser) -> dict[str, str]:
    return login(api, "alice", ALICE_PASSWORD)


@pytest.fixture
def alice_client(alice_tokens: dict[str, str]) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_tokens['access_token']}")
    return client


@pytest.fixture
def bob_client(bob) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {login(APIClient(), 'bob', BOB_PASSWORD)['access_token']}")
    return client


def wait_for(condition, timeout: float = 5.0) -> None:
    """Waits until `condition()` holds: tests wait for a state, not for a guessed number of seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)
