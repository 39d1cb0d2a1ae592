from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import MaxLengthValidator, MaxValueValidator, RegexValidator
from rest_framework import serializers

from conversations.session_ids import SESSION_ID_REGEX, SESSION_ID_RULE

session_id_validator = RegexValidator(f"^{SESSION_ID_REGEX}$", SESSION_ID_RULE)


def limit_message_chars(field: serializers.CharField) -> None:
    """MAX_MESSAGE_CHARS as read when the serializer is made, so that a changed setting applies at once."""
    field.max_length = settings.MAX_MESSAGE_CHARS
    field.validators.append(MaxLengthValidator(settings.MAX_MESSAGE_CHARS))


class ChatRequestSerializer(serializers.Serializer):
    session_id = serializers.CharField(
        required=False,
        min_length=1,
        max_length=100,
        validators=[session_id_validator],
        help_text="1-100 characters of [A-Za-z0-9_-]. Omit it to start a new session; the answer names it.",
    )
    message = serializers.CharField(help_text="The message, 1 to MAX_MESSAGE_CHARS characters.")
    stream = serializers.BooleanField(
        default=False, help_text="Answer with Server-Sent Events (as does `Accept: text/event-stream`)."
    )
    model = serializers.CharField(required=False, max_length=200, help_text="One of CHAT_ALLOWED_MODELS.")
    temperature = serializers.FloatField(required=False, min_value=0.0, max_value=2.0)
    max_tokens = serializers.IntegerField(required=False, min_value=1, help_text="At most MAX_TOKENS.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit_message_chars(self.fields["message"])
        self.fields["max_tokens"].max_value = settings.MAX_TOKENS
        self.fields["max_tokens"].validators.append(MaxValueValidator(settings.MAX_TOKENS))

    def validate_model(self, value: str) -> str:
        if value not in settings.CHAT_ALLOWED_MODELS:
            raise serializers.ValidationError(f"Choose one of: {', '.join(settings.CHAT_ALLOWED_MODELS)}.")
        return value


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


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


class ChatStreamEventSerializer(serializers.Serializer):
    """One Server-Sent Event of a streamed reply."""

    event = serializers.ChoiceField(choices=["delta", "done", "error"])
    data = serializers.CharField(
        help_text="JSON: `{content}` for `delta`; the fields of the JSON reply for `done`; "
        "`{detail, code, status}` for `error`."
    )


class StoredMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["user", "assistant"])
    content = serializers.CharField()
    at = serializers.CharField()


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
