"""Issuing and refreshing JWTs. Every token carries `sid`, the login session that keeps it valid."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import jwt
from django.core.signals import setting_changed
from django.dispatch import receiver
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import ExpiredTokenError, InvalidToken, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken, Token

from accounts.login_sessions import login_session_create, login_session_delete, login_session_touch
from accounts.models import AdminUser
from core.shortcuts import access_token_from_claims
from core.store_marker import store_lost_after

SESSION_CLAIM = "sid"


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    session_id: str


class TokenRevoked(AuthenticationFailed):
    default_detail = "Token has been revoked."
    default_code = "token_revoked"


class CredentialsChanged(AuthenticationFailed):
    default_detail = "This admin's credentials changed (or it was deleted) during the login; log in again."
    default_code = "credentials_changed"


class TokenExpired(AuthenticationFailed):
    """A genuine token past its `exp` (the signature is checked first), told apart from garbage so that a client
    knows to refresh rather than to log in."""

    default_detail = "The token has expired: get a new access token from POST /admin/refresh, or log in again."
    default_code = "token_expired"


# The claims of access tokens this process has verified, by the tokens' exact bytes. A client sends the same token
# for up to an hour: a token seen before skips PyJWT's decoding and the signature, issuer, audience and type checks,
# which give the same answer for the same bytes (core/shortcuts.py). Its `exp` is checked on every use (an expired
# one takes the full path, and its 401), and its login session in Redis on every request (live_session_of), so
# revocation is as immediate as without it. Bounded: emptied when full.
_VERIFIED_MAX = 1024
_verified: dict[bytes, dict[str, Any]] = {}


def access_token_decode(raw: bytes) -> AccessToken:
    """The validated access token; raises TokenExpired for an expired one, TokenError for anything else."""
    claims = _verified.get(raw)
    if claims is not None and claims["exp"] > time.time():
        return access_token_from_claims(raw, claims)
    try:
        token = AccessToken(raw)  # type: ignore[arg-type]
    except ExpiredTokenError:
        raise TokenExpired() from None
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified[raw] = dict(token.payload)
    return token


def token_invalid_detail(raw: bytes | str, kind: Literal["access", "refresh"]) -> str:
    """What is wrong with a token SimpleJWT refused (for a reason other than its age), in words a client can act
    on. The claims are read unverified, only to explain the refusal."""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    try:
        header = jwt.get_unverified_header(text)
        claims = jwt.decode(text, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return (
            f"The {kind} token is malformed: a token is three base64url parts separated by dots, exactly as "
            "POST /admin/login returned it (was it cut short or wrapped when copied?)."
        )
    token_type = claims.get(api_settings.TOKEN_TYPE_CLAIM)
    if token_type == "refresh" and kind == "access":
        return (
            "This is a refresh token: send it to POST /admin/refresh for an access token, and send that "
            "access token as `Authorization: Bearer <access_token>`."
        )
    if token_type == "access" and kind == "refresh":
        return "This is an access token: POST /admin/refresh takes the refresh_token that login returned."
    if header.get("alg") != api_settings.ALGORITHM:
        algorithm = header.get("alg")
        shown = algorithm if isinstance(algorithm, str) and algorithm.isalnum() and len(algorithm) <= 10 else "?"
        return f"The {kind} token is signed with {shown}, not {api_settings.ALGORITHM}: it was not issued here."
    if claims.get("iss") != api_settings.ISSUER or claims.get("aud") != api_settings.AUDIENCE:
        return f"The {kind} token was issued for another service (its iss or aud claim differs); log in here."
    if not token_type or not claims.get(api_settings.JTI_CLAIM):
        return f"The {kind} token lacks the claims this service's tokens carry; log in for a new one."
    return (
        f"The {kind} token's signature does not match: it was altered, issued by another server, or this "
        "service's JWT_SIGNING_KEY (or SECRET_KEY) changed since it was issued; log in again."
    )


@receiver(setting_changed)
def _forget_verified_tokens(*, setting: str, **kwargs: Any) -> None:
    """Another signing key or issuer (tests change them) must verify every token again."""
    if setting in ("SIMPLE_JWT", "SECRET_KEY"):
        _verified.clear()


def access_lifetime_seconds() -> int:
    return int(api_settings.ACCESS_TOKEN_LIFETIME.total_seconds())


def login_lifetime() -> timedelta:
    """How long a login session lives: its refresh token's lifetime."""
    return api_settings.REFRESH_TOKEN_LIFETIME


def tokens_issue(admin: AdminUser) -> IssuedTokens:
    """Tokens for `admin`, as read before its password was checked; raises CredentialsChanged when that admin
    was deleted, re-passworded or had its tokens revoked since."""
    lifetime = login_lifetime()
    sid = login_session_create(
        admin_id=admin.id, username=admin.username, auth_epoch=admin.auth_epoch, lifetime=lifetime
    )
    if sid is None:
        raise CredentialsChanged()
    refresh = RefreshToken.for_user(admin)
    refresh[SESSION_CLAIM] = sid
    return IssuedTokens(
        access_token=str(refresh.access_token),
        refresh_token=str(refresh),
        expires_in=access_lifetime_seconds(),
        refresh_expires_in=int(lifetime.total_seconds()),
        session_id=sid,
    )


def live_session_of(token: Token) -> dict[str, str]:
    """The login session behind a validated token; raises TokenRevoked once it is gone."""
    sid, subject = token.get(SESSION_CLAIM), token.get(api_settings.USER_ID_CLAIM)
    if not sid or not subject:
        raise InvalidToken("Token is missing required claims.")
    session = login_session_touch(sid=str(sid), admin_id=str(subject))
    if session is None:
        if store_lost_after(float(token.get("iat", 0))):
            raise TokenRevoked(
                "Token has been revoked: Redis lost its data (it restarted without persistence, or was flushed) "
                "after this token was issued; log in again."
            )
        raise TokenRevoked()
    return session


def refresh_token_decode(raw: str) -> RefreshToken:
    try:
        return RefreshToken(raw)  # type: ignore[arg-type]
    except ExpiredTokenError:
        raise TokenExpired("The refresh token has expired; log in again.") from None
    except TokenError:
        raise InvalidToken(token_invalid_detail(raw, "refresh")) from None


def tokens_refresh(raw_refresh: str) -> tuple[str, int]:
    refresh = refresh_token_decode(raw_refresh)
    live_session_of(refresh)
    return str(refresh.access_token), access_lifetime_seconds()


def tokens_revoke_refresh(*, admin_id: str, raw_refresh: str) -> None:
    """Revokes the login behind a refresh token, if it belongs to `admin_id`."""
    refresh = refresh_token_decode(raw_refresh)
    if str(refresh.get(api_settings.USER_ID_CLAIM)) != admin_id:
        raise InvalidToken("This refresh token belongs to another admin.")
    login_session_delete(admin_id=admin_id, sid=str(refresh.get(SESSION_CLAIM, "")))
