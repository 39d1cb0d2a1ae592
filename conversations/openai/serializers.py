"""The request of `POST /v1/chat/completions`, as OpenAI defines it, limited to what this service does."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from conversations.serializers import GenerationOptionsSerializer, json_chars

# Groq refuses these (and `n` above 1); at these values they change nothing, so clients that always send them work.
NEUTRAL_VALUES: dict[str, object] = {"logprobs": False, "top_logprobs": None, "logit_bias": None}
MAX_TOOLS = 128  # Groq's limit; MAX_REQUEST_TOOLS may be lower
FUNCTION_NAME_RE = r"^[A-Za-z0-9_-]{1,64}$"


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
        ],
        "nullable": True,
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


class FunctionCallSerializer(serializers.Serializer):
    name = serializers.RegexField(FUNCTION_NAME_RE)
    arguments = serializers.CharField(allow_blank=True, trim_whitespace=False, help_text="JSON, as the model wrote it.")


class ToolCallSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=200)
    type = serializers.ChoiceField(choices=["function"])
    function = FunctionCallSerializer()


class CompletionMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(
        choices=["system", "developer", "user", "assistant", "tool"], help_text="`developer` is sent as `system`."
    )
    content = MessageContentField(
        required=False,
        allow_null=True,
        help_text="At most MAX_MESSAGE_CHARS characters, whatever the role; may be null for an assistant's tool calls.",
    )
    name = serializers.CharField(required=False, max_length=64)
    tool_calls = ToolCallSerializer(many=True, required=False, help_text="An assistant's earlier tool calls.")
    tool_call_id = serializers.CharField(
        required=False, max_length=200, help_text="A tool result: the call it answers."
    )

    def validate_content(self, value: str | None) -> str | None:
        if value is not None and len(value) > settings.MAX_MESSAGE_CHARS:
            raise serializers.ValidationError(f"Over MAX_MESSAGE_CHARS ({settings.MAX_MESSAGE_CHARS}) characters.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        role = attrs["role"]
        if attrs.get("content") is None and not (role == "assistant" and attrs.get("tool_calls")):
            raise serializers.ValidationError({"content": ["Required, except for an assistant's tool calls."]})
        if attrs.get("tool_calls") and role != "assistant":
            raise serializers.ValidationError({"tool_calls": ["Only an assistant message has tool calls."]})
        if (role == "tool") != ("tool_call_id" in attrs):
            raise serializers.ValidationError({"tool_call_id": ["A tool message, and only one, has a tool_call_id."]})
        message: dict[str, Any] = {
            "role": "system" if role == "developer" else role,
            "content": attrs.get("content") or "",
        }
        for name in ("name", "tool_calls", "tool_call_id"):
            if attrs.get(name):
                message[name] = attrs[name]
        return message


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = serializers.BooleanField(default=False)


class FunctionDefinitionSerializer(serializers.Serializer):
    name = serializers.RegexField(FUNCTION_NAME_RE)
    description = serializers.CharField(required=False, allow_blank=True)
    parameters = serializers.DictField(required=False, help_text="A JSON Schema of the arguments.")
    strict = serializers.BooleanField(required=False)


class ToolSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["function"])
    function = FunctionDefinitionSerializer()


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": ["none", "auto", "required"]},
            {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["function"]},
                    "function": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
                },
                "required": ["type", "function"],
            },
        ]
    }
)
class ToolChoiceField(serializers.Field):
    def to_internal_value(self, data: Any) -> str | dict[str, Any]:
        if data in ("none", "auto", "required"):
            return data
        function = data.get("function") if isinstance(data, dict) and data.get("type") == "function" else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return {"type": "function", "function": {"name": function["name"]}}
        raise serializers.ValidationError('"none", "auto", "required" or {"type": "function", "function": {"name"}}.')

    def to_representation(self, value: Any) -> Any:
        return value


class ChatCompletionRequestSerializer(GenerationOptionsSerializer):
    """Every parameter Groq accepts is passed on; what Groq refuses (`n` > 1, `logprobs`, `logit_bias`,
    unknown parameters) is refused here, before any call."""

    passed_on = (
        *GenerationOptionsSerializer.passed_on,
        "user",
        "presence_penalty",
        "frequency_penalty",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning_format",
        "include_reasoning",
        "service_tier",
    )

    model = serializers.CharField(max_length=200, help_text="One of the models `GET /v1/models` lists.")
    messages = CompletionMessageSerializer(
        many=True,
        allow_empty=False,
        help_text="At most MAX_REQUEST_MESSAGES messages; these and the other parameters that go upstream (tools, "
        "response_format, stop, ...) have at most MAX_REQUEST_CHARS characters together.",
    )
    stream = serializers.BooleanField(default=False)
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=2.0)
    max_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    max_completion_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    n = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=1, help_text="Only 1.")
    user = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=256)
    presence_penalty = serializers.FloatField(required=False, allow_null=True, min_value=-2.0, max_value=2.0)
    frequency_penalty = serializers.FloatField(required=False, allow_null=True, min_value=-2.0, max_value=2.0)
    tools = ToolSerializer(
        many=True,
        required=False,
        allow_null=True,
        max_length=MAX_TOOLS,
        help_text="At most MAX_REQUEST_TOOLS tools of MAX_TOOLS_CHARS characters together, as JSON.",
    )
    tool_choice = ToolChoiceField(required=False, allow_null=True)
    parallel_tool_calls = serializers.BooleanField(required=False, allow_null=True)
    reasoning_format = serializers.ChoiceField(
        choices=["parsed", "raw", "hidden"], required=False, allow_null=True, help_text="For reasoning models."
    )
    include_reasoning = serializers.BooleanField(required=False, allow_null=True)
    service_tier = serializers.ChoiceField(
        choices=["on_demand", "flex", "auto", "performance"], required=False, allow_null=True
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            for name, value in data.items():
                neutral = name in NEUTRAL_VALUES and NEUTRAL_VALUES[name] == value
                if name not in self.fields and value is not None and not neutral:
                    raise serializers.ValidationError({name: ["This parameter is not supported (Groq refuses it)."]})
            messages = data.get("messages")
            # Counted before the messages are validated one by one, which costs CPU for each of them.
            if isinstance(messages, list) and len(messages) > settings.MAX_REQUEST_MESSAGES:
                problem = f"{len(messages)} messages, over MAX_REQUEST_MESSAGES ({settings.MAX_REQUEST_MESSAGES})."
                raise serializers.ValidationError({"messages": [problem]})
            tools = data.get("tools")
            if isinstance(tools, list) and len(tools) > settings.MAX_REQUEST_TOOLS:
                problem = f"{len(tools)} tools, over MAX_REQUEST_TOOLS ({settings.MAX_REQUEST_TOOLS})."
                raise serializers.ValidationError({"tools": [problem]})
            data = {name: value for name, value in data.items() if name not in NEUTRAL_VALUES}
        return super().to_internal_value(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        limit = attrs.get("max_completion_tokens") or attrs.get("max_tokens")
        if limit is not None and limit > settings.MAX_TOKENS:
            field = "max_completion_tokens" if attrs.get("max_completion_tokens") else "max_tokens"
            raise serializers.ValidationError({field: [f"Must be at most {settings.MAX_TOKENS} (MAX_TOKENS)."]})
        tools_chars = json_chars(attrs["tools"]) if attrs.get("tools") else 0
        if tools_chars > settings.MAX_TOOLS_CHARS:
            problem = f"{tools_chars} characters as JSON, over MAX_TOOLS_CHARS ({settings.MAX_TOOLS_CHARS})."
            raise serializers.ValidationError({"tools": [problem]})
        # Everything the request sends upstream: its messages and its other parameters, tools and schemas too.
        params = self.passed_on_params(attrs)
        chars = sum(message_chars(m) for m in attrs["messages"]) + (json_chars(params) if params else 0)
        if chars > settings.MAX_REQUEST_CHARS:
            problem = (
                f"{chars} characters in the messages and the other parameters together, "
                f"over MAX_REQUEST_CHARS ({settings.MAX_REQUEST_CHARS})."
            )
            raise serializers.ValidationError({"messages": [problem]})
        validate_tool_choice(attrs.get("tool_choice"), attrs.get("tools") or [])
        if attrs.get("reasoning_format") == "raw" and (attrs.get("tools") or _json_mode(attrs)):
            raise serializers.ValidationError(
                {"reasoning_format": ["`raw` cannot be used with tools or JSON mode; use `parsed` or `hidden`."]}
            )
        if attrs.get("reasoning_format") is not None and attrs.get("include_reasoning") is not None:
            raise serializers.ValidationError({"include_reasoning": ["Set reasoning_format or include_reasoning."]})
        return attrs


def message_chars(message: dict[str, Any]) -> int:
    calls = message.get("tool_calls") or []
    return len(message["content"]) + sum(len(call["function"]["arguments"]) for call in calls)


def validate_tool_choice(choice: str | dict[str, Any] | None, tools: list[dict[str, Any]]) -> None:
    if choice is None or choice == "none":
        return
    if not tools:
        raise serializers.ValidationError({"tool_choice": ["Needs `tools`."]})
    names = {tool["function"]["name"] for tool in tools}
    if isinstance(choice, dict) and choice["function"]["name"] not in names:
        raise serializers.ValidationError({"tool_choice": [f"No tool is named '{choice['function']['name']}'."]})


def _json_mode(attrs: dict[str, Any]) -> bool:
    response_format = attrs.get("response_format") or {}
    return response_format.get("type") in ("json_object", "json_schema")


class OpenAIErrorDetailSerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField()
    code = serializers.CharField(allow_null=True)
    param = serializers.CharField(allow_null=True)


class OpenAIErrorSerializer(serializers.Serializer):
    error = OpenAIErrorDetailSerializer()


class AssistantMessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField(allow_null=True, help_text="Null when the reply is only tool calls.")
    tool_calls = ToolCallSerializer(many=True, required=False)
    reasoning = serializers.CharField(required=False, help_text="With reasoning_format `parsed`.")


class ChatCompletionChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    message = AssistantMessageSerializer()
    logprobs = serializers.JSONField(allow_null=True)
    finish_reason = serializers.CharField()


class CompletionUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    queue_time = serializers.FloatField(required=False, help_text="Groq's timings, in seconds, when it sends them.")
    prompt_time = serializers.FloatField(required=False)
    completion_time = serializers.FloatField(required=False)
    total_time = serializers.FloatField(required=False)


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
