from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpcore
import pytest

from llm_provider.client import ChatClient, LLMConfig
from llm_provider.exceptions import (
    LLMAuthFailed,
    LLMBadGateway,
    LLMContextTooLong,
    LLMError,
    LLMModelUnavailable,
    LLMNotConfigured,
    LLMRateLimited,
    LLMRequestRejected,
    LLMStreamError,
    LLMTimeout,
    LLMUnavailable,
    parse_go_duration,
)
from llm_provider.types import ModelInfo, StreamDelta, StreamDone
from tests.fake_groq import FakeGroq
from tests.support import free_port, wait_for

MakeClient = Callable[..., ChatClient]
HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]


class ToFake(httpcore.ConnectionPool):
    """Connections to the fake for requests meant for another host, so that a real Groq URL can be used offline."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        request.url = httpcore.URL(scheme=b"http", host=b"127.0.0.1", port=self.port, target=request.url.target)
        return super().handle_request(request)


def to_fake(fake: FakeGroq) -> ToFake:
    return ToFake(fake.port)


def test_it_completes(client: ChatClient, fake: FakeGroq) -> None:
    completion = client.complete(HELLO)

    assert completion.content == "Echo: hello there"
    assert completion.model == "openai/gpt-oss-20b"
    assert completion.finish_reason == "stop"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens > 0


def test_it_sends_groq_body_and_key(client: ChatClient, fake: FakeGroq) -> None:
    client.complete(HELLO, model="openai/gpt-oss-120b", temperature=0.7, max_tokens=42)

    [sent] = fake.chat_requests()
    assert sent["headers"]["authorization"] == "Bearer test-key"
    assert sent["json"] == {"model": "openai/gpt-oss-120b", "messages": HELLO, "temperature": 0.7, "max_tokens": 42}


def test_cookies_the_upstream_sets_are_not_sent_back(client: ChatClient, fake: FakeGroq) -> None:
    client.complete(HELLO)
    client.complete(HELLO)
    client.list_models()

    assert len(fake.requests) == 3
    assert not [r for r in fake.requests if "cookie" in r["headers"]]


def test_it_uses_max_completion_tokens_for_groq(make_client: MakeClient, fake: FakeGroq) -> None:
    client = make_client(base_url="https://api.groq.com/openai/v1", pool=to_fake(fake))

    client.complete(HELLO)

    [sent] = fake.chat_requests()
    assert sent["json"]["max_completion_tokens"] == 256
    assert "max_tokens" not in sent["json"]


def test_it_goes_through_the_proxy_the_environment_names(
    make_client: MakeClient, fake: FakeGroq, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake stands in for a plain-HTTP forward proxy: it is sent the whole URL, which names a host that
    # does not resolve, so an answer can only come through the proxy.
    monkeypatch.setenv("HTTP_PROXY", fake.url.rsplit("/openai", 1)[0])
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = make_client(base_url="http://upstream.invalid/openai/v1")

    assert client.complete(HELLO).content == "Echo: hello there"
    assert [r["path"] for r in fake.requests] == ["/openai/v1/chat/completions"]


def test_no_proxy_exempts_a_host(make_client: MakeClient, fake: FakeGroq, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    assert make_client().complete(HELLO).content == "Echo: hello there"


def test_config_repr_hides_the_key(config: LLMConfig) -> None:
    assert "test-key" not in repr(config)


def test_it_works_under_another_base_path(make_client: MakeClient) -> None:
    with FakeGroq(base_path="/v1") as other:
        client = make_client(base_url=other.url)

        assert other.url.endswith("/v1")
        assert client.complete(HELLO).content == "Echo: hello there"
        assert [r["path"] for r in other.requests] == ["/v1/chat/completions"]


def test_it_lists_models(client: ChatClient) -> None:
    models = client.list_models()

    assert ModelInfo("openai/gpt-oss-20b") in models


def test_it_refuses_without_key_before_any_request(make_client: MakeClient, fake: FakeGroq) -> None:
    client = make_client(api_key="")

    with pytest.raises(LLMNotConfigured) as caught:
        client.complete(HELLO)
    with pytest.raises(LLMNotConfigured):
        next(client.stream(HELLO))
    with pytest.raises(LLMNotConfigured):
        client.list_models()

    assert caught.value.status_code == 503
    assert fake.requests == []


@pytest.mark.parametrize(
    ("fault", "error_type", "status", "code"),
    [
        ({"kind": "status", "status": 403}, LLMAuthFailed, 502, "upstream_auth_failed"),
        ({"kind": "status", "status": 413}, LLMContextTooLong, 400, "context_length_exceeded"),
        ({"kind": "status", "status": 422}, LLMRequestRejected, 502, "upstream_rejected_request"),
        ({"kind": "status", "status": 429, "retry_after": 3}, LLMRateLimited, 429, "upstream_rate_limited"),
        ({"kind": "status", "status": 498}, LLMUnavailable, 503, "upstream_unavailable"),
        ({"kind": "status", "status": 500}, LLMBadGateway, 502, "upstream_error"),
        ({"kind": "status", "status": 502}, LLMBadGateway, 502, "upstream_error"),
        ({"kind": "status", "status": 503}, LLMUnavailable, 503, "upstream_unavailable"),
        ({"kind": "malformed"}, LLMBadGateway, 502, "upstream_error"),
        ({"kind": "truncated"}, LLMBadGateway, 502, "upstream_error"),
    ],
)
def test_it_maps_upstream_failures(
    make_client: MakeClient, fake: FakeGroq, fault: dict[str, Any], error_type: type[LLMError], status: int, code: str
) -> None:
    client = make_client(max_retries=0)
    fake.add_faults(fault)

    with pytest.raises(error_type) as caught:
        client.complete(HELLO)

    assert (caught.value.status_code, caught.value.code) == (status, code)
    assert "Rate limit reached" not in caught.value.detail
    assert len(fake.chat_requests()) == 1


def test_it_reports_rate_limit_wait(make_client: MakeClient, fake: FakeGroq) -> None:
    fake.add_faults({"kind": "status", "status": 429, "retry_after": 3})

    with pytest.raises(LLMRateLimited) as caught:
        make_client(max_retries=0).complete(HELLO)

    assert caught.value.retry_after == 3


def test_it_rejects_a_wrong_key(make_client: MakeClient) -> None:
    with pytest.raises(LLMAuthFailed) as caught:
        make_client(api_key="wrong").complete(HELLO)

    assert "GROQ_API_KEY" in caught.value.detail


def test_it_names_a_decommissioned_configured_model(make_client: MakeClient) -> None:
    with pytest.raises(LLMModelUnavailable) as caught:
        make_client(model="llama3-8b-8192").complete(HELLO)

    assert caught.value.status_code == 503
    assert "llama3-8b-8192" in caught.value.detail and "GROQ_MODEL_NAME" in caught.value.detail


def test_it_blames_the_request_for_an_unknown_requested_model(client: ChatClient) -> None:
    with pytest.raises(LLMModelUnavailable) as caught:
        client.complete(HELLO, model="no-such-model", model_from_request=True)

    assert (caught.value.status_code, caught.value.code) == (400, "model_unavailable")
    assert "no-such-model" in caught.value.detail


def test_it_reports_context_overflow(client: ChatClient, fake: FakeGroq) -> None:
    fake.configure(context_window=5)

    with pytest.raises(LLMContextTooLong) as caught:
        client.complete([{"role": "user", "content": "x" * 100}])

    assert "HISTORY_MAX_MESSAGES" in caught.value.detail
    assert len(fake.chat_requests()) == 1


def test_it_reports_an_unreachable_upstream(make_client: MakeClient) -> None:
    client = make_client(base_url=f"http://127.0.0.1:{free_port()}/openai/v1", max_retries=1)

    with pytest.raises(LLMUnavailable):
        client.complete(HELLO)


def test_it_honours_retry_after_header(client: ChatClient, fake: FakeGroq) -> None:
    fake.add_faults({"kind": "status", "status": 429, "retry_after": 0.2})
    started = time.monotonic()

    assert client.complete(HELLO).content == "Echo: hello there"

    assert time.monotonic() - started >= 0.2
    assert len(fake.chat_requests()) == 2


def test_it_honours_try_again_in_message(client: ChatClient, fake: FakeGroq) -> None:
    message = "Rate limit reached for model `openai/gpt-oss-20b`. Please try again in 0.25s."
    fake.add_faults({"kind": "status", "status": 429, "message": message})
    started = time.monotonic()

    client.complete(HELLO)

    assert time.monotonic() - started >= 0.25
    [first, second] = fake.chat_requests()
    assert second["time"] - first["time"] >= 0.25


def test_it_parses_go_durations() -> None:
    assert parse_go_duration("5.289s") == pytest.approx(5.289)
    assert parse_go_duration("1m2.5s") == pytest.approx(62.5)
    assert parse_go_duration("1h0m0s") == pytest.approx(3600)
    assert parse_go_duration("250ms") == pytest.approx(0.25)
    assert parse_go_duration("soon") is None


def test_it_retries_server_errors_then_succeeds(client: ChatClient, fake: FakeGroq) -> None:
    fake.add_faults({"kind": "status", "status": 500}, {"kind": "status", "status": 502})

    assert client.complete(HELLO).content == "Echo: hello there"
    assert len(fake.chat_requests()) == 3


def test_it_gives_up_after_max_retries(client: ChatClient, fake: FakeGroq) -> None:
    fake.add_faults(*[{"kind": "status", "status": 503}] * 3)

    with pytest.raises(LLMUnavailable):
        client.complete(HELLO)

    assert len(fake.chat_requests()) == 3


def test_it_does_not_retry_a_bad_request(client: ChatClient, fake: FakeGroq) -> None:
    fake.add_faults({"kind": "status", "status": 400})

    with pytest.raises(LLMRequestRejected):
        client.complete(HELLO)

    assert len(fake.chat_requests()) == 1


def test_it_stops_at_the_deadline_when_hanging(make_client: MakeClient, fake: FakeGroq) -> None:
    client = make_client(timeout_seconds=0.5)
    fake.add_faults({"kind": "hang"})
    started = time.monotonic()

    with pytest.raises(LLMTimeout) as caught:
        client.complete(HELLO)

    assert 0.45 <= time.monotonic() - started < 1.0
    assert caught.value.status_code == 504
    assert len(fake.chat_requests()) == 1
    wait_for(lambda: fake.disconnects == 1)


def test_it_does_not_sleep_past_the_deadline(make_client: MakeClient, fake: FakeGroq) -> None:
    client = make_client(timeout_seconds=1.0)
    fake.add_faults(*[{"kind": "status", "status": 503, "retry_after": 5}] * 3)
    started = time.monotonic()

    with pytest.raises(LLMUnavailable) as caught:
        client.complete(HELLO)

    assert time.monotonic() - started < 0.5
    assert caught.value.retry_after == 5
    assert len(fake.chat_requests()) == 1


def test_it_streams_deltas_then_done(client: ChatClient, fake: FakeGroq) -> None:
    events = list(client.stream(HELLO))

    deltas = [e.text for e in events if isinstance(e, StreamDelta)]
    done = events[-1]
    assert isinstance(done, StreamDone)
    assert len(deltas) >= 3
    assert "".join(deltas) == done.completion.content == "Echo: hello there"
    assert done.completion.finish_reason == "stop"
    assert done.completion.usage.total_tokens > 0
    [sent] = fake.chat_requests()
    assert sent["json"]["stream"] is True
    assert sent["json"]["stream_options"] == {"include_usage": True}


def test_it_streams_before_the_answer_is_finished(client: ChatClient, fake: FakeGroq) -> None:
    fake.configure(chunk_delay=0.1, reply="one two three four five six")
    started = time.monotonic()
    first_delta_at = None

    for event in client.stream(HELLO):
        if first_delta_at is None and isinstance(event, StreamDelta):
            first_delta_at = time.monotonic() - started
    total = time.monotonic() - started

    assert first_delta_at is not None
    assert total >= 0.6
    assert first_delta_at < total / 3


def test_closing_a_stream_closes_the_upstream_request(client: ChatClient, fake: FakeGroq) -> None:
    fake.configure(chunk_delay=0.1, reply="one two three four five six seven eight")
    events = client.stream(HELLO)

    assert isinstance(next(events), StreamDelta)
    events.close()

    wait_for(lambda: fake.disconnects == 1, timeout=1.0)


def test_every_way_a_call_ends_gives_its_connection_back(make_client: MakeClient, fake: FakeGroq) -> None:
    # One connection in all: a call that kept it would leave the next one waiting for it until the deadline.
    client = make_client(max_connections=1, max_retries=0, timeout_seconds=1.0)
    fake.configure(reply="one two three four five")

    assert client.complete(HELLO).content == "one two three four five"
    assert isinstance(list(client.stream(HELLO))[-1], StreamDone)
    events = client.stream(HELLO)
    next(events)
    events.close()
    fake.add_faults({"kind": "status", "status": 500}, {"kind": "truncated"}, {"kind": "stream_error"})
    with pytest.raises(LLMBadGateway):
        client.complete(HELLO)
    with pytest.raises(LLMBadGateway):
        list(client.stream(HELLO))
    with pytest.raises(LLMStreamError):
        list(client.stream(HELLO))
    assert client.list_models()

    started = time.monotonic()
    assert client.complete(HELLO).content == "one two three four five"
    assert time.monotonic() - started < 0.5


def test_a_call_waits_for_a_free_connection_within_its_deadline(make_client: MakeClient, fake: FakeGroq) -> None:
    client = make_client(max_connections=1, max_retries=0, timeout_seconds=0.4)
    fake.configure(chunk_delay=0.1, reply="one two three four five six seven eight")
    holding = client.stream(HELLO)
    next(holding)

    started = time.monotonic()
    with pytest.raises(LLMTimeout):
        client.complete(HELLO)
    waited = time.monotonic() - started
    holding.close()

    assert 0.35 <= waited < 0.9
    assert len(fake.chat_requests()) == 1
    fake.configure(chunk_delay=0.0)
    assert client.complete(HELLO).content == "one two three four five six seven eight"


def test_it_retries_a_stream_that_was_refused_before_starting(client: ChatClient, fake: FakeGroq) -> None:
    fake.add_faults({"kind": "status", "status": 429, "retry_after": 0.05})

    events = list(client.stream(HELLO))

    assert isinstance(events[-1], StreamDone)
    assert events[-1].completion.content == "Echo: hello there"
    assert len(fake.chat_requests()) == 2


def test_it_raises_on_an_error_inside_a_stream(client: ChatClient, fake: FakeGroq) -> None:
    fake.configure(reply="one two three four five")
    fake.add_faults({"kind": "stream_error", "after_chunks": 2, "message": "secret upstream detail"})
    received: list[str] = []

    with pytest.raises(LLMStreamError) as caught:
        for event in client.stream(HELLO):
            if isinstance(event, StreamDelta):
                received.append(event.text)

    assert received == ["one ", "two "]
    assert "secret" not in caught.value.detail
    assert len(fake.chat_requests()) == 1


@pytest.mark.parametrize("kind", ["truncated", "malformed"])
def test_it_rejects_a_broken_stream(client: ChatClient, fake: FakeGroq, kind: str) -> None:
    fake.add_faults({"kind": kind})

    with pytest.raises(LLMBadGateway):
        list(client.stream(HELLO))

    assert len(fake.chat_requests()) == 1


def test_a_hanging_stream_times_out_at_the_deadline(make_client: MakeClient, fake: FakeGroq) -> None:
    fake.add_faults({"kind": "hang"})
    started = time.monotonic()

    with pytest.raises(LLMTimeout):
        list(make_client(timeout_seconds=0.4).stream(HELLO))

    assert time.monotonic() - started < 0.9


def test_it_reuses_connections_after_a_finished_stream(client: ChatClient, fake: FakeGroq) -> None:
    list(client.stream(HELLO))
    list(client.stream(HELLO))

    assert fake.disconnects == 0


def test_an_unreachable_upstream_is_named_by_host_and_port_only(make_client: MakeClient) -> None:
    port = free_port()
    client = make_client(base_url=f"http://user:hunter2@127.0.0.1:{port}/openai/v1?token=q-secret", max_retries=0)

    with pytest.raises(LLMUnavailable) as caught:
        client.complete(HELLO)

    detail = caught.value.detail
    assert detail == f"Cannot reach the language model service at 127.0.0.1:{port} (ConnectError); try again shortly."
    assert "hunter2" not in detail and "q-secret" not in detail and "test-key" not in detail


def test_a_server_error_names_the_host_with_its_default_port(make_client: MakeClient, fake: FakeGroq) -> None:
    client = make_client(base_url="https://api.groq.com/openai/v1", pool=to_fake(fake), max_retries=0)
    fake.add_faults({"kind": "status", "status": 503}, {"kind": "status", "status": 500})

    with pytest.raises(LLMUnavailable) as unavailable:
        client.complete(HELLO)
    with pytest.raises(LLMBadGateway) as failed:
        client.complete(HELLO)

    assert unavailable.value.detail == (
        "The language model service at api.groq.com:443 is unavailable (HTTP 503); try again shortly."
    )
    assert failed.value.detail == "The language model service at api.groq.com:443 failed (HTTP 500); try again shortly."
    assert (unavailable.value.code, failed.value.code) == ("upstream_unavailable", "upstream_error")


def test_a_timeout_names_the_host(make_client: MakeClient, fake: FakeGroq) -> None:
    fake.add_faults({"kind": "hang", "seconds": 5})

    with pytest.raises(LLMTimeout) as caught:
        make_client(timeout_seconds=0.3, max_retries=0).complete(HELLO)

    assert caught.value.detail == f"The language model service at 127.0.0.1:{fake.port} did not answer in time."
    assert caught.value.code == "upstream_timeout"
