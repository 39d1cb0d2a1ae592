"""The request of `POST /v1/responses` and the shapes the schema documents. What the upstream cannot do (built-in
tools, `background`, ...) is a 400 naming the parameter; the rest is translated to a chat completion's parameters
and checked by the chat completion's own request serializer, with its limits."""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from conversations.openai.serializers import FUNCTION_NAME_RE, ChatCompletionRequestSerializer
from conversations.responses.items import input_items, input_messages
from core.shortcuts import lent_serializer

RESPONSE_ID_RE = r"^resp_[A-Za-z0-9]{1,90}$"
CONVERSATION_ID_RE = r"^conv_[A-Za-z0-9]{1,90}$"
# Accepted and without effect here: they change nothing an OpenAI-compatible upstream does with a chat completion.
IGNORED = ("prompt_cache_key", "prompt_cache_retention", "service_tier", "stream_options")
# `include` values accepted without effect: the outputs they name (built-in tools', images') cannot occur here, and
# reasoning comes back as plain text in the reasoning item (nothing is encrypted). Any other value is a 400.
INCLUDE_WITHOUT_EFFECT = (
    "code_interpreter_call.outputs",
    "computer_call_output.output.image_url",
    "file_search_call.results",
    "message.input_image.image_url",
    "reasoning.encrypted_content",
    "web_search_call.action.sources",
    "web_search_call.results",
)
UNSUPPORTED = {
    "background": "Background responses are not supported.",
    "prompt": "Stored prompts are not supported.",
    "max_tool_calls": "Not supported.",
    "top_logprobs": "Not supported.",
}
# The chat completion parameter a problem was found in, by the Responses parameter that set it.
PARAM_NAMES = {
    "messages": "input",
    "max_completion_tokens": "max_output_tokens",
    "response_format": "text.format",
    "reasoning_effort": "reasoning.effort",
}


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "description": "A message (`role`: user, system, developer or assistant; `content`: a string "
                    "or input_text/output_text parts), a `function_call` or a `function_call_output`.",
                },
            },
        ]
    }
)
class InputField(serializers.Field):
    def to_internal_value(self, data: Any) -> Any:
        input_messages(data)  # valid, or a ValidationError naming the item
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class FunctionToolSerializer(serializers.Serializer):
    type = serializers.CharField()
    name = serializers.RegexField(FUNCTION_NAME_RE)
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    parameters = serializers.DictField(required=False, allow_null=True)
    strict = serializers.BooleanField(required=False, allow_null=True)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") != "function":
            raise serializers.ValidationError(
                {"type": [f"The built-in tool '{data.get('type')}' is not supported; only function tools."]}
            )
        return super().to_internal_value(data)


class TextSerializer(serializers.Serializer):
    format = serializers.DictField(required=False, help_text="`text`, `json_object` or `json_schema`.")
    verbosity = serializers.CharField(required=False, allow_null=True)


class ReasoningSerializer(serializers.Serializer):
    effort = serializers.ChoiceField(choices=["none", "low", "medium", "high"], required=False, allow_null=True)
    summary = serializers.CharField(required=False, allow_null=True)


class ResponseCreateSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=200, help_text="One of the models `GET /v1/models` lists.")
    input = InputField(help_text="A string (one user message) or a list of items.")
    instructions = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="A system message for this response only."
    )
    previous_response_id = serializers.RegexField(
        RESPONSE_ID_RE, required=False, allow_null=True, help_text="Continue the chain of this stored response."
    )
    conversation = serializers.JSONField(
        required=False, allow_null=True, help_text='A conversation to add this response to: its id or {"id": ...}.'
    )
    store = serializers.BooleanField(default=True, help_text="Keep it, to retrieve and chain (default true).")
    stream = serializers.BooleanField(default=False)
    max_output_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=2.0)
    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0.0, max_value=1.0)
    metadata = serializers.DictField(
        child=serializers.CharField(max_length=512, allow_blank=True), required=False, allow_null=True
    )
    tools = FunctionToolSerializer(many=True, required=False, allow_null=True)
    tool_choice = serializers.JSONField(required=False, allow_null=True)
    parallel_tool_calls = serializers.BooleanField(required=False, allow_null=True)
    text = TextSerializer(required=False, allow_null=True)
    reasoning = ReasoningSerializer(required=False, allow_null=True)
    user = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=256)
    safety_identifier = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=256,
        help_text="A stable id of the end user, passed upstream as the chat completion's `user` (as `user` is).",
    )
    truncation = serializers.ChoiceField(
        ["auto", "disabled"],
        default="auto",
        help_text="`auto` (the default here): history that exceeds HISTORY_MAX_MESSAGES / HISTORY_MAX_TOKENS is "
        "trimmed (or summarized, with HISTORY_SUMMARY) as a session's is. `disabled`: such a request is a 400 "
        "(`context_length_exceeded`) instead.",
    )
    include = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        allow_null=True,
        help_text="Accepted: " + ", ".join(INCLUDE_WITHOUT_EFFECT) + " (no such output here, or nothing to add).",
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            for name, value in data.items():
                if name in UNSUPPORTED and value not in (None, False):
                    raise serializers.ValidationError({name: [UNSUPPORTED[name]]})
                if name not in self.fields and name not in IGNORED and name not in UNSUPPORTED:
                    raise serializers.ValidationError({name: ["This parameter is not supported."]})
            data = {name: value for name, value in data.items() if name in self.fields}
        return super().to_internal_value(data)

    def validate_metadata(self, value: dict[str, str] | None) -> dict[str, str] | None:
        if value and (len(value) > 16 or any(len(key) > 64 for key in value)):
            raise serializers.ValidationError("At most 16 pairs, keys of at most 64 characters.")
        return value

    def validate_include(self, value: list[str] | None) -> list[str]:
        for name in value or []:
            if name not in INCLUDE_WITHOUT_EFFECT:
                accepted = ", ".join(INCLUDE_WITHOUT_EFFECT)
                raise serializers.ValidationError(f"'{name}' is not supported here (accepted: {accepted}).")
        return value or []

    def validate_conversation(self, value: Any) -> str | None:
        conversation_id = value.get("id") if isinstance(value, dict) else value
        if value is not None and not (
            isinstance(conversation_id, str) and re.match(CONVERSATION_ID_RE, conversation_id)
        ):
            raise serializers.ValidationError('A conversation id (conv_...) or {"id": "conv_..."}.')
        return conversation_id

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("conversation") and attrs.get("previous_response_id"):
            raise serializers.ValidationError(
                {"conversation": ["Send conversation or previous_response_id, not both."]}
            )
        attrs["input_items"] = input_items(attrs["input"])
        chat = chat_request(attrs)
        with lent_serializer(ChatCompletionRequestSerializer, chat) as body:
            if not body.is_valid():
                raise serializers.ValidationError({PARAM_NAMES.get(k, k): v for k, v in body.errors.items()})
            attrs["chat"], attrs["params"] = body.validated_data, body.generation_params()
        return attrs


def chat_request(attrs: dict[str, Any]) -> dict[str, Any]:
    """The chat completion a Responses request asks for (without the chain's history)."""
    instructions = [{"role": "system", "content": attrs["instructions"]}] if attrs.get("instructions") else []
    chat: dict[str, Any] = {"model": attrs["model"], "messages": [*instructions, *input_messages(attrs["input"])]}
    simple = {"temperature": "temperature", "top_p": "top_p", "max_output_tokens": "max_completion_tokens"}
    simple |= {"parallel_tool_calls": "parallel_tool_calls", "user": "user"}
    for name, chat_name in simple.items():
        if attrs.get(name) is not None:
            chat[chat_name] = attrs[name]
    if attrs.get("safety_identifier") and not attrs.get("user"):
        chat["user"] = attrs["safety_identifier"]
    if attrs.get("tools"):
        chat["tools"] = [
            {
                "type": "function",
                "function": {k: v for k, v in tool.items() if k != "type" and v is not None},
            }
            for tool in attrs["tools"]
        ]
    choice = attrs.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif choice is not None:
        chat["tool_choice"] = choice
    text_format = (attrs.get("text") or {}).get("format")
    if text_format and text_format.get("type") != "text":
        chat["response_format"] = response_format(text_format)
    effort = (attrs.get("reasoning") or {}).get("effort")
    if effort is not None:
        chat["reasoning_effort"] = effort
    return chat


def response_format(text_format: dict[str, Any]) -> dict[str, Any]:
    """`text.format` as a chat completion's `response_format` (whose json_schema is nested)."""
    if text_format.get("type") != "json_schema":
        return dict(text_format)
    schema = {k: v for k, v in text_format.items() if k in ("name", "schema", "strict", "description")}
    return {"type": "json_schema", "json_schema": schema}


class OutputTextSerializer(serializers.Serializer):
    type = serializers.CharField(default="output_text")
    text = serializers.CharField()
    annotations = serializers.ListField()


class OutputItemSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.CharField(help_text="`message`, `function_call` or `reasoning`.")
    status = serializers.CharField(required=False)
    role = serializers.CharField(required=False)
    content = OutputTextSerializer(many=True, required=False)
    call_id = serializers.CharField(required=False)
    name = serializers.CharField(required=False)
    arguments = serializers.CharField(required=False)


class ResponseUsageSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField()
    input_tokens_details = serializers.DictField()
    output_tokens = serializers.IntegerField()
    output_tokens_details = serializers.DictField()
    total_tokens = serializers.IntegerField()


class ResponseSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="resp_...")
    object = serializers.CharField(default="response")
    created_at = serializers.IntegerField()
    status = serializers.CharField(help_text="`completed`, or `incomplete` when cut at max_output_tokens.")
    model = serializers.CharField()
    output = OutputItemSerializer(many=True)
    usage = ResponseUsageSerializer()
    previous_response_id = serializers.CharField(allow_null=True)
    instructions = serializers.CharField(allow_null=True)
    metadata = serializers.DictField()
    store = serializers.BooleanField()
    temperature = serializers.FloatField(allow_null=True)
    top_p = serializers.FloatField(allow_null=True)
    max_output_tokens = serializers.IntegerField(allow_null=True)
    tools = serializers.ListField()
    tool_choice = serializers.JSONField()
    parallel_tool_calls = serializers.BooleanField()
    text = serializers.DictField()
    truncation = serializers.CharField(help_text="`auto` or `disabled`, as the request said.")
    user = serializers.CharField(allow_null=True)
    safety_identifier = serializers.CharField(allow_null=True)
    error = serializers.JSONField(allow_null=True)
    incomplete_details = serializers.JSONField(allow_null=True)


class InputItemsQuerySerializer(serializers.Serializer):
    after = serializers.CharField(required=False, max_length=200, help_text="The last item id of the previous page.")
    limit = serializers.IntegerField(required=False, default=20, min_value=1, max_value=100)
    order = serializers.ChoiceField(choices=["asc", "desc"], required=False, default="desc")


class InputItemListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = serializers.ListField(
        child=serializers.DictField(),
        help_text="message, function_call and function_call_output items, with their ids.",
    )
    first_id = serializers.CharField(allow_null=True)
    last_id = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()


class ConversationCreateSerializer(serializers.Serializer):
    items = InputField(required=False, help_text="Up to 20 items to start the conversation with.")
    metadata = serializers.DictField(
        child=serializers.CharField(max_length=512, allow_blank=True), required=False, allow_null=True
    )

    def validate_items(self, value: Any) -> list[dict[str, Any]]:
        if isinstance(value, list) and len(value) > 20:
            raise serializers.ValidationError("At most 20 items.")
        return input_messages(value)

    def validate_metadata(self, value: dict[str, str] | None) -> dict[str, str]:
        if value and (len(value) > 16 or any(len(key) > 64 for key in value)):
            raise serializers.ValidationError("At most 16 pairs, keys of at most 64 characters.")
        return value or {}


class ConversationUpdateSerializer(ConversationCreateSerializer):
    items = None  # type: ignore[assignment]
    metadata = serializers.DictField(child=serializers.CharField(max_length=512, allow_blank=True))


class ConversationItemsCreateSerializer(ConversationCreateSerializer):
    items = InputField(help_text="Up to 20 items to add.")
    metadata = None  # type: ignore[assignment]


class ConversationSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="conv_...")
    object = serializers.CharField(default="conversation")
    created_at = serializers.IntegerField()
    metadata = serializers.DictField()


class ConversationDeletedSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="conversation.deleted")
    deleted = serializers.BooleanField()


class ResponseDeletedSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(default="response")
    deleted = serializers.BooleanField()
