from __future__ import annotations

from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.tokens import Token

from accounts.models import AdminUser
from accounts.tokens import live_session_of


class RedisJWTAuthentication(JWTAuthentication):
    """SimpleJWT's checks (signature, algorithm, `exp`, `iss`, `aud`, token type), then one Redis round trip
    to see that the token's login session is still live. No database lookup."""

    def get_user(self, validated_token: Token) -> AdminUser:
        session = live_session_of(validated_token)
        admin = AdminUser(id=session["admin_id"], username=session["username"])
        admin.login_session_id = session["id"]  # type: ignore[attr-defined]
        return admin
