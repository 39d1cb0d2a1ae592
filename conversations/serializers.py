from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.validators import MaxLengthValidator, MaxValueValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from conversations.session_ids import SESSION_ID_RULE, is_session_id
from conversations.usage_history import cost_usd

if TYPE_CHECKING:
    from conversations.services import ChatReply


def session_id_validator(value: str) -> None:
    if not is_session_id(value):
        raise serializers.ValidationError(SESSION_ID_RULE)


MAX_STOP_SEQUENCES = 4  # Groq's limit
MAX_STOP_CHARS = 200


def json_chars(value: Any) -> int:
    """The characters of `value` as the JSON that goes upstream."""
    return len(json.dumps(value, ensure_ascii=False))


def limit_message_chars(field: serializers.CharField) -> None:
    """MAX_MESSAGE_CHARS as read when the serializer is made, so that a changed setting applies at once."""
    field.max_length = settings.MAX_MESSAGE_CHARS
    field.validators.append(MaxLengthValidator(settings.MAX_MESSAGE_CHARS))


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_STOP_SEQUENCES},
        ],
        "nullable": True,
    }
)
class StopField(serializers.Field):
    """OpenAI's `stop`: one string or a list of up to four."""

    def to_internal_value(self, data: Any) -> str | list[str]:
        sequences = [data] if isinstance(data, str) else data
        if not isinstance(sequences, list) or not 1 <= len(sequences) <= MAX_STOP_SEQUENCES:
            raise serializers.ValidationError(f"A string or a list of 1 to {MAX_STOP_SEQUENCES} strings.")
        if not all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS for s in sequences):
            raise serializers.ValidationError(f"Each stop sequence has 1 to {MAX_STOP_CHARS} characters.")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class ResponseFormatSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["text", "json_object", "json_schema"])
    json_schema = serializers.DictField(
        required=False,
        help_text="With `json_schema`: `{name, schema, strict?, description?}`, at most MAX_SCHEMA_CHARS characters "
        "as JSON.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        schema = attrs.get("json_schema")
        if attrs["type"] == "json_schema" and not (schema and isinstance(schema.get("name"), str)):
            raise serializers.ValidationError({"json_schema": ["`json_schema` with a `name` is required."]})
        chars = json_chars(schema) if schema else 0
        if chars > settings.MAX_SCHEMA_CHARS:
            problem = f"{chars} characters as JSON, over MAX_SCHEMA_CHARS ({settings.MAX_SCHEMA_CHARS})."
            raise serializers.ValidationError({"json_schema": [problem]})
        return attrs


class GenerationOptionsSerializer(serializers.Serializer):
    """Generation options passed on to the model as given; their names are Groq's (and OpenAI's)."""

    passed_on: tuple[str, ...] = ("top_p", "stop", "seed", "response_format", "reasoning_effort")

    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)
    stop = StopField(required=False, allow_null=True, help_text="Up to 4 sequences where the model stops.")
    seed = serializers.IntegerField(required=False, allow_null=True, min_value=-(2**63), max_value=2**63 - 1)
    response_format = ResponseFormatSerializer(
        required=False, allow_null=True, help_text="`json_object` or `json_schema` for JSON replies."
    )
    reasoning_effort = serializers.ChoiceField(
        choices=["none", "default", "low", "medium", "high"],
        required=False,
        allow_null=True,
        help_text="For reasoning models: `low`, `medium`, `high` (gpt-oss); `none`, `default` (qwen).",
    )

    def generation_params(self) -> dict[str, Any]:
        return self.passed_on_params(self.validated_data)

    def passed_on_params(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return {name: attrs[name] for name in self.passed_on if attrs.get(name) is not None}


class ChatOptionsSerializer(GenerationOptionsSerializer):
    """What every endpoint that answers a message takes besides the message: `/chat/`, regenerate and edit."""

    stream = serializers.BooleanField(
        default=False, help_text="Answer with Server-Sent Events (as does `Accept: text/event-stream`)."
    )
    model = serializers.CharField(required=False, max_length=200, help_text="One of CHAT_ALLOWED_MODELS.")
    temperature = serializers.FloatField(required=False, min_value=0.0, max_value=2.0)
    max_tokens = serializers.IntegerField(required=False, min_value=1, help_text="At most MAX_TOKENS.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["max_tokens"].max_value = settings.MAX_TOKENS
        self.fields["max_tokens"].validators.append(MaxValueValidator(settings.MAX_TOKENS))

    def validate_model(self, value: str) -> str:
        if value not in settings.CHAT_ALLOWED_MODELS:
            raise serializers.ValidationError(f"Choose one of: {', '.join(settings.CHAT_ALLOWED_MODELS)}.")
        return value


class ChatRequestSerializer(ChatOptionsSerializer):
    session_id = serializers.CharField(
        required=False,
        min_length=1,
        max_length=100,
        validators=[session_id_validator],
        help_text="1-100 characters of [A-Za-z0-9_-]. Omit it to start a new session; the answer names it.",
    )
    message = serializers.CharField(help_text="The message, 1 to MAX_MESSAGE_CHARS characters.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit_message_chars(self.fields["message"])


class EditRequestSerializer(ChatOptionsSerializer):
    message = serializers.CharField(help_text="The new text of the last user message, 1 to MAX_MESSAGE_CHARS.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit_message_chars(self.fields["message"])


@extend_schema_field({"type": "string", "nullable": True, "example": "0.001234"})
class CostUsdField(serializers.Field):
    """The cost in US dollars of the usage it stands beside, from its counters (llm_provider/pricing.py)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "help_text",
            "The cost in US dollars (six decimals, a string), at MODEL_PRICES_FILE's prices; null when part of it "
            "went to a model without a price.",
        )
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, value: Any) -> str | None:
        return cost_usd(value)


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost_usd = CostUsdField()


class UsageTotalsSerializer(UsageSerializer):
    requests = serializers.IntegerField()


class ChatResponseSerializer(serializers.Serializer):
    response = serializers.CharField()
    session_id = serializers.CharField()
    llm_provider = serializers.CharField()
    model = serializers.CharField()
    user_id = serializers.CharField(source="username", help_text="The admin's username.")
    usage = UsageSerializer(help_text="This turn's tokens.")
    session_usage = UsageTotalsSerializer(help_text="The session's totals so far, this turn included.")


_USAGE = ("prompt_tokens", "completion_tokens", "total_tokens")


def chat_response_data(reply: ChatReply) -> dict[str, Any]:
    """ChatResponseSerializer(reply).data, built directly: a DRF serializer makes its fields afresh on every
    instance (docs/performance.md has what that costs a chat). The serializer stays the schema; a test holds the
    two to the same output."""
    return {
        "response": str(reply.response),
        "session_id": str(reply.session_id),
        "llm_provider": str(reply.llm_provider),
        "model": str(reply.model),
        "user_id": str(reply.username),
        "usage": {**{name: int(reply.usage[name]) for name in _USAGE}, "cost_usd": cost_usd(reply.usage)},
        "session_usage": {
            **{name: int(reply.session_usage[name]) for name in _USAGE},
            "cost_usd": cost_usd(reply.session_usage),
            "requests": int(reply.session_usage["requests"]),
        },
    }


class ChatStreamEventSerializer(serializers.Serializer):
    """One Server-Sent Event of a streamed reply."""

    event = serializers.ChoiceField(choices=["delta", "done", "error"])
    data = serializers.CharField(
        help_text="JSON: `{content}` for `delta`; the fields of the JSON reply for `done`; "
        "`{detail, code, status}` for `error`."
    )


class StoredMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["user", "assistant", "tool"])
    content = serializers.CharField(allow_blank=True, help_text="Empty when an assistant's reply is only tool calls.")
    tool_calls = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="An assistant's tool calls, as OpenAI shapes them."
    )
    tool_call_id = serializers.CharField(required=False, help_text="Which call a tool result answers.")
    name = serializers.CharField(required=False, help_text="The author's name a `/v1` message gave.")
    created_at = serializers.CharField(source="at", help_text="When the message was stored, as the export names it.")
    at = serializers.CharField(help_text="The same as `created_at`.")


class SessionSummarySerializer(serializers.Serializer):
    session_id = serializers.CharField()
    message_count = serializers.IntegerField()
    created_at = serializers.CharField()
    last_activity = serializers.CharField()
    usage = UsageTotalsSerializer(help_text="The session's tokens and requests.")


class SessionListSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    sessions = SessionSummarySerializer(many=True)


class SessionDetailSerializer(SessionSummarySerializer):
    usage = UsageTotalsSerializer()
    messages = StoredMessageSerializer(many=True)
    summary = serializers.CharField(
        allow_null=True, help_text="With HISTORY_SUMMARY: the fold of the turns before `messages`; null: none."
    )


class MemoryStatsSerializer(serializers.Serializer):
    backend = serializers.CharField()
    sessions_stored = serializers.IntegerField(help_text="Live sessions of every admin.")
    max_sessions = serializers.IntegerField(help_text="MAX_SESSIONS (or MAX_CACHE_SIZE)")
    ttl_seconds = serializers.IntegerField(help_text="MEMORY_TTL_SECONDS, counted from the last activity.")
    your_sessions = serializers.IntegerField()
    usage = UsageTotalsSerializer(help_text="This admin's token usage since it was created.")


class TestChatRequestSerializer(serializers.Serializer):
    message = serializers.CharField(help_text="1 to MAX_MESSAGE_CHARS characters.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit_message_chars(self.fields["message"])


class TestChatResultSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    response = serializers.CharField()
    error = serializers.CharField(allow_null=True)
    latency_ms = serializers.FloatField()
    model = serializers.CharField()
