"""The request of `POST /v1/chat/completions`, as OpenAI defines it, limited to what this service does."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

SUPPORTED_FIELDS = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "user",  # accepted and not used
}
# Parameters some clients always send; at these values they change nothing, so they need no support.
NEUTRAL_VALUES: dict[str, object] = {"top_p": 1, "presence_penalty": 0, "frequency_penalty": 0, "logprobs": False}


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}},
                    "required": ["type", "text"],
                },
            },
        ]
    }
)
class MessageContentField(serializers.Field):
    """A string, or OpenAI's list of text parts (joined into one string); images and audio are refused."""

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, str):
            return data
        if isinstance(data, list) and all(
            isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str) for part in data
        ):
            return "".join(part["text"] for part in data)
        raise serializers.ValidationError("Must be a string or a list of text parts; only text is supported.")

    def to_representation(self, value: str) -> str:
        return value


class CompletionMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant"])
    content = MessageContentField(help_text="At most MAX_MESSAGE_CHARS characters, whatever the role.")

    def validate_content(self, value: str) -> str:
        if len(value) > settings.MAX_MESSAGE_CHARS:
            raise serializers.ValidationError(f"Over MAX_MESSAGE_CHARS ({settings.MAX_MESSAGE_CHARS}) characters.")
        return value


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = serializers.BooleanField(default=False)


class ChatCompletionRequestSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=200, help_text="One of the models `GET /v1/models` lists.")
    messages = CompletionMessageSerializer(
        many=True,
        allow_empty=False,
        help_text="At most MAX_REQUEST_MESSAGES messages of MAX_REQUEST_CHARS characters together.",
    )
    stream = serializers.BooleanField(default=False)
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=2.0)
    max_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    max_completion_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    n = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=1, help_text="Only 1.")
    user = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=256)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            for name, value in data.items():
                neutral = name in NEUTRAL_VALUES and NEUTRAL_VALUES[name] == value
                if name not in SUPPORTED_FIELDS and value is not None and not neutral:
                    raise serializers.ValidationError({name: ["This parameter is not supported by this service."]})
            messages = data.get("messages")
            # Counted before the messages are validated one by one, which for 30,000 of them takes 0.2 s of CPU.
            if isinstance(messages, list) and len(messages) > settings.MAX_REQUEST_MESSAGES:
                problem = f"{len(messages)} messages, over MAX_REQUEST_MESSAGES ({settings.MAX_REQUEST_MESSAGES})."
                raise serializers.ValidationError({"messages": [problem]})
        return super().to_internal_value(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        limit = attrs.get("max_completion_tokens") or attrs.get("max_tokens")
        if limit is not None and limit > settings.MAX_TOKENS:
            field = "max_completion_tokens" if attrs.get("max_completion_tokens") else "max_tokens"
            raise serializers.ValidationError({field: [f"Must be at most {settings.MAX_TOKENS} (MAX_TOKENS)."]})
        chars = sum(len(m["content"]) for m in attrs["messages"])
        if chars > settings.MAX_REQUEST_CHARS:
            raise serializers.ValidationError(
                {"messages": [f"{chars} characters together, over MAX_REQUEST_CHARS ({settings.MAX_REQUEST_CHARS})."]}
            )
        return attrs


class OpenAIErrorDetailSerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField()
    code = serializers.CharField(allow_null=True)
    param = serializers.CharField(allow_null=True)


class OpenAIErrorSerializer(serializers.Serializer):
    error = OpenAIErrorDetailSerializer()


class AssistantMessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField()


class ChatCompletionChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    message = AssistantMessageSerializer()
    logprobs = serializers.JSONField(allow_null=True)
    finish_reason = serializers.CharField()


class CompletionUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class ChatCompletionSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="chat.completion")
    created = serializers.IntegerField()
    model = serializers.CharField()
    system_fingerprint = serializers.CharField(allow_null=True)
    choices = ChatCompletionChoiceSerializer(many=True)
    usage = CompletionUsageSerializer()


class OpenAIModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="model")
    created = serializers.IntegerField()
    owned_by = serializers.CharField()


class OpenAIModelListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = OpenAIModelSerializer(many=True)
