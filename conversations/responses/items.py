"""Translation between the Responses API's items and the chat messages the turn pipeline and the upstream speak:
input items to messages, a completion to output items, and the `response` object."""

from __future__ import annotations

import secrets
from typing import Any

from rest_framework.exceptions import ValidationError

from llm_provider.types import Completion

ROLES = ("user", "system", "developer", "assistant")
TEXT_PARTS = ("input_text", "output_text", "text")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def _invalid(param: str, problem: str) -> ValidationError:
    return ValidationError({param: [problem]})


def _text_of(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if (
                not isinstance(part, dict)
                or part.get("type") not in TEXT_PARTS
                or not isinstance(part.get("text"), str)
            ):
                raise _invalid(f"{param}[{index}]", "Only text parts (input_text, output_text) are supported.")
            texts.append(part["text"])
        return "".join(texts)
    raise _invalid(param, "Must be a string or a list of input_text/output_text parts.")


def input_messages(value: Any) -> list[dict[str, Any]]:
    """`input` as chat messages: a string is one user message; function_call items become an assistant message's
    tool calls, function_call_output items tool messages."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise _invalid("input", "Must be a string or a non-empty list of items.")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        param = f"input[{index}]"
        if not isinstance(item, dict):
            raise _invalid(param, "Must be an object.")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ROLES:
                raise _invalid(f"{param}.role", f"Must be one of {', '.join(ROLES)}.")
            text = _text_of(item.get("content"), f"{param}.content")
            messages.append({"role": "system" if role == "developer" else role, "content": text})
        elif kind == "function_call":
            call = _function_call(item, param)
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise _invalid(f"{param}.call_id", "Required: the call_id of the function_call it answers.")
            output = _text_of(item.get("output"), f"{param}.output")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
        else:
            raise _invalid(
                f"{param}.type", f"Unsupported item type '{kind}': message, function_call, function_call_output."
            )
    return messages


def _function_call(item: dict[str, Any], param: str) -> dict[str, Any]:
    for name in ("call_id", "name", "arguments"):
        if not isinstance(item.get(name), str):
            raise _invalid(f"{param}.{name}", "Required, a string.")
    return {
        "id": item["call_id"],
        "type": "function",
        "function": {"name": item["name"], "arguments": item["arguments"]},
    }


def unanswered_outputs(messages: list[dict[str, Any]], earlier_calls: set[str]) -> list[str]:
    """The call ids of tool results that answer no call made before them (in `messages`, or `earlier_calls`)."""
    known = set(earlier_calls)
    unanswered = []
    for message in messages:
        known.update(call["id"] for call in message.get("tool_calls") or [])
        if message["role"] == "tool" and message["tool_call_id"] not in known:
            unanswered.append(message["tool_call_id"])
    return unanswered


def call_ids(body: dict[str, Any]) -> set[str]:
    """The call ids of a response's function_call output items."""
    return {item["call_id"] for item in body.get("output", []) if item.get("type") == "function_call"}


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = (
        [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if status == "completed" else []
    )
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": content}


def function_call_item(call: dict[str, Any], arguments: str | None = None) -> dict[str, Any]:
    return {
        "id": "fc_" + call["id"].removeprefix("call_"),
        "type": "function_call",
        "call_id": call["id"],
        "name": call["function"]["name"],
        "arguments": call["function"]["arguments"] if arguments is None else arguments,
        "status": "completed",
    }


def reasoning_item(response_id: str, text: str) -> dict[str, Any]:
    return {
        "id": "rs_" + response_id.removeprefix("resp_"),
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
    }


def message_id_of(response_id: str) -> str:
    return "msg_" + response_id.removeprefix("resp_")


def output_items(response_id: str, completion: Completion) -> list[dict[str, Any]]:
    """The reply's items: its text (when it has text, or nothing else), its function calls, its reasoning."""
    items = []
    if completion.content or not completion.tool_calls:
        items.append(message_item(message_id_of(response_id), completion.content))
    items.extend(function_call_item(call) for call in completion.tool_calls)
    if completion.reasoning:
        items.append(reasoning_item(response_id, completion.reasoning))
    return items


def usage_of(completion: Completion) -> dict[str, Any]:
    usage = completion.usage
    cached = (completion.usage_details.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def response_body(
    response_id: str,
    *,
    created_at: int,
    model: str,
    echo: dict[str, Any],
    completion: Completion | None = None,
) -> dict[str, Any]:
    """The `response` object: in progress without a completion, else completed (incomplete when the reply was cut
    at max_output_tokens). `echo` is what the request set that the object repeats."""
    body: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": [],
        "usage": None,
        **echo,
    }
    if completion is not None:
        cut = completion.finish_reason == "length"
        body.update(
            status="incomplete" if cut else "completed",
            incomplete_details={"reason": "max_output_tokens"} if cut else None,
            model=completion.model or model,
            output=output_items(response_id, completion),
            usage=usage_of(completion),
        )
    return body


def input_items(value: Any) -> list[dict[str, Any]]:
    """`input` (already valid, see input_messages) as the items `input_items` lists, each with an id."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    items = []
    for item in value:
        kind = item.get("type", "message")
        if kind == "message":
            part = "output_text" if item["role"] == "assistant" else "input_text"
            text = _text_of(item["content"], "input")
            items.append(
                {
                    "id": item.get("id") or new_id("msg"),
                    "type": "message",
                    "role": item["role"],
                    "status": "completed",
                    "content": [{"type": part, "text": text}],
                }
            )
        elif kind == "function_call":
            call = {k: item[k] for k in ("call_id", "name", "arguments")}
            items.append({"id": item.get("id") or new_id("fc"), "type": kind, **call, "status": "completed"})
        else:
            output = _text_of(item["output"], "input")
            fields = {"call_id": item["call_id"], "output": output, "status": "completed"}
            items.append({"id": item.get("id") or new_id("fco"), "type": kind, **fields})
    return items


def page(items: list[dict[str, Any]], *, after: str | None, limit: int, order: str) -> dict[str, Any]:
    """One page of an OpenAI list: `order` asc is the items' own order; `after` an item id of the previous page."""
    ordered = items if order == "asc" else items[::-1]
    if after is not None:
        start = next((i + 1 for i, item in enumerate(ordered) if item["id"] == after), None)
        if start is None:
            raise _invalid("after", f"No item '{after}' in this list.")
        ordered = ordered[start:]
    data = ordered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(ordered) > limit,
    }
