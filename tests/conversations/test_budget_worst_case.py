"""What a turn reserves against a token budget covers everything it sends upstream: the messages, and the tool
definitions, JSON schema and stop sequences beside them, the system prompt, the history and its summary, and a
summary call. The fake upstream bills tools and response formats as prompt tokens, as Groq does.

The invariant: a turn whose reply uses all of its `max_tokens` settles no more than it reserved, that is, the prompt
the upstream bills is never more than the prompt the reservation counted; so requests never together spend more
than a budget, one at a time or all at once."""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import httpx
import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from accounts.budgets import Budget, BudgetOwner, budget_set, budget_status
from core.redis_store import redis_client
from tests.fake_groq import prompt_tokens
from tests.server import running_server
from tests.support import chat, wait_for

MODEL = "openai/gpt-oss-20b"
MAX_TOKENS = 100
ATTACKER_BUDGET = 3000


def tools(count: int, description_chars: int) -> list[dict]:
    """`count` tool definitions, each with a description of `description_chars` characters (as words, so that
    they are about as many tokens as the estimate counts)."""
    description = ("lorem ipsum dolor sit amet " * (description_chars // 27 + 1))[:description_chars]
    return [
        {
            "type": "function",
            "function": {
                "name": f"tool_{i}",
                "description": description,
                "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
            },
        }
        for i in range(count)
    ]


def schema(chars: int) -> dict:
    """A response_format with a json_schema of about `chars` characters."""
    properties = {
        f"field_{i}": {"type": "string", "description": "lorem ipsum dolor sit amet"} for i in range(chars // 75)
    }
    return {
        "type": "json_schema",
        "json_schema": {"name": "big", "schema": {"type": "object", "properties": properties}},
    }


def completion(client: APIClient, text: str = "hi", **extra):
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": MAX_TOKENS, **extra}
    return client.post("/v1/chat/completions", body, format="json")


def used(owner: BudgetOwner) -> int:
    status = budget_status(owner)
    assert status is not None
    return status["used"]


@pytest.fixture
def attacker(alice_client) -> tuple[APIClient, BudgetOwner]:
    """An API key with a small budget, and its budget's owner."""
    created = alice_client.post(
        "/admin/api-keys", {"name": "attacker", "budget": {"tokens": ATTACKER_BUDGET, "period": "day"}}, format="json"
    ).json()
    return APIClient(HTTP_AUTHORIZATION=f"Bearer {created['key']}"), BudgetOwner("key", created["id"])


def reserved_tokens() -> int:
    """The tokens reservations in flight hold against every budget."""
    client = redis_client()
    held = 0
    for key in client.scan_iter(match=f"{django_settings.REDIS_KEY_PREFIX}:*budget-usage*"):
        for name, value in client.hgetall(key).items():
            if name.startswith(b"r:"):
                held += int(value.split(b":")[0])
    return held


def reserved_while_upstream(fake_groq, send: Callable[[], object]):
    """Sends a request whose next upstream call to reach the fake's faults is held, and reads what its turn holds
    meanwhile."""
    fake_groq.add_faults({"kind": "hang", "seconds": 60})  # held upstream until its reservation is read
    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(send)
        try:
            wait_for(lambda: fake_groq.held == 1)
            held = reserved_tokens()
        finally:
            fake_groq.release()
        return sent.result(), held


def test_the_attack_with_128_large_tools_is_refused_before_any_call(attacker, fake_groq):
    client, owner = attacker

    response = completion(client, tools=tools(128, 6000))  # 780 KB of tool definitions

    assert response.status_code == HTTPStatus.BAD_REQUEST
    error = response.json()["error"]
    assert error["param"] == "tools"
    assert "MAX_TOOLS_CHARS" in error["message"]
    assert fake_groq.chat_requests() == []
    assert used(owner) == 0


@pytest.mark.parametrize("endpoint", ["/v1", "/chat/"])
def test_the_attack_with_a_500_kb_json_schema_is_refused_before_any_call(attacker, fake_groq, endpoint):
    client, owner = attacker

    if endpoint == "/v1":
        response = completion(client, response_format=schema(500_000))
    else:
        response = chat(client, "hi", max_tokens=MAX_TOKENS, response_format=schema(500_000))

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert "MAX_SCHEMA_CHARS" in response.content.decode()
    assert fake_groq.chat_requests() == []
    assert used(owner) == 0


@pytest.mark.parametrize("attack", ["tools", "json_schema"])
def test_past_raised_size_limits_the_attack_is_over_budget_and_refused(attacker, fake_groq, settings, attack):
    settings.MAX_TOOLS_CHARS = settings.MAX_SCHEMA_CHARS = settings.MAX_REQUEST_CHARS = 1_000_000
    client, owner = attacker
    extra = {"tools": tools(128, 6000)} if attack == "tools" else {"response_format": schema(500_000)}

    response = completion(client, **extra)

    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response.json()["error"]["code"] == "budget_exceeded"
    assert fake_groq.chat_requests() == []
    assert used(owner) == 0


STOP = ["\n\nUser:", "END OF ANSWER"]


@pytest.mark.parametrize(
    "request_kind",
    [
        "v1 tools",
        "v1 json_schema",
        "v1 tools, schema and stop under a system prompt",
        "v1 stream with tools",
        "v1 session with tools",
        "chat json_schema",
    ],
)
def test_a_turn_settles_no_more_than_it_reserved(alice, alice_client, fake_groq, settings, request_kind):
    settings.SYSTEM_PROMPT = "You answer briefly. " * 50 if "system prompt" in request_kind else ""
    fake_groq.configure(completion_tokens=MAX_TOKENS)  # every reply uses all of its max_tokens
    owner = BudgetOwner("admin", alice.id)
    budget_set(owner, Budget(1_000_000, "day"))
    extra: dict = {}
    if "tools" in request_kind:
        extra["tools"] = tools(16, 1500)
    if "schema" in request_kind:
        extra["response_format"] = schema(12_000)
    if "stop" in request_kind:
        extra["stop"] = STOP

    def send():
        if request_kind.startswith("chat"):
            return chat(alice_client, "hi", max_tokens=MAX_TOKENS, **extra)
        headers = {"HTTP_X_SESSION_ID": "s1"} if "session" in request_kind else {}
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": MAX_TOKENS, **extra}
        if "stream" in request_kind:
            body["stream"] = True
        response = alice_client.post("/v1/chat/completions", body, format="json", **headers)
        if response.streaming:
            b"".join(response.streaming_content)
        return response

    response, reserved = reserved_while_upstream(fake_groq, send)

    assert response.status_code == HTTPStatus.OK
    settled = used(owner)
    assert settled > MAX_TOKENS  # the upstream billed a prompt
    assert settled <= reserved


def test_a_regenerate_and_an_edit_settle_no_more_than_they_reserved(alice, alice_client, fake_groq, settings):
    settings.SYSTEM_PROMPT = "You answer briefly. " * 50
    fake_groq.configure(completion_tokens=MAX_TOKENS)
    owner = BudgetOwner("admin", alice.id)
    assert chat(alice_client, "a question " * 100, max_tokens=MAX_TOKENS).status_code == HTTPStatus.OK
    budget_set(owner, Budget(1_000_000, "day"))

    for path, body in (("regenerate", {}), ("edit", {"message": "another question " * 100})):
        before = used(owner)
        response, reserved = reserved_while_upstream(
            fake_groq,
            lambda path=path, body=body: alice_client.post(
                f"/chat/sessions/s1/{path}", {**body, "max_tokens": MAX_TOKENS}, format="json"
            ),
        )
        assert response.status_code == HTTPStatus.OK
        assert MAX_TOKENS < used(owner) - before <= reserved


def test_a_regenerate_and_an_edit_over_the_budget_are_refused_and_change_nothing(alice, alice_client, fake_groq):
    fake_groq.configure(completion_tokens=MAX_TOKENS)
    assert chat(alice_client, "hi", max_tokens=MAX_TOKENS).status_code == HTTPStatus.OK
    stored = alice_client.get("/chat/sessions/s1").json()["messages"]
    owner = BudgetOwner("admin", alice.id)
    budget_set(owner, Budget(MAX_TOKENS, "day"))  # less than any prompt and MAX_TOKENS
    calls = len(fake_groq.chat_requests())

    regenerate = alice_client.post("/chat/sessions/s1/regenerate", {"max_tokens": MAX_TOKENS}, format="json")
    edit = alice_client.post("/chat/sessions/s1/edit", {"message": "x", "max_tokens": MAX_TOKENS}, format="json")

    assert (regenerate.status_code, edit.status_code) == (HTTPStatus.TOO_MANY_REQUESTS,) * 2
    assert regenerate.json()["code"] == edit.json()["code"] == "budget_exceeded"
    assert len(fake_groq.chat_requests()) == calls
    assert alice_client.get("/chat/sessions/s1").json()["messages"] == stored
    assert used(owner) == 0


def test_a_turn_that_folds_a_summary_settles_no_more_than_it_reserved(alice, alice_client, fake_groq, settings):
    """The fold's call, and the reply's prompt with the new summary (which the history before the fold did not
    have), are both in the reservation."""
    settings.HISTORY_SUMMARY, settings.HISTORY_MAX_MESSAGES = True, 2
    settings.HISTORY_SUMMARY_MAX_TOKENS = MAX_TOKENS
    # Every reply, the summary too, is as long as its max_tokens allows.
    fake_groq.configure(reply="word " * (MAX_TOKENS * 4 // 5), completion_tokens=MAX_TOKENS)
    for text in ("first " * 60, "second " * 60):
        assert chat(alice_client, text, max_tokens=MAX_TOKENS).status_code == HTTPStatus.OK
    owner = BudgetOwner("admin", alice.id)
    budget_set(owner, Budget(1_000_000, "day"))
    calls = len(fake_groq.chat_requests())

    response, reserved = reserved_while_upstream(
        fake_groq, lambda: chat(alice_client, "third " * 60, max_tokens=MAX_TOKENS)
    )

    assert response.status_code == HTTPStatus.OK
    assert len(fake_groq.chat_requests()) == calls + 2  # the fold, then the reply
    assert alice_client.get("/chat/sessions/s1").json()["summary"]
    assert used(owner) == response.json()["usage"]["total_tokens"]  # the fold's tokens too
    assert used(owner) <= reserved


def test_a_fallback_model_settles_no_more_than_the_turn_reserved(alice, alice_client, fake_groq, settings):
    """The reservation does not depend on the model; a call that fails over to a fallback model is charged the
    fallback's usage once."""
    settings.GROQ_FALLBACK_MODELS, settings.LLM_MAX_RETRIES = ["openai/gpt-oss-120b"], 0
    fake_groq.configure(completion_tokens=MAX_TOKENS)
    owner = BudgetOwner("admin", alice.id)
    budget_set(owner, Budget(1_000_000, "day"))
    fake_groq.add_faults({"kind": "status", "status": 503})  # then the fallback's call waits a moment

    response, reserved = reserved_while_upstream(fake_groq, lambda: completion(alice_client, tools=tools(16, 1500)))

    assert response.status_code == HTTPStatus.OK
    assert [r["json"]["model"] for r in fake_groq.chat_requests()] == [MODEL, "openai/gpt-oss-120b"]
    assert used(owner) == response.json()["usage"]["total_tokens"] <= reserved


def test_a_model_outside_the_allow_list_is_refused_before_any_reservation(attacker, fake_groq):
    client, owner = attacker

    response = completion(client, model="llama-3.1-8b-instant")

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert fake_groq.chat_requests() == []
    assert used(owner) == 0


def test_sixteen_concurrent_requests_with_tools_never_end_above_the_budget(alice_client, fake_groq):
    """Each request's tools are within the size limits but bill about 2,000 prompt tokens; the budget fits one."""
    fake_groq.configure(completion_tokens=MAX_TOKENS, latency=0.1)
    created = alice_client.post(
        "/admin/api-keys", {"name": "attacker", "budget": {"tokens": ATTACKER_BUDGET, "period": "day"}}, format="json"
    ).json()
    owner = BudgetOwner("key", created["id"])
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": MAX_TOKENS,
        "tools": tools(16, 500),
    }
    with running_server(HISTORY_BACKEND="redis") as url:
        headers = {"Authorization": f"Bearer {created['key']}"}

        def one(_: int) -> httpx.Response:
            return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)

        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(one, range(16)))

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {HTTPStatus.OK, HTTPStatus.TOO_MANY_REQUESTS}
    assert HTTPStatus.OK in statuses
    billed = sum(r.json()["usage"]["total_tokens"] for r in responses if r.status_code == HTTPStatus.OK)
    assert billed > ATTACKER_BUDGET // 2  # the tools were billed as the prompt
    assert used(owner) == billed <= ATTACKER_BUDGET


def test_tool_call_ids_and_names_count_in_the_reservation(alice, alice_client, fake_groq):
    """A stateless conversation of tool round trips whose ids are as long as allowed and whose texts are short."""
    fake_groq.configure(completion_tokens=MAX_TOKENS)
    owner = BudgetOwner("admin", alice.id)
    budget_set(owner, Budget(1_000_000, "day"))
    messages: list[dict] = [{"role": "user", "content": "hi", "name": "n" * 64}]
    for i in range(30):
        call_id = f"{i:03d}" + "c" * 197
        call = {"id": call_id, "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": "ok"},
        ]
    body = {"model": MODEL, "messages": messages, "max_tokens": MAX_TOKENS}

    response, reserved = reserved_while_upstream(
        fake_groq, lambda: alice_client.post("/v1/chat/completions", body, format="json")
    )

    assert response.status_code == HTTPStatus.OK
    assert used(owner) <= reserved


def test_a_stream_left_early_is_charged_its_tools_as_prompt(alice, alice_client, fake_groq):
    owner = BudgetOwner("admin", alice.id)
    budget_set(owner, Budget(1_000_000, "day"))
    fake_groq.configure(reply="a b c d e f g h i j k l m n o p", chunk_delay=0.05)

    response = completion(alice_client, stream=True, tools=tools(16, 1500), tool_choice="none")
    chunks = iter(response.streaming_content)
    next(chunks), next(chunks)
    response.close()
    fake_groq.wait_idle()

    (sent,) = fake_groq.chat_requests()
    assert used(owner) >= prompt_tokens(sent["json"], sent["json"]["messages"])  # what the upstream billed


def test_a_fold_is_charged_when_the_reply_then_fails(alice, alice_client, fake_groq, settings):
    settings.HISTORY_SUMMARY, settings.HISTORY_MAX_MESSAGES, settings.LLM_MAX_RETRIES = True, 2, 0
    for text in ("one", "two"):
        assert chat(alice_client, text).status_code == HTTPStatus.OK
    owner = BudgetOwner("admin", alice.id)
    budget_set(owner, Budget(1_000_000, "day"))
    fake_groq.add_faults({"kind": "hang", "seconds": 0}, {"kind": "status", "status": 500})  # the fold, the reply

    response = chat(alice_client, "three")

    assert response.status_code == HTTPStatus.BAD_GATEWAY
    fold = fake_groq.chat_requests()[-2]["json"]
    assert fold["messages"][-1]["content"].startswith("Summary so far")
    fold_reply = f"Echo: {fold['messages'][-1]['content']}"
    assert used(owner) == prompt_tokens(fold, fold["messages"]) + math.ceil(len(fold_reply) / 4)
