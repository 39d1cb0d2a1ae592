"""A session as `chatbot-session/1`: what `GET /chat/sessions/{id}/export` gives and `POST /chat/sessions/import`
takes back. An import is held to what a chat could have stored: tool calls and tool results as `/v1` takes them,
a summary no longer than a fold, usage counters far below what a Redis counter holds. All of it is checked before
anything is stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from rest_framework import serializers

from conversations.history.base import MAX_STORED_MESSAGES
from conversations.openai.serializers import FunctionCallSerializer, ToolCallSerializer, message_chars
from conversations.serializers import session_id_validator
from conversations.session_ids import EXPORT_FORMAT

MAX_IMPORTED_MESSAGES = 10 * MAX_STORED_MESSAGES
# Each imported usage counter: far more than any session spends, and a thousand times less than where the stored
# counters stop (MAX_USAGE_COUNTER), so that the session's later turns always have room.
MAX_IMPORTED_USAGE = 10**12
# Characters a token is counted as, when a summary is held to HISTORY_SUMMARY_MAX_TOKENS (as trimming counts them).
CHARS_PER_TOKEN = 4


class NoExtraFieldsMixin:
    """Refuses a field the serializer does not name, where DRF would drop it: an imported message goes upstream
    as stored, and Groq refuses what OpenAI does not define."""

    fields: dict[str, serializers.Field]

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            extra = sorted(set(data) - set(self.fields))
            if extra:
                raise serializers.ValidationError({name: ["Not a field of this object."] for name in extra})
        return super().to_internal_value(data)  # type: ignore[misc]


class ImportedFunctionCallSerializer(NoExtraFieldsMixin, FunctionCallSerializer):
    pass


class ImportedToolCallSerializer(NoExtraFieldsMixin, ToolCallSerializer):
    function = ImportedFunctionCallSerializer()


class UsageCountsSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(min_value=0, max_value=MAX_IMPORTED_USAGE, default=0)
    completion_tokens = serializers.IntegerField(min_value=0, max_value=MAX_IMPORTED_USAGE, default=0)
    total_tokens = serializers.IntegerField(min_value=0, max_value=MAX_IMPORTED_USAGE, default=0)
    requests = serializers.IntegerField(min_value=0, max_value=MAX_IMPORTED_USAGE, default=0)


class ExportedMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["user", "assistant", "tool"])
    content = serializers.CharField(allow_blank=True, trim_whitespace=False)
    created_at = serializers.CharField(required=False, max_length=64, help_text="ISO 8601; now when omitted on import.")
    tool_calls = ImportedToolCallSerializer(
        many=True, required=False, help_text="An assistant's tool calls, as `/v1` takes them."
    )
    tool_call_id = serializers.CharField(
        required=False, max_length=200, help_text="A tool result: the id of a call of the assistant message before."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        content, role = attrs["content"], attrs["role"]
        if role == "user" and not content.strip():
            raise serializers.ValidationError({"content": ["A user message has text."]})
        # As /v1 takes them: a user's message or a tool's result within MAX_MESSAGE_CHARS; an assistant's reply,
        # which the model wrote, within MAX_REQUEST_CHARS, its tool calls' arguments included.
        limit, name = (
            (settings.MAX_REQUEST_CHARS, "MAX_REQUEST_CHARS")
            if role == "assistant"
            else (settings.MAX_MESSAGE_CHARS, "MAX_MESSAGE_CHARS")
        )
        chars = message_chars({"content": content, "tool_calls": attrs.get("tool_calls")})
        if chars > limit:
            raise serializers.ValidationError({"content": [f"{chars} characters, over {name} ({limit})."]})
        if (role == "tool") != ("tool_call_id" in attrs) or (attrs.get("tool_calls") and role != "assistant"):
            raise serializers.ValidationError("Only a tool message has a tool_call_id, only an assistant tool_calls.")
        if "created_at" in attrs and not is_iso_datetime(attrs["created_at"]):
            raise serializers.ValidationError({"created_at": ["Not an ISO 8601 date and time."]})
        return attrs


class SessionExportSerializer(serializers.Serializer):
    format = serializers.CharField(help_text=f"`{EXPORT_FORMAT}`.")
    session_id = serializers.CharField(
        required=False,
        max_length=100,
        validators=[session_id_validator],
        help_text="On import, the id to import under (omit it for a new one); 409 if it exists.",
    )
    created_at = serializers.CharField(required=False, max_length=64)
    messages = ExportedMessageSerializer(
        many=True, allow_empty=False, help_text=f"The stored turns, oldest first; at most {MAX_IMPORTED_MESSAGES}."
    )
    summary = serializers.CharField(
        allow_null=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="The fold of the turns before `messages` (null: none); on import at most HISTORY_SUMMARY_MAX_TOKENS "
        "(counted as 4 characters a token) and MAX_MESSAGE_CHARS.",
    )
    usage = UsageCountsSerializer(
        required=False, help_text=f"The session's tokens and requests; on import each at most {MAX_IMPORTED_USAGE}."
    )

    def validate_format(self, value: str) -> str:
        if value != EXPORT_FORMAT:
            raise serializers.ValidationError(f"Unknown format; this service reads `{EXPORT_FORMAT}`.")
        return value

    def validate_created_at(self, value: str) -> str:
        if not is_iso_datetime(value):
            raise serializers.ValidationError("Not an ISO 8601 date and time.")
        return value

    def validate_summary(self, value: str | None) -> str | None:
        """A summary goes upstream on every later turn: no longer than a fold may be, nor than a message."""
        if not value:
            return value
        longest = CHARS_PER_TOKEN * settings.HISTORY_SUMMARY_MAX_TOKENS
        if len(value) > longest:
            raise serializers.ValidationError(
                f"{len(value)} characters, over HISTORY_SUMMARY_MAX_TOKENS ({settings.HISTORY_SUMMARY_MAX_TOKENS} "
                f"tokens, {longest} characters)."
            )
        if len(value) > settings.MAX_MESSAGE_CHARS:
            raise serializers.ValidationError(f"Over MAX_MESSAGE_CHARS ({settings.MAX_MESSAGE_CHARS}) characters.")
        return value

    def validate_messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        problem = unanswered_tool_result(messages)
        if problem:
            raise serializers.ValidationError(problem)
        return messages

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        messages = data.get("messages") if isinstance(data, dict) else None
        # Counted before the messages are validated one by one; only the newest MAX_STORED_MESSAGES are kept.
        if isinstance(messages, list) and len(messages) > MAX_IMPORTED_MESSAGES:
            raise serializers.ValidationError({"messages": [f"Over {MAX_IMPORTED_MESSAGES} messages."]})
        return super().to_internal_value(data)


def unanswered_tool_result(messages: list[dict[str, Any]]) -> str | None:
    """What is wrong when a tool result answers no call: each one must name a call of the assistant message
    before it, with only other tool results between them, or Groq refuses the history."""
    open_calls: set[str] = set()
    for position, message in enumerate(messages):
        if message["role"] == "tool":
            if message["tool_call_id"] not in open_calls:
                return (
                    f"Message {position}: tool_call_id '{message['tool_call_id']}' answers no tool call of the "
                    "assistant message before it."
                )
        else:
            open_calls = {call["id"] for call in message.get("tool_calls") or []}
    return None


def is_iso_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
