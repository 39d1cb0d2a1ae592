"""The usage report's query and answer (GET /admin/usage, conversations/usage_history.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rest_framework import serializers

from conversations.usage_history import GROUP_BY

DEFAULT_DAYS = 30  # without `from`: the 30 days up to `to`


class UsageQuerySerializer(serializers.Serializer):
    to = serializers.DateField(required=False, help_text="The last UTC day, included, YYYY-MM-DD (default: today).")
    group_by = serializers.CharField(
        required=False,
        default="day",
        help_text="A comma-separated list of `day`, `model` and `key` (default `day`): the rows' dimensions.",
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        # `from` is a Python keyword, so it cannot be declared as the other fields are.
        first = serializers.DateField(
            required=False, help_text="The first UTC day, YYYY-MM-DD (default: 29 days before `to`)."
        )
        return {"from": first, **super().get_fields()}

    def validate_group_by(self, value: str) -> list[str]:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in GROUP_BY]
        if unknown or not names:
            raise serializers.ValidationError(
                f"group_by takes a comma-separated list of {', '.join(GROUP_BY)}; got {value!r}."
            )
        return names

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        end = attrs.get("to") or datetime.now(UTC).date()
        start = attrs.get("from") or end - timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            raise serializers.ValidationError({"from": ["`from` is after `to`."]})
        return {"start": start, "end": end, "group_by": attrs["group_by"]}


class UsageCountersSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost_usd = serializers.CharField(
        allow_null=True,
        help_text="US dollars (six decimals, a string) at MODEL_PRICES_FILE's prices; null when part of it went to "
        "a model without a price.",
    )


class UsageRowSerializer(UsageCountersSerializer):
    """Only the dimensions of `group_by` are present."""

    day = serializers.CharField(required=False, help_text="A UTC day, YYYY-MM-DD (with group_by day).")
    model = serializers.CharField(required=False, help_text="The model that answered (with group_by model).")
    key = serializers.CharField(
        required=False, allow_null=True, help_text="The API key's id; null: a login (with group_by key)."
    )

    def to_representation(self, instance: dict[str, Any]) -> dict[str, Any]:
        shown = super().to_representation(instance)
        dimensions = [name for name in GROUP_BY if name in instance]
        return {name: shown[name] for name in [*dimensions, *UsageCountersSerializer().fields]}


class UsageReportSerializer(serializers.Serializer):
    to = serializers.CharField()
    group_by = serializers.ListField(child=serializers.ChoiceField(choices=GROUP_BY))
    rows = UsageRowSerializer(many=True)
    totals = UsageCountersSerializer()

    def get_fields(self) -> dict[str, serializers.Field]:
        return {"from": serializers.CharField(), **super().get_fields()}
