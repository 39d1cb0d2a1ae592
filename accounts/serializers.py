from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.serializers import PasswordField, TokenObtainSerializer

from accounts.budgets import MAX_BUDGET_TOKENS, PERIODS, Budget
from accounts.credentials import username_problem
from accounts.key_rules import MAX_PER_MINUTE, NO_RULES, KeyRules, model_problem
from accounts.passwords import BCRYPT_MAX_BYTES, bcrypt_limit_problem, password_problem
from accounts.tokens import tokens_issue
from core.metrics import login_counted


def _valid(value: str, problem: str | None) -> str:
    """`value`, or the ValidationError that says what `problem` found wrong with it."""
    if problem:
        raise serializers.ValidationError(problem)
    return value


def password_checkable(value: str) -> str:
    """Validates a password sent to be checked, never stored: only bcrypt's limit applies."""
    return _valid(value, bcrypt_limit_problem(value))


class LoginSerializer(TokenObtainSerializer):
    """SimpleJWT's obtain-pair flow through our Redis backend, answering in the documented shape
    (`access_token`, `token_type`, `expires_in`, `username`) with the refresh token beside it."""

    default_error_messages = {"no_active_account": "Invalid username or password."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"] = serializers.CharField(max_length=150, write_only=True)
        self.fields["password"] = PasswordField(validators=[password_checkable])

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            super().validate(attrs)
        except AuthenticationFailed:
            raise AuthenticationFailed(self.error_messages["no_active_account"], "invalid_credentials") from None
        issued = tokens_issue(self.user)
        login_counted("succeeded")
        logged_in = {
            "access_token": issued.access_token,
            "token_type": "bearer",
            "expires_in": issued.expires_in,
            "username": self.user.username,
            "refresh_token": issued.refresh_token,
            "refresh_expires_in": issued.refresh_expires_in,
        }
        return LoginResponseSerializer(logged_in).data


class LoginRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=BCRYPT_MAX_BYTES)


class LoginResponseSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")
    username = serializers.CharField()
    refresh_token = serializers.CharField()
    refresh_expires_in = serializers.IntegerField(help_text="Seconds until the refresh token expires.")


class RefreshRequestSerializer(serializers.Serializer):
    refresh_token = serializers.CharField(max_length=4096)


class RefreshResponseSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField()


class LogoutRequestSerializer(serializers.Serializer):
    refresh_token = serializers.CharField(
        max_length=4096, required=False, help_text="Also revoke this refresh token (if it is from another login)."
    )


class MessageSerializer(serializers.Serializer):
    message = serializers.CharField()


class AdminInfoSerializer(serializers.Serializer):
    id = serializers.CharField()
    username = serializers.CharField()
    created_at = serializers.CharField()
    last_updated = serializers.CharField()
    active_logins = serializers.IntegerField(help_text="Live logins (unrevoked, unexpired): GET /admin/sessions.")
    active_sessions = serializers.IntegerField(
        source="active_logins", help_text="The same count as active_logins, under its older name."
    )


class ChangeCredentialsSerializer(serializers.Serializer):
    current_password = serializers.CharField(
        max_length=BCRYPT_MAX_BYTES,
        required=False,
        style={"input_type": "password"},
        help_text="Required, except within RECENT_LOGIN_SECONDS of logging in with this token's login.",
    )
    new_username = serializers.CharField(max_length=150, required=False)
    new_password = serializers.CharField(max_length=256, required=False, style={"input_type": "password"})

    def validate_new_username(self, value: str) -> str:
        return _valid(value, username_problem(value))

    def validate_new_password(self, value: str) -> str:
        return _valid(value, password_problem(value))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "new_username" not in attrs and "new_password" not in attrs:
            raise serializers.ValidationError("Give new_username, new_password or both.")
        return attrs


class ChangeCredentialsResponseSerializer(serializers.Serializer):
    message = serializers.CharField()
    username = serializers.CharField()


class LoginSessionSerializer(serializers.Serializer):
    id = serializers.CharField()
    created_at = serializers.CharField()
    expires_at = serializers.CharField()
    last_activity = serializers.CharField()
    current = serializers.BooleanField(help_text="True for the login making this request.")


class LoginSessionListSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    sessions = LoginSessionSerializer(many=True)


class BudgetSerializer(serializers.Serializer):
    tokens = serializers.IntegerField(
        min_value=1, max_value=MAX_BUDGET_TOKENS, required=False, allow_null=True, help_text="Tokens per period."
    )
    usd = serializers.DecimalField(
        max_digits=16,
        decimal_places=6,
        min_value=Decimal("0.000001"),
        required=False,
        allow_null=True,
        help_text='US dollars per period, as a decimal string ("5.00"), at MODEL_PRICES_FILE\'s prices.',
    )
    period = serializers.ChoiceField(choices=PERIODS, help_text="A UTC day or month.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("tokens") is None and attrs.get("usd") is None:
            raise serializers.ValidationError("A budget needs `tokens`, `usd` or both.")
        return attrs


def budget_of(data: dict[str, Any] | None) -> Budget | None:
    return Budget(data.get("tokens"), data["period"], data.get("usd")) if data else None


class BudgetStatusSerializer(BudgetSerializer):
    used = serializers.IntegerField(help_text="Tokens used this period, the admin's keys' included for an admin.")
    used_usd = serializers.DecimalField(
        max_digits=16,
        decimal_places=6,
        allow_null=True,
        help_text="Dollars spent this period, with a dollar budget (else null).",
    )
    resets_at = serializers.CharField(help_text="When the period ends (UTC).")


class ApiKeyRulesSerializer(serializers.Serializer):
    models = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        max_length=100,
        help_text="The models this key may use (of CHAT_ALLOWED_MODELS); empty or absent: any.",
    )
    requests_per_minute = serializers.IntegerField(
        min_value=1, max_value=MAX_PER_MINUTE, required=False, allow_null=True, help_text="null: no limit."
    )
    tokens_per_minute = serializers.IntegerField(
        min_value=1, max_value=MAX_PER_MINUTE, required=False, allow_null=True, help_text="null: no limit."
    )
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="After it the key gets 401 api_key_expired; null: never."
    )

    def validate_models(self, value: list[str]) -> list[str]:
        for model in value:
            _valid(model, model_problem(model))
        return list(dict.fromkeys(value))


def rules_of(data: dict[str, Any], current: KeyRules = NO_RULES) -> KeyRules:
    """The key's rules with the fields given in `data` changed."""
    return KeyRules(
        models=tuple(data.get("models", current.models)),
        requests_per_minute=data.get("requests_per_minute", current.requests_per_minute),
        tokens_per_minute=data.get("tokens_per_minute", current.tokens_per_minute),
        expires_at=data.get("expires_at", current.expires_at),
    )


class ApiKeyCreateRequestSerializer(ApiKeyRulesSerializer):
    name = serializers.CharField(
        max_length=100, required=False, default="", allow_blank=True, help_text="What the key is for."
    )
    budget = BudgetSerializer(required=False, allow_null=True, help_text="A token or dollar budget for this key.")


class ApiKeyUpdateRequestSerializer(ApiKeyRulesSerializer):
    budget = BudgetSerializer(
        required=False, allow_null=True, help_text="The key's token or dollar budget; null removes it."
    )


class ApiKeyInfoSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The key's first characters, to tell keys apart.")
    created_at = serializers.CharField()
    last_used = serializers.CharField(allow_null=True, help_text="The same as last_used_at, under its older name.")
    last_used_at = serializers.CharField(source="last_used", allow_null=True, help_text="null: never used.")
    models = serializers.ListField(child=serializers.CharField(), source="rules.models", help_text="[]: any.")
    requests_per_minute = serializers.IntegerField(source="rules.requests_per_minute", allow_null=True)
    tokens_per_minute = serializers.IntegerField(source="rules.tokens_per_minute", allow_null=True)
    expires_at = serializers.DateTimeField(source="rules.expires_at", allow_null=True)
    budget = BudgetStatusSerializer(
        allow_null=True, required=False, help_text="Its token or dollar budget, if it has one."
    )


class ApiKeyCreatedSerializer(ApiKeyInfoSerializer):
    key = serializers.CharField(help_text="The key itself. Shown only now: store it safely.")


class ApiKeyListSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    keys = ApiKeyInfoSerializer(many=True)
