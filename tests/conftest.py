from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.cache import caches
from rest_framework.test import APIClient

from accounts.models import AdminUser
from accounts.services import admin_create
from conversations.history import _locmem_store
from core.redis_store import redis_client
from llm_provider.services import llm_health_forget
from tests.fake_groq import FakeGroq
from tests.support import ALICE_PASSWORD, BOB_PASSWORD, login, redis_keys


def delete_test_keys() -> None:
    keys = redis_keys()
    if keys:
        redis_client().delete(*keys)


@pytest.fixture(scope="session", autouse=True)
def fake_groq_server() -> Iterator[FakeGroq]:
    """The upstream every test (and every server a test starts) talks to, on the port tests/settings.py chose."""
    with FakeGroq(port=int(os.environ["TEST_FAKE_GROQ_PORT"])) as fake:
        yield fake


@pytest.fixture
def fake_groq(fake_groq_server: FakeGroq) -> FakeGroq:
    return fake_groq_server


@pytest.fixture(autouse=True)
def _clean_state(fake_groq_server: FakeGroq) -> Iterator[None]:
    yield
    fake_groq_server.wait_idle()
    fake_groq_server.reset()
    llm_health_forget()
    delete_test_keys()
    if settings.HISTORY_BACKEND == "locmem":
        caches["history"].clear()
        _locmem_store.cache_clear()  # and with it the store's record of the sessions just cleared


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
