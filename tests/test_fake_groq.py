"""The fake upstream must speak Groq's protocol: Groq's own SDK is the judge."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import groq
import httpx
import pytest

from tests.fake_groq import FakeGroq, go_duration
from tests.support import wait_for

MODEL = "openai/gpt-oss-20b"
HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def fake(fake_groq: FakeGroq) -> FakeGroq:
    return fake_groq


@pytest.fixture
def sdk(fake: FakeGroq) -> Iterator[groq.Groq]:
    # The SDK appends /openai/v1/... itself, so it gets the server root.
    with groq.Groq(api_key="test-key", base_url=fake.root, max_retries=0) as client:
        yield client


def test_sdk_parses_a_completion(sdk: groq.Groq) -> None:
    completion = sdk.chat.completions.create(model=MODEL, messages=HELLO, max_completion_tokens=64)  # type: ignore[arg-type]

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.choices[0].message.content == "Echo: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert completion.x_groq is not None and completion.x_groq.id.startswith("req_")


def test_sdk_parses_a_stream(sdk: groq.Groq) -> None:
    stream = sdk.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        stream=True,
        extra_body={"stream_options": {"include_usage": True}},  # type: ignore[arg-type]
    )
    chunks = list(stream)

    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "Echo: hello there"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 3
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_sdk_lists_models(sdk: groq.Groq) -> None:
    ids = [model.id for model in sdk.models.list().data]

    assert ids == ["openai/gpt-oss-20b", "openai/gpt-oss-120b", "llama-3.1-8b-instant"]


def test_sdk_sees_a_rate_limit(sdk: groq.Groq, fake: FakeGroq) -> None:
    fake.add_faults({"kind": "status", "status": 429, "retry_after": 2})

    with pytest.raises(groq.RateLimitError) as caught:
        sdk.chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]

    assert caught.value.response.headers["retry-after"] == "2"
    assert "Please try again in 2s." in caught.value.message
    assert caught.value.body["error"]["code"] == "rate_limit_exceeded"  # type: ignore[index]


def test_sdk_sees_an_unknown_model(sdk: groq.Groq) -> None:
    with pytest.raises(groq.NotFoundError) as caught:
        sdk.chat.completions.create(model="no-such-model", messages=HELLO)  # type: ignore[arg-type]

    assert caught.value.body["error"]["code"] == "model_not_found"  # type: ignore[index]


@pytest.mark.parametrize(
    ("model", "context_window", "code"),
    [("mixtral-8x7b-32768", 131_072, "model_decommissioned"), (MODEL, 2, "context_length_exceeded")],
)
def test_sdk_sees_a_bad_request(sdk: groq.Groq, fake: FakeGroq, model: str, context_window: int, code: str) -> None:
    fake.configure(context_window=context_window)

    with pytest.raises(groq.BadRequestError) as caught:
        sdk.chat.completions.create(model=model, messages=HELLO)  # type: ignore[arg-type]

    assert caught.value.body["error"]["code"] == code  # type: ignore[index]


def test_sdk_sees_a_wrong_key(fake: FakeGroq) -> None:
    with (
        groq.Groq(api_key="wrong", base_url=fake.root, max_retries=0) as client,
        pytest.raises(groq.AuthenticationError) as caught,
    ):
        client.models.list()

    assert caught.value.body["error"] == {
        "message": "Invalid API Key",
        "type": "invalid_request_error",
        "code": "invalid_api_key",
    }


def test_it_sends_rate_limit_headers(fake: FakeGroq) -> None:
    response = httpx.post(
        f"{fake.url}/chat/completions",
        json={"model": MODEL, "messages": HELLO, "max_tokens": 10},
        headers={"Authorization": "Bearer test-key"},
    )

    assert response.status_code == 200
    for name in ("limit", "remaining", "reset"):
        assert response.headers[f"x-ratelimit-{name}-requests"]
        assert response.headers[f"x-ratelimit-{name}-tokens"]
    assert response.headers["x-ratelimit-reset-requests"] == "6s"


def test_go_duration() -> None:
    assert [go_duration(s) for s in (7.66, 360, 0.5, 3725)] == ["7.66s", "6m0s", "0.5s", "1h2m5s"]


def test_it_is_controlled_over_http(fake: FakeGroq) -> None:
    with httpx.Client(base_url=fake.root) as http:
        assert http.post("/_fake/config", json={"api_key": "other", "reply": "fixed"}).status_code == 200
        assert http.post("/_fake/faults", json={"faults": [{"kind": "status", "status": 503}]}).status_code == 200
        assert http.post("/_fake/config", json={"nonsense": 1}).status_code == 400
        chat = {"model": MODEL, "messages": HELLO}
        auth = {"Authorization": "Bearer other"}

        assert http.post("/openai/v1/chat/completions", json=chat, headers=auth).status_code == 503
        answer = http.post("/openai/v1/chat/completions", json=chat, headers=auth).json()
        recorded = http.get("/_fake/requests").json()
        http.post("/_fake/reset")

        assert answer["choices"][0]["message"]["content"] == "fixed"
        assert [r["json"] for r in recorded["requests"]] == [chat, chat]
        assert recorded["requests"][0]["headers"]["authorization"] == "Bearer other"
        assert fake.requests == [] and fake.settings.api_key == "test-key"


def test_it_runs_standalone() -> None:
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_groq", "--port", "0", "--base-path", "/v1"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        models = httpx.get(f"{url}/models", headers={"Authorization": "Bearer test-key"})

        assert url.endswith("/v1")
        assert models.json()["data"][0]["id"] == MODEL
    finally:
        process.terminate()
    assert process.wait(timeout=10) == 0


def test_a_hang_ends_at_release_and_a_reset_forgets_the_requests_still_in_flight(fake: FakeGroq) -> None:
    fake.add_faults({"kind": "hang", "seconds": 60})
    headers = {"Authorization": "Bearer test-key"}
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(
            httpx.post, f"{fake.url}/chat/completions", json={"model": MODEL, "messages": HELLO}, headers=headers
        )
        wait_for(lambda: fake.held == 1, what="the request held upstream")
        assert fake.in_flight == 1
        fake.reset()  # as between two tests: the held request is an earlier test's now
        assert fake.in_flight == fake.held == 0
        fake.release()
        assert answer.result(timeout=10).status_code == 200

    assert fake.in_flight == fake.held == 0
