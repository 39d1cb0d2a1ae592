from __future__ import annotations

import dataclasses

import pytest

from llm_provider import pool
from llm_provider.client import LLMConfig
from llm_provider.pool import get_client


def test_get_client_shares_one_client_per_process_and_config(
    config: LLMConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = get_client(config)
    assert get_client(config) is first
    assert get_client(dataclasses.replace(config, model="openai/gpt-oss-120b")) is not first

    monkeypatch.setattr(pool.os, "getpid", lambda: -1)
    assert get_client(config) is not first
