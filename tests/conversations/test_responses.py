"""`/v1/responses` with OpenAI's SDK as the client (over HTTP into the Django app, on both history stores) and the
fake upstream: chains by previous_response_id, streaming, store: false, isolation, budgets, idempotent retries."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pydantic
import pytest
from django.core.wsgi import get_wsgi_application

from accounts.api_keys import api_key_create
from accounts.budgets import Budget, BudgetOwner, budget_set
from conversations.history.redis_keys import every_session_key, record_order_key, records_key, session_keys
from conversations.responses.store import session_of
from conversations.stores import history_store
from core.redis_store import redis_client

MODEL = "openai/gpt-oss-20b"


def sdk_client(key: str) -> openai.OpenAI:
    transport = httpx.WSGITransport(app=get_wsgi_application())
    http_client = httpx.Client(transport=transport, base_url="http://testserver")
    return openai.OpenAI(base_url="http://testserver/v1", api_key=key, max_retries=0, http_client=http_client)


@pytest.fixture
def client(alice, history_backend) -> openai.OpenAI:
    return sdk_client(api_key_create(admin_id=alice.id, name="sdk")[1])


@pytest.fixture
def bob_sdk(bob) -> openai.OpenAI:
    return sdk_client(api_key_create(admin_id=bob.id, name="sdk")[1])


def upstream_messages(fake_groq) -> list[list[tuple[str, str]]]:
    return [[(m["role"], m["content"]) for m in r["json"]["messages"]] for r in fake_groq.chat_requests()]


def test_a_string_input(client, fake_groq):
    response = client.responses.create(model=MODEL, input="Hello!", metadata={"ticket": "7"})

    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == "Echo: Hello!"
    assert response.output[0].type == "message" and response.output[0].content[0].type == "output_text"
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens > 0
    assert response.metadata == {"ticket": "7"}
    assert response.previous_response_id is None
    assert upstream_messages(fake_groq)[-1][-1] == ("user", "Hello!")


def test_items_with_roles_and_parts(client, fake_groq):
    response = client.responses.create(
        model=MODEL,
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Hello."}]},
            {"type": "message", "role": "user", "content": "Why?"},
        ],
    )

    assert response.output_text == "Echo: Why?"
    assert response.instructions == "Be brief."
    sent = upstream_messages(fake_groq)[-1]
    assert sent[-5:] == [
        ("system", "Be brief."),
        ("system", "Answer in English."),
        ("user", "Hi"),
        ("assistant", "Hello."),
        ("user", "Why?"),
    ]


def test_a_three_turn_chain_sends_the_whole_history(client, fake_groq):
    first = client.responses.create(model=MODEL, input="one", instructions="Only for the first.")
    second = client.responses.create(model=MODEL, input="two", previous_response_id=first.id)
    third = client.responses.create(model=MODEL, input="three", previous_response_id=second.id)

    assert third.previous_response_id == second.id
    assert third.output_text == "Echo: three"
    sent = [m for m in upstream_messages(fake_groq)[-1] if m[1] != "Only for the first."]
    assert sent[-5:] == [
        ("user", "one"),
        ("assistant", "Echo: one"),
        ("user", "two"),
        ("assistant", "Echo: two"),
        ("user", "three"),
    ]
    assert ("system", "Only for the first.") not in upstream_messages(fake_groq)[-1]
    assert client.responses.retrieve(second.id).output_text == "Echo: two"


def test_a_chain_is_one_stored_session(client, alice, history_backend):
    first = client.responses.create(model=MODEL, input="one")
    client.responses.create(model=MODEL, input="two", previous_response_id=first.id)

    conversation = history_store().get(alice.id, session_of(first.id))
    assert [m["content"] for m in conversation.messages] == ["one", "Echo: one", "two", "Echo: two"]


@pytest.mark.parametrize("stream", [False, True])
def test_continuing_from_an_earlier_response_branches(client, alice, fake_groq, stream):
    first = client.responses.create(model=MODEL, input="one")
    second = client.responses.create(model=MODEL, input="two", previous_response_id=first.id)

    if stream:
        with client.responses.stream(model=MODEL, input="branch", previous_response_id=first.id) as events:
            branch = events.get_final_response()
    else:
        branch = client.responses.create(model=MODEL, input="branch", previous_response_id=first.id)
    after_branch = client.responses.create(model=MODEL, input="more", previous_response_id=branch.id)
    after_second = client.responses.create(model=MODEL, input="three", previous_response_id=second.id)

    assert branch.output_text == "Echo: branch"
    sent = upstream_messages(fake_groq)
    assert sent[-3][-3:] == [("user", "one"), ("assistant", "Echo: one"), ("user", "branch")]
    assert sent[-2][-5:] == [
        ("user", "one"),
        ("assistant", "Echo: one"),
        ("user", "branch"),
        ("assistant", "Echo: branch"),
        ("user", "more"),
    ]
    assert ("user", "branch") not in sent[-1]
    assert after_second.output_text == "Echo: three" and after_branch.output_text == "Echo: more"
    branch_session = history_store().get(alice.id, session_of(branch.id))
    assert [m["content"] for m in branch_session.messages] == [
        "one",
        "Echo: one",
        "branch",
        "Echo: branch",
        "more",
        "Echo: more",
    ]


def test_a_stream_consumed_to_its_final_response(client, fake_groq):
    first = client.responses.create(model=MODEL, input="one")
    with client.responses.stream(model=MODEL, input="tell me a story", previous_response_id=first.id) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()

    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    assert final.output_text == "Echo: tell me a story"
    assert client.responses.retrieve(final.id).output_text == "Echo: tell me a story"
    assert upstream_messages(fake_groq)[-1][-3:] == [
        ("user", "one"),
        ("assistant", "Echo: one"),
        ("user", "tell me a story"),
    ]


def test_store_false_is_neither_retrievable_nor_chainable(client, fake_groq):
    first = client.responses.create(model=MODEL, input="one")
    unstored = client.responses.create(model=MODEL, input="two", previous_response_id=first.id, store=False)

    assert unstored.output_text == "Echo: two"
    assert upstream_messages(fake_groq)[-1][-3:] == [("user", "one"), ("assistant", "Echo: one"), ("user", "two")]
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="three", previous_response_id=unstored.id)
    # the chain did not change: its latest response is still the first
    assert client.responses.create(model=MODEL, input="two again", previous_response_id=first.id).output_text


def test_another_admins_response_is_not_found(client, bob_sdk):
    mine = client.responses.create(model=MODEL, input="secret")

    with pytest.raises(openai.NotFoundError) as caught:
        bob_sdk.responses.retrieve(mine.id)
    assert "another admin" in caught.value.body["message"]
    with pytest.raises(openai.NotFoundError) as caught:
        bob_sdk.responses.create(model=MODEL, input="and?", previous_response_id=mine.id)
    assert caught.value.body["param"] == "previous_response_id"


def test_delete_forgets_a_response(client):
    response = client.responses.create(model=MODEL, input="hi")

    client.responses.delete(response.id)

    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(response.id)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools"),
        ({"background": True}, "background"),
        ({"input": [{"type": "image_generation_call", "id": "x"}]}, "input"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "input"),
        ({"previous_response_id": "not-an-id"}, "previous_response_id"),
        ({"max_output_tokens": 10**9}, "max_output_tokens"),
        ({"input": [{"type": "function_call_output", "call_id": "call_x", "output": "42"}]}, "input"),
        ({"frobnicate": 1}, "frobnicate"),
        ({"input": [{"role": "assistant", "content": "no question"}]}, "input"),
        ({"conversation": "not-a-conversation"}, "conversation"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(client, fake_groq, extra, param):
    body = {"model": MODEL, "input": "hi", **extra}

    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/responses", body=body, cast_to=httpx.Response)

    assert caught.value.body["param"].startswith(param)
    assert fake_groq.chat_requests() == []


def test_a_budget_refusal(client, alice, settings, fake_groq):
    budget_set(BudgetOwner("admin", alice.id), Budget(5, "day"))

    with pytest.raises(openai.RateLimitError) as caught:
        client.responses.create(model=MODEL, input="hi")

    assert caught.value.body["code"] == "budget_exceeded"
    assert fake_groq.chat_requests() == []


def test_an_idempotent_retry_gets_the_first_response(client, fake_groq):
    headers = {"Idempotency-Key": "retry-1"}
    first = client.responses.create(model=MODEL, input="once", extra_headers=headers)
    again = client.responses.create(model=MODEL, input="once", extra_headers=headers)

    assert again.id == first.id
    assert len(fake_groq.chat_requests()) == 1


def test_a_function_call_round_trip(client, fake_groq):
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}, "strict": False}]
    asked = client.responses.create(model=MODEL, input="weather?", tools=tools)
    call = next(item for item in asked.output if item.type == "function_call")

    answered = client.responses.create(
        model=MODEL,
        previous_response_id=asked.id,
        tools=tools,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )

    assert call.name == "lookup" and call.call_id
    assert answered.output_text
    sent = fake_groq.chat_requests()[-1]["json"]["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == call.call_id
    assert sent[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny"}


class Echo(pydantic.BaseModel):
    echo: str


def test_parse_into_a_pydantic_model(client, fake_groq):
    parsed = client.responses.parse(model=MODEL, input="hi", text_format=Echo)

    assert parsed.output_parsed == Echo(echo="hi")
    assert parsed.text.format.type == "json_schema"
    sent = fake_groq.chat_requests()[-1]["json"]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Echo"


def test_a_streamed_function_call(client):
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}, "strict": False}]
    with client.responses.stream(model=MODEL, input="weather?", tools=tools) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()

    call = next(item for item in final.output if item.type == "function_call")
    assert call.name == "lookup" and '"weather?"' in call.arguments
    assert "response.function_call_arguments.done" in kinds
    assert kinds[-1] == "response.completed"


def test_a_function_call_streams_its_arguments_as_the_upstream_sends_them(client):
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}, "strict": False}]
    with client.responses.stream(model=MODEL, input="weather?", tools=tools) as stream:
        events = list(stream)
        final = stream.get_final_response()

    call = next(item for item in final.output if item.type == "function_call")
    kinds = [event.type for event in events]
    deltas = [event for event in events if event.type == "response.function_call_arguments.delta"]
    added = next(event for event in events if event.type == "response.output_item.added")
    # The fake upstream sends the call's id and name, then its arguments in two pieces: two deltas, as they came.
    assert [event.delta for event in deltas] == [
        call.arguments[: len(call.arguments) // 2],
        call.arguments[len(call.arguments) // 2 :],
    ]
    assert added.item.type == "function_call" and added.item.status == "in_progress"
    assert {event.output_index for event in deltas} == {added.output_index}
    done = next(event for event in events if event.type == "response.function_call_arguments.done")
    assert done.arguments == call.arguments and kinds.index(done.type) > kinds.index(deltas[-1].type)


def test_reasoning_is_an_output_item(client, fake_groq):
    fake_groq.configure(reasoning=True)

    response = client.responses.create(model=MODEL, input="think")

    reasoning = next(item for item in response.output if item.type == "reasoning")
    assert reasoning.content[0].text == "Thinking about: think"
    assert response.output_text == "Echo: think"


def test_a_chain_whose_session_expired_is_not_found(client, alice):
    first = client.responses.create(model=MODEL, input="one")
    history_store().delete(alice.id, session_of(first.id))

    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model=MODEL, input="two", previous_response_id=first.id)

    assert "expired" in caught.value.body["message"]


def test_two_responses_continuing_one_chain_at_once_never_lose_a_turn(client, alice, fake_groq):
    first = client.responses.create(model=MODEL, input="one")
    fake_groq.configure(latency=0.3)

    def follow(text: str):
        return client.responses.create(model=MODEL, input=text, previous_response_id=first.id)

    with ThreadPoolExecutor(2) as pool:
        answered = list(pool.map(follow, ["a", "b"]))

    # One went on in the chain's session, the other (finding the chain gone on) in a branch of its own.
    chain = [m["content"] for m in history_store().get(alice.id, session_of(first.id)).messages]
    branched = next(r for r in answered if f"Echo: {r.output_text[-1]}" not in chain)
    branch = [m["content"] for m in history_store().get(alice.id, session_of(branched.id)).messages]
    assert len(chain) == len(branch) == 4
    assert sorted([chain[-1], branch[-1]]) == ["Echo: a", "Echo: b"]
    assert branch[:2] == chain[:2] == ["one", "Echo: one"]


def test_a_long_chain_is_trimmed_like_a_session(client, settings, fake_groq):
    settings.HISTORY_MAX_MESSAGES = 4
    previous = None
    for text in ["one", "two", "three", "four"]:
        previous = client.responses.create(model=MODEL, input=text, previous_response_id=previous and previous.id)

    sent = [m for m in upstream_messages(fake_groq)[-1] if m[0] != "system"]
    assert sent == [
        ("user", "two"),
        ("assistant", "Echo: two"),
        ("user", "three"),
        ("assistant", "Echo: three"),
        ("user", "four"),
    ]


def test_input_items_pages_a_responses_own_input(client):
    first = client.responses.create(model=MODEL, input="one")
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": [{"type": "input_text", "text": "c"}]},
        ],
    )

    newest = client.responses.input_items.list(second.id, limit=2)
    rest = client.responses.input_items.list(second.id, limit=2, after=newest.data[-1].id)
    oldest_first = client.responses.input_items.list(second.id, order="asc")

    assert [item.content[0].text for item in newest.data] == ["c", "b"] and newest.has_more
    assert [item.content[0].text for item in rest.data] == ["a"] and not rest.has_more
    assert [item.role for item in oldest_first.data] == ["user", "assistant", "user"]
    assert [item.content[0].text for item in client.responses.input_items.list(first.id).data] == ["one"]


def test_a_streamed_retry_replays_the_stored_response(client, fake_groq):
    headers = {"Idempotency-Key": "stream-1"}
    with client.responses.stream(model=MODEL, input="once", extra_headers=headers) as stream:
        first = stream.get_final_response()
    with client.responses.stream(model=MODEL, input="once", extra_headers=headers) as stream:
        again = stream.get_final_response()

    assert (again.id, again.output_text) == (first.id, "Echo: once")
    assert len(fake_groq.chat_requests()) == 1


def test_a_stream_refused_by_the_budget_is_an_error_status(client, alice, fake_groq):
    budget_set(BudgetOwner("admin", alice.id), Budget(5, "day"))

    with pytest.raises(openai.RateLimitError), client.responses.stream(model=MODEL, input="hi") as stream:
        stream.get_final_response()

    assert fake_groq.chat_requests() == []


def test_a_conversation_collects_its_responses(client, alice, fake_groq):
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "My name is Ada."}], metadata={"topic": "intro"}
    )

    first = client.responses.create(model=MODEL, input="one", conversation=conversation.id)
    second = client.responses.create(model=MODEL, input="two", conversation={"id": conversation.id})

    assert conversation.id.startswith("conv_") and conversation.metadata == {"topic": "intro"}
    assert first.conversation.id == second.conversation.id == conversation.id
    sent = upstream_messages(fake_groq)[-1]
    assert [m for m in sent if m[0] != "system"] == [
        ("user", "My name is Ada."),
        ("user", "one"),
        ("assistant", "Echo: one"),
        ("user", "two"),
    ]
    items = client.conversations.items.list(conversation.id, order="asc")
    texts = [item.content[0].text for item in items.data]
    assert texts == ["My name is Ada.", "one", "Echo: one", "two", "Echo: two"]
    assert history_store().get(alice.id, conversation.id) is not None
    # A response made in a conversation is stored with it, and goes with it.
    assert session_of(second.id) == conversation.id
    assert client.responses.retrieve(second.id).output_text == "Echo: two"
    client.conversations.delete(conversation.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)


def test_conversation_items_metadata_and_delete(client, bob_sdk):
    conversation = client.conversations.create()
    added = client.conversations.items.create(
        conversation.id, items=[{"type": "message", "role": "user", "content": "hello"}]
    )
    page = client.conversations.items.list(conversation.id, limit=1)

    assert [item.content[0].text for item in added.data] == ["hello"]
    assert page.data[0].id == added.data[0].id
    updated = client.conversations.update(conversation.id, metadata={"k": "v"})
    assert updated.metadata == {"k": "v"} == client.conversations.retrieve(conversation.id).metadata
    with pytest.raises(openai.NotFoundError):
        bob_sdk.conversations.retrieve(conversation.id)
    with pytest.raises(openai.NotFoundError):
        bob_sdk.responses.create(model=MODEL, input="hi", conversation=conversation.id)
    with pytest.raises(openai.NotFoundError):
        bob_sdk.conversations.items.create(conversation.id, items=[{"type": "message", "role": "user", "content": "x"}])
    assert [item.content[0].text for item in client.conversations.items.list(conversation.id).data] == ["hello"]

    assert client.conversations.delete(conversation.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conversation.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="hi", conversation=conversation.id)


def test_conversation_and_previous_response_id_together_is_a_400(client, fake_groq):
    conversation = client.conversations.create()

    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="hi", conversation=conversation.id, previous_response_id="resp_abc")

    assert caught.value.body["param"] == "conversation"


def test_conversation_items_retrieve_and_delete(client, fake_groq):
    conversation = client.conversations.create(
        items=[
            {"role": "user", "content": "keep"},
            {"role": "user", "content": "drop"},
            {"role": "user", "content": "tail"},
        ]
    )
    ids = [item.id for item in client.conversations.items.list(conversation.id, order="asc").data]

    item = client.conversations.items.retrieve(ids[1], conversation_id=conversation.id)
    after = client.conversations.items.delete(ids[1], conversation_id=conversation.id)

    assert item.content[0].text == "drop"
    assert after.id == conversation.id
    left = client.conversations.items.list(conversation.id, order="asc").data
    assert [(i.id, i.content[0].text) for i in left] == [(ids[0], "keep"), (ids[2], "tail")]
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(ids[1], conversation_id=conversation.id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.delete(ids[1], conversation_id=conversation.id)
    client.responses.create(model=MODEL, input="next", conversation=conversation.id)
    sent = [m for m in upstream_messages(fake_groq)[-1] if m[0] != "system"]
    assert sent == [("user", "keep"), ("user", "tail"), ("user", "next")]


def test_a_stream_failing_midway_ends_with_response_failed_and_stores_nothing(client, alice, fake_groq):
    fake_groq.add_faults({"kind": "stream_error", "after_chunks": 2})

    with client.responses.stream(model=MODEL, input="tell me a long story") as stream:
        events = list(stream)

    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "failed" and events[-1].response.error.message
    assert history_store().get(alice.id, events[0].response.id) is None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(events[0].response.id)


def test_a_stream_failing_before_any_output_sends_an_error_event_then_response_failed(client, alice, fake_groq):
    fake_groq.configure(reasoning=True)  # the model reasons (its reasoning goes out whole at the end), then fails
    fake_groq.add_faults({"kind": "stream_error", "after_chunks": 0})

    with client.responses.stream(model=MODEL, input="hello") as stream:
        events = list(stream)

    kinds = [event.type for event in events]
    assert kinds == ["response.created", "response.in_progress", "error", "response.failed"]
    assert events[2].code == "server_error" and events[2].message == events[3].response.error.message
    assert [event.sequence_number for event in events] == [0, 1, 2, 3]
    assert history_store().get(alice.id, events[0].response.id) is None


def test_a_function_call_answered_in_a_conversation(client, fake_groq):
    conversation = client.conversations.create()
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    asked = client.responses.create(model=MODEL, input="weather?", tools=tools, conversation=conversation.id)
    call = next(item for item in asked.output if item.type == "function_call")

    answered = client.responses.create(
        model=MODEL,
        tools=tools,
        conversation=conversation.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )

    assert answered.output_text == "Tool said: sunny"
    kinds = [item.type for item in client.conversations.items.list(conversation.id, order="asc").data]
    assert kinds == ["message", "function_call", "function_call_output", "message"]


def test_items_added_under_an_idempotency_key_are_added_once(client):
    conversation = client.conversations.create()
    item = [{"type": "message", "role": "user", "content": "hello"}]
    headers = {"Idempotency-Key": "items-1"}

    first = client.conversations.items.with_raw_response.create(conversation.id, items=item, extra_headers=headers)
    again = client.conversations.items.with_raw_response.create(conversation.id, items=item, extra_headers=headers)

    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.parse().data[0].id == first.parse().data[0].id
    assert [i.content[0].text for i in client.conversations.items.list(conversation.id).data] == ["hello"]


def test_truncation_disabled_refuses_a_history_that_would_be_trimmed(client, fake_groq, settings):
    settings.HISTORY_MAX_MESSAGES = 2
    first = client.responses.create(model=MODEL, input="one")
    second = client.responses.create(model=MODEL, input="two", previous_response_id=first.id, truncation="disabled")

    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="three", previous_response_id=second.id, truncation="disabled")
    trimmed = client.responses.create(model=MODEL, input="three", previous_response_id=second.id)

    assert caught.value.body["code"] == "context_length_exceeded"
    assert second.truncation == "disabled" and trimmed.truncation == "auto"
    assert [m for m in upstream_messages(fake_groq)[-1] if m[0] != "system"] == [
        ("user", "two"),
        ("assistant", "Echo: two"),
        ("user", "three"),
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="hi", truncation="sometimes")
    assert caught.value.body["param"] == "truncation"


def test_include_takes_only_what_has_a_meaning_here(client, fake_groq):
    response = client.responses.create(model=MODEL, input="hi", include=["reasoning.encrypted_content"])

    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="hi", include=["message.output_text.logprobs"])

    assert response.status == "completed"
    assert caught.value.body["param"] == "include" and "logprobs" in caught.value.body["message"]


def test_safety_identifier_goes_upstream_as_the_user(client, fake_groq):
    response = client.responses.create(model=MODEL, input="hi", safety_identifier="user-42")

    assert fake_groq.chat_requests()[-1]["json"]["user"] == "user-42"
    assert response.safety_identifier == "user-42"


def test_a_chain_keeps_its_stored_responses_as_long_as_it_goes_on(client, alice, history_backend):
    """The records slide with their session's TTL: a later turn renews every stored response of its chain."""
    if history_backend != "redis":
        pytest.skip("the TTL read from Redis")
    first = client.responses.create(model=MODEL, input="one")
    key = records_key(alice.id, session_of(first.id))
    redis_client().expire(key, 5)  # as if MEMORY_TTL_SECONDS had nearly passed

    client.responses.create(model=MODEL, input="two", previous_response_id=first.id)

    assert redis_client().ttl(key) > 5
    assert client.responses.retrieve(first.id).output_text == "Echo: one"
    history_store().delete(alice.id, session_of(first.id))
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)  # gone with its chain


def not_found(call, *args, **kwargs) -> dict:
    with pytest.raises(openai.NotFoundError) as caught:
        call(*args, **kwargs)
    return caught.value.body


def unknown_of(response_id: str) -> str:
    """An id of the same session that no response has."""
    return response_id[:-1] + ("0" if response_id[-1] != "0" else "1")


def test_a_chain_keeps_its_newest_responses_up_to_the_cap(client, history_backend, settings):
    settings.MAX_STORED_RESPONSES = 3
    chain = [client.responses.create(model=MODEL, input="r0")]
    for n in range(1, 5):
        chain.append(client.responses.create(model=MODEL, input=f"r{n}", previous_response_id=chain[-1].id))

    def continued(response_id: str) -> object:
        return client.responses.create(model=MODEL, input="more", previous_response_id=response_id)

    assert len({session_of(r.id) for r in chain}) == 1  # one session, five responses
    assert [client.responses.retrieve(r.id).output_text for r in chain[2:]] == ["Echo: r2", "Echo: r3", "Echo: r4"]
    for dropped in chain[:2]:
        unknown = unknown_of(dropped.id)
        for ask in (client.responses.retrieve, client.responses.input_items.list, continued):
            body, unknown_body = not_found(ask, dropped.id), not_found(ask, unknown)
            # A dropped response answers as an unknown one does.
            assert body == {**unknown_body, "message": unknown_body["message"].replace(unknown, dropped.id)}
        assert not_found(continued, dropped.id)["param"] == "previous_response_id"

    # The chain goes on from its latest response, and branches from a kept earlier one.
    latest = continued(chain[-1].id)
    branch = client.responses.create(model=MODEL, input="b", previous_response_id=chain[3].id)
    assert session_of(latest.id) == session_of(chain[0].id) != session_of(branch.id)
    assert branch.output_text == "Echo: b"
    not_found(client.responses.retrieve, chain[2].id)  # the chain's session stored one more: its oldest went
    kept = (chain[3], chain[4], latest)
    assert [client.responses.retrieve(r.id).output_text for r in kept] == ["Echo: r3", "Echo: r4", "Echo: more"]


def test_a_deleted_response_no_longer_counts_in_the_cap(client, history_backend, settings):
    settings.MAX_STORED_RESPONSES = 2
    conversation = client.conversations.create()
    first = client.responses.create(model=MODEL, input="a", conversation=conversation.id)
    second = client.responses.create(model=MODEL, input="b", conversation=conversation.id)
    client.responses.delete(second.id)

    third = client.responses.create(model=MODEL, input="c", conversation=conversation.id)

    assert [client.responses.retrieve(r.id).output_text for r in (first, third)] == ["Echo: a", "Echo: c"]


def test_a_conversation_keeps_its_newest_responses_and_itself(client, alice, history_backend, settings):
    settings.MAX_STORED_RESPONSES = 2
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "hello"}], metadata={"topic": "cap"}
    )
    responses = [client.responses.create(model=MODEL, input=f"r{n}", conversation=conversation.id) for n in range(4)]

    assert client.conversations.retrieve(conversation.id).metadata == {"topic": "cap"}  # never counted, never dropped
    assert [client.responses.retrieve(r.id).output_text for r in responses[2:]] == ["Echo: r2", "Echo: r3"]
    for dropped in responses[:2]:
        not_found(client.responses.retrieve, dropped.id)
    assert len(client.conversations.items.list(conversation.id, limit=100).data) == 9  # the items stay
    if history_backend != "redis":
        return
    redis = redis_client()
    records, order = records_key(alice.id, conversation.id), record_order_key(alice.id, conversation.id)
    assert sorted(k.decode() for k in redis.hkeys(records)) == sorted(["conversation", *(r.id for r in responses[2:])])
    assert [name.decode() for name in redis.lrange(order, 0, -1)] == [r.id for r in responses[2:]]
    session_ttl = redis.ttl(session_keys(alice.id, conversation.id)[0])
    assert session_ttl > 0 and abs(redis.ttl(order) - session_ttl) <= 1 and abs(redis.ttl(records) - session_ttl) <= 1

    client.conversations.delete(conversation.id)

    assert not [key for key in every_session_key(alice.id, conversation.id) if redis.exists(key)]
    assert not list(redis.scan_iter(match=f"*{conversation.id}*"))


def test_a_deleted_chain_leaves_no_key(client, alice, history_backend, settings):
    if history_backend != "redis":
        pytest.skip("the keys read from Redis")
    settings.MAX_STORED_RESPONSES = 1
    first = client.responses.create(model=MODEL, input="one")
    client.responses.create(model=MODEL, input="two", previous_response_id=first.id)
    session_id = session_of(first.id)
    assert redis_client().llen(record_order_key(alice.id, session_id)) == 1

    history_store().delete(alice.id, session_id)

    assert not list(redis_client().scan_iter(match=f"*{session_id}*"))
