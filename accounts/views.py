from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenObtainPairView

from accounts import selectors, serializers, services
from accounts.audit_views import audited, changed_fields, refresh_token_admin, url_argument
from accounts.authentication import request_login_session_id
from accounts.tokens import tokens_refresh
from core.browsable import FormPageOnBrowserGet
from core.schema import error_responses

TAG = "admin"
LOGIN_EXAMPLE = {"username": "admin", "password": "admin123"}
REFRESH_EXAMPLE = {"refresh_token": "YOUR_REFRESH_TOKEN"}
# The browser form's placeholders cannot change anything if sent unedited (a wrong current password is a 400).
CHANGE_CREDENTIALS_FORM = {"new_password": "YOUR_NEW_PASSWORD", "current_password": "YOUR_CURRENT_PASSWORD"}


@extend_schema(
    tags=[TAG],
    summary="Log in and receive a JWT",
    description=(
        "Checks the username and password and answers an access token (send it as `Authorization: Bearer ...`; "
        "in Swagger UI press **Authorize** and paste it) and a refresh token for `POST /admin/refresh`. Failed "
        "logins are throttled per client address and per username from that address (429 with Retry-After)."
    ),
    request=serializers.LoginRequestSerializer,
    responses={200: serializers.LoginResponseSerializer, **error_responses(400, 401, 429, 503)},
    examples=[OpenApiExample("Default admin", value=LOGIN_EXAMPLE, request_only=True)],
)
class LoginView(FormPageOnBrowserGet, TokenObtainPairView):
    name = "Log in"
    request_example = LOGIN_EXAMPLE

    serializer_class = serializers.LoginSerializer


@extend_schema(
    tags=[TAG],
    summary="Get a new access token with a refresh token",
    request=serializers.RefreshRequestSerializer,
    responses={200: serializers.RefreshResponseSerializer, **error_responses(400, 401, 503)},
    examples=[OpenApiExample("A refresh token", value=REFRESH_EXAMPLE, request_only=True)],
)
class RefreshView(FormPageOnBrowserGet, APIView):
    name = "Refresh the access token"
    request_example = REFRESH_EXAMPLE

    authentication_classes = ()
    permission_classes = ()

    def get_authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'

    @audited("token.refreshed", subject=refresh_token_admin)
    def post(self, request: Request) -> Response:
        body = serializers.RefreshRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        access_token, expires_in = tokens_refresh(body.validated_data["refresh_token"])
        refreshed = {"access_token": access_token, "token_type": "bearer", "expires_in": expires_in}
        return Response(serializers.RefreshResponseSerializer(refreshed).data)


@extend_schema(
    tags=[TAG],
    summary="Log out: revoke this token (and a refresh token, if sent)",
    request=serializers.LogoutRequestSerializer,
    responses={200: serializers.MessageSerializer, **error_responses(400, 401, 503)},
)
class LogoutView(FormPageOnBrowserGet, APIView):
    name = "Log out"
    request_example = REFRESH_EXAMPLE

    @audited("logout")
    def post(self, request: Request) -> Response:
        body = serializers.LogoutRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.admin_logout(
            admin_id=request.user.id,
            login_session_id=request_login_session_id(request),
            refresh_token=body.validated_data.get("refresh_token"),
        )
        return Response(serializers.MessageSerializer({"message": "Logged out."}).data)


@extend_schema(
    tags=[TAG],
    summary="This admin's account information",
    responses={200: serializers.AdminInfoSerializer, **error_responses(401, 503)},
)
class AdminInfoView(APIView):
    name = "Admin info"

    def get(self, request: Request) -> Response:
        return Response(serializers.AdminInfoSerializer(selectors.admin_info(admin_id=request.user.id)).data)


@extend_schema(
    tags=[TAG],
    summary="Change username and/or password (revokes every token of this admin)",
    request=serializers.ChangeCredentialsSerializer,
    responses={200: serializers.ChangeCredentialsResponseSerializer, **error_responses(400, 401, 409, 503)},
    examples=[
        OpenApiExample(
            "Rename and re-password",
            value={"new_username": "newadmin", "new_password": "newsecurepass", "current_password": "admin123"},
            request_only=True,
        )
    ],
)
class ChangeCredentialsView(FormPageOnBrowserGet, APIView):
    name = "Change credentials"
    request_example = CHANGE_CREDENTIALS_FORM

    @audited("credentials.changed", detail=changed_fields)
    def post(self, request: Request) -> Response:
        body = serializers.ChangeCredentialsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        admin = services.admin_change_credentials(
            admin_id=request.user.id,
            current_password=body.validated_data.get("current_password"),
            recent_login=selectors.login_is_recent(
                admin_id=request.user.id, session_id=request_login_session_id(request)
            ),
            new_username=body.validated_data.get("new_username"),
            new_password=body.validated_data.get("new_password"),
        )
        changed = {
            "message": "Credentials updated. Every token of this admin was revoked; log in again.",
            "username": admin.username,
        }
        return Response(serializers.ChangeCredentialsResponseSerializer(changed).data)


@extend_schema(
    tags=[TAG],
    summary="This admin's live login sessions",
    responses={200: serializers.LoginSessionListSerializer, **error_responses(401, 503)},
)
class LoginSessionListView(APIView):
    name = "Login sessions"

    def get(self, request: Request) -> Response:
        sessions = selectors.login_session_list(
            admin_id=request.user.id, current_session_id=request_login_session_id(request)
        )
        return Response(serializers.LoginSessionListSerializer({"count": len(sessions), "sessions": sessions}).data)


@extend_schema(
    tags=[TAG],
    summary="Revoke one login session",
    responses={204: None, **error_responses(401, 404, 503)},
)
class LoginSessionDetailView(APIView):
    name = "Login session"

    @audited("login_session.revoked", target=url_argument("session_id"))
    def delete(self, request: Request, session_id: str) -> Response:
        services.login_session_revoke(admin_id=request.user.id, session_id=session_id)
        return Response(status=204)
