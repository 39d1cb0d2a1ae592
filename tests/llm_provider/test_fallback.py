"""GROQ_FALLBACK_MODELS: the next model answers when the chosen one is gone, rate limited, over capacity, failing or
unreachable, within the call's one deadline and only before a stream has begun."""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pytest
from prometheus_client import REGISTRY

from llm_provider.client import ChatClient
from llm_provider.exceptions import LLMContextTooLong, LLMModelUnavailable, LLMRateLimited, LLMStreamError, LLMTimeout
from llm_provider.types import StreamDelta, StreamDone
from tests.fake_groq import FakeGroq

MakeClient = Callable[..., ChatClient]
HELLO = [{"role": "user", "content": "hello there"}]
SMALL, LARGE = "openai/gpt-oss-20b", "openai/gpt-oss-120b"


def models_sent(fake: FakeGroq) -> list[str]:
    return [r["json"]["model"] for r in fake.chat_requests()]


def fallbacks_counted(from_model: str, to_model: str, reason: str) -> float:
    labels = {"from_model": from_model, "to_model": to_model, "reason": reason}
    return REGISTRY.get_sample_value("chatbot_upstream_fallbacks_total", labels) or 0.0


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"kind": "status", "status": 429, "retry_after": 0}, "upstream_rate_limited"),
        ({"kind": "status", "status": 498}, "upstream_unavailable"),
        ({"kind": "status", "status": 503}, "upstream_unavailable"),
        ({"kind": "status", "status": 500}, "upstream_error"),
    ],
)
def test_the_next_model_answers_after_the_configured_ones_retries(
    make_client: MakeClient, fake: FakeGroq, fault: dict[str, Any], reason: str
) -> None:
    client = make_client(max_retries=1, fallback_models=(LARGE,))
    fake.add_faults(fault, fault)  # the configured model fails, and fails again when retried
    before = fallbacks_counted(SMALL, LARGE, reason)

    completion = client.complete(HELLO)

    assert completion.model == LARGE
    assert completion.content == "Echo: hello there"
    assert models_sent(fake) == [SMALL, SMALL, LARGE]
    assert fallbacks_counted(SMALL, LARGE, reason) == before + 1


@pytest.mark.parametrize("gone", ["llama3-8b-8192", "no-such-model"])  # 400 model_decommissioned, 404 model_not_found
def test_a_configured_model_that_is_gone_falls_back(make_client: MakeClient, fake: FakeGroq, gone: str) -> None:
    client = make_client(model=gone, fallback_models=(SMALL,))

    completion = client.complete(HELLO)

    assert completion.model == SMALL
    assert models_sent(fake) == [gone, SMALL]


def test_each_fallback_is_logged_once_without_secrets(make_client: MakeClient, fake: FakeGroq, caplog) -> None:
    client = make_client(max_retries=0, fallback_models=(LARGE, "llama-3.1-8b-instant"))
    fake.add_faults({"kind": "status", "status": 503}, {"kind": "status", "status": 429, "retry_after": 0})

    with caplog.at_level(logging.INFO, logger="llm_provider.client"):
        assert client.complete(HELLO).model == "llama-3.1-8b-instant"

    lines = [r.getMessage() for r in caplog.records if r.name == "llm_provider.client" and "Falling back" in r.message]
    assert lines == [
        f"Falling back from model {SMALL} to {LARGE} after upstream_unavailable",
        f"Falling back from model {LARGE} to llama-3.1-8b-instant after upstream_rate_limited",
    ]
    assert all("test-key" not in r.getMessage() for r in caplog.records)


def test_an_entry_equal_to_the_model_tried_is_skipped(make_client: MakeClient, fake: FakeGroq) -> None:
    client = make_client(max_retries=0, fallback_models=(SMALL, LARGE))
    fake.add_faults({"kind": "status", "status": 429, "retry_after": 0})

    assert client.complete(HELLO).model == LARGE
    assert models_sent(fake) == [SMALL, LARGE]


def test_when_every_model_fails_the_last_ones_error_is_raised(make_client: MakeClient, fake: FakeGroq) -> None:
    client = make_client(max_retries=0, fallback_models=(LARGE,))
    fake.add_faults({"kind": "status", "status": 503}, {"kind": "status", "status": 429, "retry_after": 2})

    with pytest.raises(LLMRateLimited) as caught:
        client.complete(HELLO)

    assert caught.value.retry_after == 2
    assert models_sent(fake) == [SMALL, LARGE]


def test_a_fallback_model_that_is_gone_names_its_setting(make_client: MakeClient, fake: FakeGroq) -> None:
    client = make_client(max_retries=0, fallback_models=("llama3-8b-8192",))
    fake.add_faults({"kind": "status", "status": 503})

    with pytest.raises(LLMModelUnavailable) as caught:
        client.complete(HELLO, model=SMALL, model_from_request=True)

    # Not the request's 400: the request's model exists, and the fallback is our configuration.
    assert (caught.value.status_code, caught.value.code) == (503, "model_unavailable")
    assert "llama3-8b-8192" in caught.value.detail and "GROQ_FALLBACK_MODELS" in caught.value.detail


def test_a_model_the_request_named_falls_back_on_a_rate_limit(make_client: MakeClient, fake: FakeGroq) -> None:
    client = make_client(max_retries=0, fallback_models=(SMALL,))
    fake.add_faults({"kind": "status", "status": 429, "retry_after": 0})

    completion = client.complete(HELLO, model=LARGE, model_from_request=True)

    assert completion.model == SMALL
    assert models_sent(fake) == [LARGE, SMALL]


def test_a_model_the_request_named_that_does_not_exist_stays_a_400(make_client: MakeClient, fake: FakeGroq) -> None:
    client = make_client(fallback_models=(SMALL,))

    with pytest.raises(LLMModelUnavailable) as caught:
        client.complete(HELLO, model="no-such-model", model_from_request=True)

    assert (caught.value.status_code, caught.value.code) == (400, "model_unavailable")
    assert models_sent(fake) == ["no-such-model"]


def test_no_fallback_for_a_failure_another_model_would_share(make_client: MakeClient, fake: FakeGroq) -> None:
    client = make_client(max_retries=0, fallback_models=(LARGE,))
    fake.configure(context_window=5)

    with pytest.raises(LLMContextTooLong):
        client.complete([{"role": "user", "content": "x" * 100}])

    assert models_sent(fake) == [SMALL]


def test_the_fallback_shares_the_calls_one_deadline(make_client: MakeClient, fake: FakeGroq) -> None:
    """The first model hangs past the whole call's deadline: with a deadline per model the fallback would answer."""
    client = make_client(timeout_seconds=0.5, fallback_models=(LARGE,))
    fake.add_faults({"kind": "hang", "seconds": 5})

    with pytest.raises(LLMTimeout):
        client.complete(HELLO)

    assert models_sent(fake)[0] == SMALL
    assert fake.wait_idle()


def test_a_stream_falls_back_before_its_first_delta(make_client: MakeClient, fake: FakeGroq) -> None:
    client = make_client(max_retries=0, fallback_models=(LARGE,))
    fake.add_faults({"kind": "status", "status": 498})

    events = list(client.stream(HELLO))

    done = events[-1]
    assert isinstance(done, StreamDone)
    assert done.completion.model == LARGE
    assert "".join(e.text for e in events if isinstance(e, StreamDelta)) == "Echo: hello there"
    assert models_sent(fake) == [SMALL, LARGE]
    assert all(r["json"]["stream"] for r in fake.chat_requests())


def test_a_stream_never_falls_back_once_it_has_begun(make_client: MakeClient, fake: FakeGroq) -> None:
    client = make_client(max_retries=0, fallback_models=(LARGE,))
    fake.configure(reply="one two three four five")
    fake.add_faults({"kind": "stream_error", "after_chunks": 2})

    with pytest.raises(LLMStreamError):
        list(client.stream(HELLO))

    assert models_sent(fake) == [SMALL]


def test_a_chat_reply_names_the_model_that_answered(alice_client, fake_groq: FakeGroq, settings) -> None:
    settings.GROQ_FALLBACK_MODELS = [LARGE]
    settings.LLM_MAX_RETRIES = 0
    fake_groq.add_faults({"kind": "status", "status": 429, "retry_after": 0})

    response = alice_client.post("/chat/", {"session_id": "f", "message": "hi"}, format="json")

    assert response.status_code == HTTPStatus.OK, response.content
    assert response.json()["model"] == LARGE
    assert models_sent(fake_groq) == [SMALL, LARGE]
