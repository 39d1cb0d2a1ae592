"""Summarised memory (HISTORY_SUMMARY): the turns that no longer fit are folded into a running summary, on both
history stores."""

from __future__ import annotations

from decimal import Decimal
from http import HTTPStatus

import pytest

from conversations.summaries import SUMMARY_PREFIX
from llm_provider.pricing import cost_micros, usd
from tests.support import chat

pytestmark = pytest.mark.usefixtures("history_backend")


@pytest.fixture(autouse=True)
def summaries_on(settings):
    settings.HISTORY_SUMMARY = True
    settings.HISTORY_MAX_MESSAGES = 2
    settings.SYSTEM_PROMPT = "Be brief."


def upstream_of(fake_groq, index: int = -1) -> list[dict]:
    return fake_groq.chat_requests()[index]["json"]["messages"]


def test_turns_that_no_longer_fit_are_folded_into_a_summary(alice_client, fake_groq):
    for text in ("one", "two"):
        chat(alice_client, text)
    assert len(fake_groq.chat_requests()) == 2  # everything still fits: no summary call

    chat(alice_client, "three")

    fold_call, reply_call = fake_groq.chat_requests()[-2:]
    fold_prompt = fold_call["json"]["messages"][-1]["content"]
    assert "user: one" in fold_prompt and "assistant: Echo: one" in fold_prompt
    assert "two" not in fold_prompt
    sent = reply_call["json"]["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert sent[1]["role"] == "system" and sent[1]["content"].startswith(SUMMARY_PREFIX + "Echo: Summary so far")
    assert [m["content"] for m in sent[2:]] == ["two", "Echo: two", "three"]

    detail = alice_client.get("/chat/sessions/s1").json()
    assert detail["summary"].startswith("Echo: Summary so far")
    assert [m["content"] for m in detail["messages"]] == ["two", "Echo: two", "three", "Echo: three"]


def test_the_summary_goes_upstream_with_later_turns_and_is_folded_again(alice_client, fake_groq):
    for text in ("one", "two", "three"):
        chat(alice_client, text)
    first_summary = alice_client.get("/chat/sessions/s1").json()["summary"]

    chat(alice_client, "four")

    fold_prompt = fake_groq.chat_requests()[-2]["json"]["messages"][-1]["content"]
    assert first_summary in fold_prompt and "user: two" in fold_prompt
    assert upstream_of(fake_groq)[1]["content"].startswith(SUMMARY_PREFIX)


def test_a_failed_summary_call_never_fails_the_turn(alice_client, fake_groq, settings):
    settings.LLM_MAX_RETRIES = 0
    for text in ("one", "two"):
        chat(alice_client, text)
    fake_groq.add_faults({"kind": "status", "status": 500})  # the summary call

    response = chat(alice_client, "three")

    assert response.status_code == HTTPStatus.OK
    assert [m["content"] for m in upstream_of(fake_groq)[1:]] == ["two", "Echo: two", "three"]  # trimmed instead
    detail = alice_client.get("/chat/sessions/s1").json()
    assert detail["summary"] is None
    assert len(detail["messages"]) == 6  # nothing folded away: the next turn tries again
    chat(alice_client, "four")
    assert alice_client.get("/chat/sessions/s1").json()["summary"]


def test_a_turn_makes_at_most_one_summary_call(alice_client, fake_groq):
    for text in ("one", "two", "three", "four"):
        chat(alice_client, text)
    calls_before = len(fake_groq.chat_requests())

    chat(alice_client, "five")

    assert len(fake_groq.chat_requests()) - calls_before == 2  # one summary, one reply


def test_the_summary_calls_tokens_count_in_the_usage(alice_client, fake_groq):
    replies = [chat(alice_client, text).json()["usage"]["total_tokens"] for text in ("one", "two", "three")]

    stats = alice_client.get("/chat/memory/stats").json()["usage"]
    assert stats["requests"] == 4  # three replies and one summary
    # Every token the upstream counted, the summary call's included, and the turn that folded carries them.
    assert stats["total_tokens"] == sum(replies) == fake_groq._used_tokens
    session = alice_client.get("/chat/sessions/s1").json()["usage"]
    assert session["requests"] == 4
    assert session["total_tokens"] == stats["total_tokens"]


def test_the_summary_call_uses_its_own_model(alice_client, fake_groq, settings):
    settings.HISTORY_SUMMARY_MODEL = "openai/gpt-oss-120b"
    for text in ("one", "two", "three"):
        chat(alice_client, text)

    assert fake_groq.chat_requests()[-2]["json"]["model"] == "openai/gpt-oss-120b"
    assert fake_groq.chat_requests()[-1]["json"]["model"] == "openai/gpt-oss-20b"


def test_an_export_carries_the_summary_and_an_import_restores_it(alice_client, fake_groq):
    for text in ("one", "two", "three"):
        chat(alice_client, text)
    document = alice_client.get("/chat/sessions/s1/export").json()
    assert document["summary"].startswith("Echo: Summary so far")

    document["session_id"] = "copy"
    assert alice_client.post("/chat/sessions/import", document, format="json").status_code == HTTPStatus.CREATED
    chat(alice_client, "four", "copy")

    fold_prompt = fake_groq.chat_requests()[-2]["json"]["messages"][-1]["content"]
    assert f"Summary so far:\n{document['summary']}" in fold_prompt


def test_off_by_default_nothing_is_summarised(alice_client, fake_groq, settings):
    settings.HISTORY_SUMMARY = False
    for text in ("one", "two", "three"):
        chat(alice_client, text)

    assert len(fake_groq.chat_requests()) == 3
    assert alice_client.get("/chat/sessions/s1").json()["summary"] is None


def test_the_summary_call_counts_in_the_usage_of_the_day_under_its_model_at_its_price(alice_client, settings):
    settings.HISTORY_SUMMARY_MODEL = "openai/gpt-oss-120b"
    for text in ("one", "two", "three"):
        chat(alice_client, text)

    rows = {row["model"]: row for row in alice_client.get("/admin/usage", {"group_by": "model"}).json()["rows"]}
    assert (rows["openai/gpt-oss-20b"]["requests"], rows["openai/gpt-oss-120b"]["requests"]) == (3, 1)
    fold = rows["openai/gpt-oss-120b"]
    assert fold["cost_usd"] == usd(cost_micros("openai/gpt-oss-120b", fold["input_tokens"], fold["output_tokens"]))
    session = alice_client.get("/chat/sessions/s1").json()["usage"]
    assert session["total_tokens"] == sum(row["total_tokens"] for row in rows.values())
    assert Decimal(session["cost_usd"]) == sum(Decimal(row["cost_usd"]) for row in rows.values())
