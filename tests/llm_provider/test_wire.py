from __future__ import annotations

from llm_provider.wire import max_tokens_param, sse_data


def test_max_tokens_param_follows_the_host_unless_forced() -> None:
    assert max_tokens_param("auto", "https://api.groq.com/openai/v1") == "max_completion_tokens"
    assert max_tokens_param("auto", "http://localhost:11434/v1") == "max_tokens"
    assert max_tokens_param("max_completion_tokens", "http://localhost:11434/v1") == "max_completion_tokens"


def test_sse_parsing_skips_comments_and_joins_lines() -> None:
    lines = [": keep-alive", "", 'data: {"a":', "data: 1}", "", "event: ping", "", "data: [DONE]", ""]

    assert list(sse_data(lines)) == ['{"a":\n1}', "[DONE]"]
