"""The shapes the system endpoints answer with, rendered through these serializers."""

from __future__ import annotations

from rest_framework import serializers

from accounts.serializers import BudgetStatusSerializer
from conversations.serializers import UsageTotalsSerializer


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["healthy", "degraded", "unhealthy"])
    service = serializers.CharField()
    version = serializers.CharField()
    llm_provider = serializers.CharField()
    llm_healthy = serializers.BooleanField(allow_null=True)
    redis_healthy = serializers.BooleanField()
    redis_warning = serializers.CharField(allow_null=True)


class LivenessSerializer(serializers.Serializer):
    status = serializers.CharField()


class InfoSerializer(serializers.Serializer):
    name = serializers.CharField()
    service = serializers.CharField()
    version = serializers.CharField()
    llm_provider = serializers.CharField()
    model = serializers.CharField()
    docs = serializers.DictField(child=serializers.CharField())


class UpstreamRateLimitsSerializer(serializers.Serializer):
    limit_requests = serializers.IntegerField(allow_null=True, help_text="Requests per day.")
    remaining_requests = serializers.IntegerField(allow_null=True)
    reset_requests = serializers.CharField(
        allow_null=True, help_text="Until the requests limit resets, as Groq writes it: 2m59.56s."
    )
    limit_tokens = serializers.IntegerField(allow_null=True, help_text="Tokens per minute.")
    remaining_tokens = serializers.IntegerField(allow_null=True)
    reset_tokens = serializers.CharField(allow_null=True)
    observed_at = serializers.DateTimeField()


class StatusSerializer(serializers.Serializer):
    redis_connected = serializers.BooleanField()
    chatgroq_healthy = serializers.BooleanField()
    active_conversations_count = serializers.IntegerField(
        help_text="Conversations (chat sessions) stored, of every admin."
    )
    active_sessions_count = serializers.IntegerField(
        source="active_conversations_count",
        help_text="The same count as active_conversations_count, under its older name.",
    )
    uptime_seconds = serializers.IntegerField()
    uptime_formatted = serializers.CharField()
    history_backend = serializers.CharField()
    model = serializers.CharField()
    usage = UsageTotalsSerializer(help_text="This admin's totals.")
    budget = BudgetStatusSerializer(
        allow_null=True, help_text="This admin's token budget this period (its keys count too), or null."
    )
    upstream_rate_limits = UpstreamRateLimitsSerializer(
        allow_null=True,
        help_text=(
            "Groq's x-ratelimit-* headers from the latest upstream answer this server process received "
            "(any status, 429 included); null before the first. Limits are Groq's, per organisation."
        ),
    )


class ApiRootSerializer(serializers.Serializer):
    name = serializers.CharField()
    endpoints = serializers.DictField(child=serializers.URLField())
