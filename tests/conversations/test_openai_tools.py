"""/v1/chat/completions passes on what Groq accepts: generation parameters, JSON mode, reasoning and tool calls,
also with X-Session-Id, where the stored history keeps tool calls and their results."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest

from tests.conversations.test_openai_compat import chunks_of, complete, user

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    },
}
PASSED_ON = {
    "top_p": 0.9,
    "stop": ["\n\n", "END"],
    "seed": 7,
    "user": "user-42",
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
    "response_format": {"type": "json_schema", "json_schema": {"name": "echo", "schema": {"type": "object"}}},
    "reasoning_effort": "low",
    "reasoning_format": "parsed",
    "service_tier": "flex",
    "tools": [WEATHER],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False,
}


def upstream_body(fake_groq) -> dict:
    return fake_groq.chat_requests()[-1]["json"]


def test_every_parameter_groq_accepts_goes_upstream_as_given(alice_client, fake_groq):
    response = complete(alice_client, user("hi"), **PASSED_ON, max_completion_tokens=64)

    assert response.status_code == HTTPStatus.OK
    sent = upstream_body(fake_groq)
    assert {name: sent.get(name) for name in PASSED_ON} == PASSED_ON
    assert sent["max_tokens"] == 64  # the fake upstream is not api.groq.com, so the classic name


def test_clients_that_send_neutral_values_of_refused_parameters_still_work(alice_client, fake_groq):
    response = complete(alice_client, user("hi"), logprobs=False, logit_bias=None, top_logprobs=None, n=1)

    assert response.status_code == HTTPStatus.OK
    assert "logprobs" not in upstream_body(fake_groq)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"top_p": 1.5}, "top_p"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": [""]}, "stop"),
        ({"seed": "seven"}, "seed"),
        ({"presence_penalty": 3}, "presence_penalty"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"service_tier": "gold"}, "service_tier"),
        ({"tools": [{"type": "function", "function": {"name": "has spaces"}}]}, "tools[0].function.name"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": [WEATHER], "reasoning_format": "raw"}, "reasoning_format"),
        ({"reasoning_format": "parsed", "include_reasoning": True}, "include_reasoning"),
    ],
)
def test_bad_parameters_are_refused_before_any_call(alice_client, fake_groq, extra, param):
    response = complete(alice_client, user("hi"), **extra)

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"]["param"] == param
    assert fake_groq.chat_requests() == []


def test_a_tool_call_reply_in_openais_shape(alice_client):
    response = complete(alice_client, user("Weather in Paris?"), tools=[WEATHER])

    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_")
    assert call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": json.dumps({"text": "Weather in Paris?"})}


def test_a_streamed_tool_call_passes_its_pieces_on(alice_client):
    response = complete(alice_client, user("Weather in Paris?"), tools=[WEATHER], stream=True)

    chunks = [c for c in chunks_of(response) if c != "[DONE]"]
    pieces = [p for c in chunks for p in c["choices"][0]["delta"].get("tool_calls", [])]
    assert pieces[0]["id"].startswith("call_") and pieces[0]["function"]["name"] == "get_weather"
    assert "".join(p["function"]["arguments"] for p in pieces) == json.dumps({"text": "Weather in Paris?"})
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_stateless_tool_round_trip_goes_upstream_as_given(alice_client, fake_groq):
    call = complete(alice_client, user("Weather?"), tools=[WEATHER]).json()["choices"][0]["message"]
    assistant = {"role": "assistant", "content": None, "tool_calls": call["tool_calls"]}
    result = {"role": "tool", "tool_call_id": call["tool_calls"][0]["id"], "content": "Sunny, 21 C"}

    response = complete(alice_client, user("Weather?"), assistant, result, tools=[WEATHER])

    assert response.json()["choices"][0]["message"]["content"] == "Tool said: Sunny, 21 C"
    sent = upstream_body(fake_groq)["messages"]
    assert sent[1]["tool_calls"] == call["tool_calls"]
    assert sent[2] == result


@pytest.mark.parametrize("stream", [False, True])
def test_a_session_keeps_the_tool_calls_and_their_results(history_backend, alice_client, fake_groq, stream):
    first = complete(alice_client, user("Weather in Paris?"), session="trip", tools=[WEATHER], stream=stream)
    assert first.status_code == HTTPStatus.OK
    if stream:
        b"".join(first.streaming_content)
    calls = alice_client.get("/chat/sessions/trip").json()["messages"][1]["tool_calls"]
    result = {"role": "tool", "tool_call_id": calls[0]["id"], "content": "Sunny, 21 C"}

    second = complete(alice_client, result, session="trip", tools=[WEATHER])

    assert second.json()["choices"][0]["message"]["content"] == "Tool said: Sunny, 21 C"
    sent = upstream_body(fake_groq)["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"] == calls
    stored = alice_client.get("/chat/sessions/trip").json()["messages"]
    assert [m["role"] for m in stored] == ["user", "assistant", "tool", "assistant"]
    assert stored[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert stored[2]["tool_call_id"] == calls[0]["id"]
    assert stored[3]["content"] == "Tool said: Sunny, 21 C"


def test_a_session_turn_needs_a_user_message_or_tool_results(alice_client, fake_groq):
    response = complete(alice_client, {"role": "system", "content": "Be brief."}, session="s1")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"]["param"] == "messages"
    assert fake_groq.chat_requests() == []


def test_a_tool_message_needs_its_call_id(alice_client):
    response = complete(alice_client, user("hi"), {"role": "tool", "content": "x"})

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["error"]["param"] == "messages[1].tool_call_id"


def test_json_mode_answers_json(alice_client):
    response = complete(alice_client, user("hi"), response_format={"type": "json_object"})

    assert json.loads(response.json()["choices"][0]["message"]["content"]) == {"echo": "hi"}


def test_a_parsed_reasoning_is_kept(alice_client):
    body = complete(alice_client, user("hi"), reasoning_format="parsed").json()

    assert body["choices"][0]["message"]["reasoning"] == "Thinking about: hi"


def test_a_streamed_reasoning_is_passed_on(alice_client):
    response = complete(alice_client, user("hi"), reasoning_format="parsed", stream=True)

    chunks = [c for c in chunks_of(response) if c != "[DONE]" and c["choices"]]
    assert "".join(c["choices"][0]["delta"].get("reasoning", "") for c in chunks) == "Thinking about: hi"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Echo: hi"


def test_groqs_timings_pass_through_in_the_usage(alice_client):
    usage = complete(alice_client, user("hi")).json()["usage"]

    assert {"queue_time", "prompt_time", "completion_time", "total_time"} <= set(usage)


def test_a_streams_usage_chunk_carries_the_timings_too(alice_client):
    response = complete(alice_client, user("hi"), stream=True, stream_options={"include_usage": True})

    *_, last, done = chunks_of(response)
    assert done == "[DONE]"
    assert last["usage"]["total_time"] > 0


def test_the_developer_role_goes_upstream_as_system(alice_client, fake_groq):
    complete(alice_client, {"role": "developer", "content": "Be brief."}, user("hi"))

    assert upstream_body(fake_groq)["messages"][0] == {"role": "system", "content": "Be brief."}


def test_a_stream_names_the_model_that_answered_after_a_fallback(alice_client, fake_groq, settings):
    settings.LLM_MAX_RETRIES = 0
    settings.GROQ_FALLBACK_MODELS = ["openai/gpt-oss-120b"]
    fake_groq.add_faults({"kind": "status", "status": 503})

    response = complete(alice_client, user("hi"), stream=True)

    chunks = [c for c in chunks_of(response) if c != "[DONE]"]
    assert {c["model"] for c in chunks} == {"openai/gpt-oss-120b"}
