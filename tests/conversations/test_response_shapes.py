"""The bodies built by hand, on the hot paths and for the export, give what the serializer the OpenAPI schema
documents them with gives for the same values."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest

from conversations.export_serializers import SessionExportSerializer
from conversations.openai.serializers import ChatCompletionSerializer, OpenAIErrorSerializer
from conversations.openai.wire import completion_body, openai_error
from conversations.selectors import session_export
from llm_provider.types import Completion, Usage

CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
TIMINGS = {"queue_time": 0.01, "prompt_time": 0.002, "completion_time": 0.03, "total_time": 0.032}


def same_json(built: object, rendered: object) -> bool:
    return json.dumps(built, sort_keys=True) == json.dumps(rendered, sort_keys=True)


@pytest.mark.parametrize(
    "completion",
    [
        Completion("Hello!", "openai/gpt-oss-20b", "stop", Usage(3, 4, 7)),
        Completion("Hi", "openai/gpt-oss-20b", None, Usage(3, 4, 7), usage_details=TIMINGS),
        Completion("", "openai/gpt-oss-20b", "tool_calls", Usage(5, 6, 11), tool_calls=[CALL]),
        Completion("Sure.", "qwen/qwen3-32b", "stop", Usage(1, 2, 3), reasoning="Thinking it over."),
    ],
    ids=["text", "groq-timings", "tool-calls", "reasoning"],
)
def test_a_completion_body_is_what_its_serializer_gives(completion):
    body = completion_body(completion, completion_id="chatcmpl-1", created=1_700_000_000)

    assert same_json(body, ChatCompletionSerializer(body).data)


@pytest.mark.parametrize(
    ("status", "code", "param"), [(400, None, "messages[1].role"), (401, "not_authenticated", None), (503, "x", None)]
)
def test_an_openai_error_body_is_what_its_serializer_gives(status, code, param):
    body = openai_error("Something is wrong.", status=status, code=code, param=param)

    assert same_json(body, OpenAIErrorSerializer(body).data)


def test_a_session_export_is_what_its_serializer_gives(alice, alice_client):
    messages = [
        {"role": "user", "content": "Look it up.", "created_at": "2026-12-01T00:00:00.000Z"},
        {"role": "assistant", "content": "", "tool_calls": [CALL], "created_at": "2026-12-01T00:00:01.000Z"},
        {"role": "tool", "content": "found", "tool_call_id": "call_1", "created_at": "2026-12-01T00:00:02.000Z"},
        {"role": "assistant", "content": "It is x.", "created_at": "2026-12-01T00:00:03.000Z"},
    ]
    document = {
        "format": "chatbot-session/1",
        "session_id": "s1",
        "messages": messages,
        "summary": "Earlier, a greeting.",
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "requests": 2},
    }
    imported = alice_client.post("/chat/sessions/import", document, format="json")
    assert imported.status_code == HTTPStatus.CREATED, imported.content

    exported = session_export(admin_id=alice.id, session_id="s1")

    assert exported is not None and exported["messages"][1]["tool_calls"] == [CALL]
    assert same_json(exported, SessionExportSerializer(exported).data)
