from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llm_provider.client import ChatClient, LLMConfig
from tests.fake_groq import FakeGroq


@pytest.fixture
def fake(fake_groq: FakeGroq) -> FakeGroq:
    """The suite's fake upstream (tests/conftest.py resets it after every test)."""
    return fake_groq


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

    def make(pool: Any = None, **overrides: Any) -> ChatClient:
        client = ChatClient(dataclasses.replace(config, **overrides), pool=pool)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., ChatClient]) -> ChatClient:
    return make_client()
