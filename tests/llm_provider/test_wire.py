from __future__ import annotations

from llm_provider.wire import max_tokens_param, sse_data


def test_max_tokens_param_follows_the_host_unless_forced() -> None:
    assert max_tokens_param("auto", "https://api.groq.com/openai/v1") == "max_completion_tokens"
    assert max_tokens_param("auto", "http://localhost:11434/v1") == "max_tokens"
    assert max_tokens_param("max_completion_tokens", "http://localhost:11434/v1") == "max_completion_tokens"


def test_sse_parsing_skips_comments_and_joins_lines() -> None:
    body = ': keep-alive\r\n\r\ndata: {"a":\ndata: 1}\n\nevent: ping\n\ndata: "\u00e9"\n\ndata: [DONE]'.encode()

    for size in (1, 2, 7, len(body)):  # however the body is cut into chunks, even within a character
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        assert list(sse_data(chunks)) == ['{"a":\n1}', '"\u00e9"', "[DONE]"]
