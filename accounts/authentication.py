from __future__ import annotations

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.tokens import Token

from accounts.admins import admin_get
from accounts.api_keys import ApiKey, api_key_authenticate, looks_like_api_key
from accounts.budgets import BudgetOwner, BudgetOwners, budget_owner
from accounts.key_rules import admin_limits_of_record, rules_expired
from accounts.models import AdminUser
from accounts.tokens import SESSION_CLAIM, access_token_decode, live_session_of, token_invalid_detail


class RedisJWTAuthentication(JWTAuthentication):
    """SimpleJWT's checks (signature, algorithm, `exp`, `iss`, `aud`, token type), then one Redis round trip
    to see that the token's login session is still live. No database lookup. `request.auth` is the validated
    token: see `request_login_session_id`."""

    def get_raw_token(self, header: bytes) -> bytes | None:
        raw = super().get_raw_token(header)
        # An API key is no JWT: leave it to ApiKeyAuthentication instead of refusing it as a malformed token.
        if raw is not None and looks_like_api_key(raw.decode(errors="replace")):
            return None
        return raw

    def get_validated_token(self, raw_token: bytes) -> Token:
        try:
            return access_token_decode(raw_token)
        except TokenError:
            raise InvalidToken(token_invalid_detail(raw_token, "access")) from None

    def get_user(self, validated_token: Token) -> AdminUser:
        session = live_session_of(validated_token)
        admin = AdminUser(id=session["admin_id"], username=session["username"])
        admin.has_budget = session.get("budget") == "1"
        admin.limits = admin_limits_of_record(session)
        return admin


def request_login_session_id(request: Request) -> str | None:
    """The login session a request was made with: its access token's `sid`. None for an API key (`request.auth`
    is then the ApiKey) or a browser session, which belong to no login session."""
    token = request.auth
    return str(token[SESSION_CLAIM]) if isinstance(token, Token) else None


def request_budget_owners(request: Request) -> tuple[BudgetOwner, ...]:
    """The budgets a request's chat counts against: its admin's and its API key's, where they have one; and its
    API key, which its usage is recorded under."""
    owners = [budget_owner("admin", request.user.id)] if getattr(request.user, "has_budget", False) else []
    key = request.auth
    if isinstance(key, ApiKey) and key.has_budget:
        owners.append(budget_owner("key", key.id, key.admin_id))
    return BudgetOwners(owners, key.id if isinstance(key, ApiKey) else "")


class InvalidApiKey(AuthenticationFailed):
    default_detail = "Invalid or revoked API key."
    default_code = "invalid_api_key"


class ApiKeyExpired(AuthenticationFailed):
    default_detail = "This API key has expired."
    default_code = "api_key_expired"


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer cgk_...`, the form OpenAI's SDKs send their `api_key` in."""

    def authenticate(self, request: Request) -> tuple[AdminUser, ApiKey] | None:
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() != b"bearer":
            return None
        raw = parts[1].decode(errors="replace")
        if not looks_like_api_key(raw):
            return None
        key = api_key_authenticate(raw)
        # The admin is read afresh: a renamed admin keeps its keys, a deleted one loses them.
        admin = admin_get(key.admin_id) if key else None
        if key is None or admin is None:
            raise InvalidApiKey()
        if rules_expired(key.rules):
            raise ApiKeyExpired(f"This API key expired at {key.rules.expires_at.isoformat()}.")
        admin.api_key = key
        return admin, key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
