"""The shapes the `/llm/*` endpoints answer with, rendered through these serializers."""

from __future__ import annotations

from rest_framework import serializers


class ProviderSerializer(serializers.Serializer):
    provider = serializers.CharField()
    model = serializers.CharField()
    base_url = serializers.CharField()
    temperature = serializers.FloatField()
    max_tokens = serializers.IntegerField()
    type = serializers.CharField()
    description = serializers.CharField()


class CurrentProviderSerializer(serializers.Serializer):
    current_provider = ProviderSerializer()


class ProviderEntrySerializer(serializers.Serializer):
    name = serializers.CharField()
    display_name = serializers.CharField()
    type = serializers.CharField()
    description = serializers.CharField()
    requires_api_key = serializers.BooleanField()
    current_model = serializers.CharField()
    models = serializers.ListField(child=serializers.CharField())
    models_available = serializers.BooleanField(
        help_text="False when the upstream could not be asked (see /llm/health)."
    )


class ProvidersSerializer(serializers.Serializer):
    providers = ProviderEntrySerializer(many=True)


class LLMHealthSerializer(serializers.Serializer):
    healthy = serializers.BooleanField()
    provider = serializers.CharField()
    model = serializers.CharField()
    model_available = serializers.BooleanField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    code = serializers.CharField(allow_null=True)
    checked_seconds_ago = serializers.FloatField()
