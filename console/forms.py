"""The console's forms. What a value may be is the API's rule, read from the API's serializers."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms
from django.http import QueryDict
from rest_framework import serializers

from accounts.selectors import AUDIT_ACTIONS
from accounts.serializers import password_checkable


class SignInForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username"}))
    password = forms.CharField(strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        try:
            return password_checkable(password)  # bcrypt's limit, as /admin/login checks it
        except serializers.ValidationError as exc:
            raise forms.ValidationError(str(exc.detail[0])) from None


class ImportForm(forms.Form):
    file = forms.FileField(label="Exported session (JSON)")


class AuditFilterForm(forms.Form):
    """The audit page's filters: an action, and a range of UTC days (both ends included)."""

    action = forms.ChoiceField(choices=[("", "Every action"), *((a, a) for a in AUDIT_ACTIONS)], required=False)
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict:
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("The range ends before it starts.")
        return data

    def query(self) -> dict:
        """The selector's arguments: the days as the times that bound them."""
        data = self.cleaned_data
        since, until = data.get("since"), data.get("until")
        return {
            "action": data.get("action") or None,
            "since": datetime.combine(since, time.min, UTC) if since else None,
            "until": datetime.combine(until, time.min, UTC) + timedelta(days=1, milliseconds=-1) if until else None,
        }


USAGE_DEFAULT_DAYS = 30
USAGE_MOST_DAYS = 366


class UsageRangeForm(forms.Form):
    """The usage page's range of UTC days (both ends included; by default the last 30)."""

    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict:
        data = super().clean()
        until = data.get("until") or datetime.now(UTC).date()
        since = data.get("since") or until - timedelta(days=USAGE_DEFAULT_DAYS - 1)
        if since > until:
            raise forms.ValidationError("The range ends before it starts.")
        if (until - since).days >= USAGE_MOST_DAYS:
            raise forms.ValidationError(f"A range is at most {USAGE_MOST_DAYS} days.")
        return {"since": since, "until": until}


def key_change_data(post: QueryDict) -> dict[str, Any]:
    """The key form's fields as the body of `PATCH /admin/api-keys/{id}` (ApiKeyUpdateRequestSerializer checks it):
    every field is sent, so an emptied one removes its rule; a budget with neither amount is none."""
    amounts = {name: post.get(f"budget_{name}", "").strip() for name in ("tokens", "usd")}
    budget = {name: value for name, value in amounts.items() if value}
    rules = {name: post.get(name, "").strip() or None for name in ("requests_per_minute", "tokens_per_minute")}
    return {
        "budget": {**budget, "period": post.get("budget_period", "")} if budget else None,
        "models": post.getlist("models"),  # none ticked: any model
        **rules,
        "expires_at": post.get("expires_at", "").strip() or None,  # a UTC time, from a datetime-local field
    }
