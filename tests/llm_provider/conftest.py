from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llm_provider.client import ChatClient, LLMConfig
from tests.fake_groq import FakeGroq


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeGroq]:
    with FakeGroq() as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeGroq) -> Iterator[FakeGroq]:
    fake_server.wait_idle()
    fake_server.reset()
    yield fake_server
    fake_server.wait_idle()
    fake_server.reset()


@pytest.fixture
def config(fake: FakeGroq) -> LLMConfig:
    return LLMConfig(
        base_url=fake.url,
        api_key="test-key",
        model="openai/gpt-oss-20b",
        temperature=0.2,
        max_tokens=256,
        timeout_seconds=3.0,
        connect_timeout=1.0,
        max_retries=2,
        backoff_base=0.01,
        backoff_max=0.05,
    )


@pytest.fixture
def make_client(config: LLMConfig) -> Iterator[Callable[..., ChatClient]]:
    clients: list[ChatClient] = []

    def make(transport: Any = None, **overrides: Any) -> ChatClient:
        client = ChatClient(dataclasses.replace(config, **overrides), transport=transport)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., ChatClient]) -> ChatClient:
    return make_client()
