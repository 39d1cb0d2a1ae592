"""OpenAI's and Groq's official SDKs, pointed at the service as `make run` starts it, with an admin's API key."""

from __future__ import annotations

import json

import groq
import openai
import pydantic
import pytest

from accounts.api_keys import api_key_create
from tests.server import running_server

MODEL = "openai/gpt-oss-20b"


@pytest.fixture(scope="module")
def server_url(redis_topology: str):
    # No retries upstream, so that one injected 429 reaches the client.
    with running_server(LLM_MAX_RETRIES="0") as url:
        yield url


@pytest.fixture
def api_key(alice) -> str:
    return api_key_create(admin_id=alice.id, name="sdk")[1]


def error_of(exc) -> dict:
    # OpenAI's SDK keeps the `error` object as the body, Groq's the whole answer.
    return exc.body.get("error", exc.body)


def openai_client(server_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server_url}/v1", api_key=key, max_retries=0)


def groq_client(server_url: str, key: str) -> groq.Groq:
    return groq.Groq(base_url=server_url, api_key=key, max_retries=0)


@pytest.fixture(params=["openai", "groq"])
def sdk(request, server_url, api_key):
    make = openai_client if request.param == "openai" else groq_client
    return request.param, make(server_url, api_key)


def test_a_chat(sdk):
    _, client = sdk

    completion = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello!"}])

    assert completion.choices[0].message.content == "Echo: Hello!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens > 0


def test_a_streamed_chat(sdk):
    _, client = sdk

    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "tell me a story"}], stream=True
    )
    chunks = list(stream)

    assert len(chunks) > 2
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: tell me a story"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_streamed_chat_with_usage(server_url, api_key):
    stream = openai_client(server_url, api_key).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    *_, last = list(stream)

    assert last.choices == []
    assert last.usage.total_tokens > 0


def test_a_session_remembers_the_conversation(server_url, api_key, fake_groq):
    client = openai_client(server_url, api_key)
    for text in ("My name is Ada.", "What is my name?"):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}], extra_headers={"X-Session-Id": "ada"}
        )

    assert [m["content"] for m in fake_groq.chat_requests()[-1]["json"]["messages"]] == [
        "My name is Ada.",
        "Echo: My name is Ada.",
        "What is my name?",
    ]


def test_the_models_list(sdk):
    _, client = sdk
    assert MODEL in [model.id for model in client.models.list().data]


def test_a_bad_key_is_an_authentication_error(sdk, server_url, alice):
    name, _ = sdk
    module, make = (openai, openai_client) if name == "openai" else (groq, groq_client)

    with pytest.raises(module.AuthenticationError) as caught:
        make(server_url, "cgk_not-a-key").chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        )

    assert caught.value.status_code == 401
    assert error_of(caught.value)["code"] == "invalid_api_key"


def test_a_rate_limit_is_a_rate_limit_error(sdk, fake_groq):
    name, client = sdk
    module = openai if name == "openai" else groq
    fake_groq.add_faults({"kind": "status", "status": 429, "retry_after": 3})

    with pytest.raises(module.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])

    assert caught.value.response.headers["retry-after"] == "3"
    assert error_of(caught.value)["type"] == "rate_limit_error"


def test_an_unknown_model_is_a_not_found_error(server_url, api_key):
    with pytest.raises(openai.NotFoundError):
        openai_client(server_url, api_key).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    },
}


def test_the_tool_calling_flow(sdk):
    _, client = sdk
    messages: list = [{"role": "user", "content": "Weather in Paris?"}]

    first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    call = first.choices[0].message.tool_calls[0]
    messages += [first.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "Sunny"}]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])

    assert first.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"text": "Weather in Paris?"})
    assert second.choices[0].message.content == "Tool said: Sunny"


def test_the_streamed_tool_calling_flow_with_a_session(server_url, api_key, fake_groq):
    client = openai_client(server_url, api_key)
    session = {"X-Session-Id": "weather"}
    question = [{"role": "user", "content": "Weather in Paris?"}]

    with client.chat.completions.stream(
        model=MODEL, messages=question, tools=[WEATHER_TOOL], extra_headers=session
    ) as stream:
        call = stream.get_final_completion().choices[0].message.tool_calls[0]
    answer = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "tool", "tool_call_id": call.id, "content": "Sunny"}],
        tools=[WEATHER_TOOL],
        extra_headers=session,
    )

    assert json.loads(call.function.arguments) == {"text": "Weather in Paris?"}
    assert answer.choices[0].message.content == "Tool said: Sunny"
    sent = fake_groq.chat_requests()[-1]["json"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["id"] == call.id


def test_json_mode(sdk):
    _, client = sdk

    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], response_format={"type": "json_object"}
    )

    assert json.loads(completion.choices[0].message.content) == {"echo": "hi"}


def test_structured_output_parses_into_a_model(server_url, api_key, fake_groq):
    class Echo(pydantic.BaseModel):
        echo: str

    completion = openai_client(server_url, api_key).chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], response_format=Echo
    )

    assert completion.choices[0].message.parsed == Echo(echo="hi")
    assert fake_groq.chat_requests()[-1]["json"]["response_format"]["type"] == "json_schema"


def test_what_langchain_style_clients_send_is_accepted(server_url, api_key, fake_groq):
    completion = openai_client(server_url, api_key).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        top_p=1,
        stop=["\nObservation:"],
        seed=1,
        presence_penalty=0,
        frequency_penalty=0,
        user="someone",
        stream=False,
    )

    assert completion.choices[0].message.content == "Echo: hi"
    assert fake_groq.chat_requests()[-1]["json"]["stop"] == ["\nObservation:"]


def test_a_response_chain_and_its_stream(server_url, api_key, fake_groq):
    client = openai_client(server_url, api_key)

    first = client.responses.create(model=MODEL, input="one")
    second = client.responses.create(
        model=MODEL, input=[{"role": "user", "content": "two"}], previous_response_id=first.id
    )
    with client.responses.stream(model=MODEL, input="three", previous_response_id=second.id) as stream:
        final = stream.get_final_response()

    assert final.output_text == "Echo: three"
    assert client.responses.retrieve(final.id).previous_response_id == second.id
    sent = [(m["role"], m["content"]) for m in fake_groq.chat_requests()[-1]["json"]["messages"]][-5:]
    assert sent == [
        ("user", "one"),
        ("assistant", "Echo: one"),
        ("user", "two"),
        ("assistant", "Echo: two"),
        ("user", "three"),
    ]
