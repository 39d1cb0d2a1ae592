"""A console sign-in: a login session (accounts.login_sessions, the kind a JWT names) whose id the Django session
keeps, behind an HttpOnly, SameSite cookie. Every console request checks that login in Redis, so logout, a
credential change, `revoketokens` and the admin's deletion end an open console at its next request, on every
instance."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import authenticate
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request

from accounts import selectors, services
from accounts.models import AdminUser

SESSION_KEY = "console"


def console_sign_in(request: HttpRequest, *, username: str, password: str) -> AdminUser | None:
    """Checks the password as `POST /admin/login` does (the same backend: its throttling and bcrypt's limit) and
    starts a login session for the browser; None for a wrong username or password."""
    admin = authenticate(request, username=username, password=password)
    if admin is None:
        return None
    sid, lifetime = services.browser_login_start(admin)
    request.session.cycle_key()  # no session id chosen before the sign-in survives it
    request.session[SESSION_KEY] = {"admin_id": admin.id, "sid": sid}
    request.session.set_expiry(lifetime)
    return admin


def console_admin(request: HttpRequest) -> AdminUser | None:
    """The signed-in admin while its login session lives; else None, and the browser's session is forgotten."""
    signed = request.session.get(SESSION_KEY)
    if not isinstance(signed, dict):
        return None
    admin = selectors.browser_login_admin(admin_id=str(signed.get("admin_id")), sid=str(signed.get("sid")))
    if admin is None:
        request.session.flush()
    return admin


def console_sign_out(request: HttpRequest) -> None:
    """Ends the browser's login; recorded in the audit log as `POST /admin/logout` is, when that login was live."""
    admin = console_admin(request)
    if admin is not None:
        signed = request.session[SESSION_KEY]
        services.admin_logout(admin_id=admin.id, login_session_id=str(signed.get("sid")))
        services.action_audit("logout", request=request, admin=admin)
    request.session.flush()


def signed_in(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A page for signed-in admins (the view gets the admin after the request); others go to the sign-in page."""

    @wraps(view)
    def page(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        admin = console_admin(request)
        if admin is None:
            target = request.get_full_path() if request.method == "GET" else reverse("console:chat")
            return redirect(f"{reverse('console:sign-in')}?{urlencode({'next': target})}")
        return view(request, admin, *args, **kwargs)

    return page


class ConsoleAuthentication(SessionAuthentication):
    """The console's sign-in for its streaming endpoints, with Django's CSRF check on every request."""

    def authenticate(self, request: Request) -> tuple[AdminUser, None] | None:
        admin = console_admin(request._request)
        if admin is None:
            return None
        self.enforce_csrf(request)
        return admin, None

    def authenticate_header(self, request: Request) -> str:
        # A 401 (not DRF's 403) tells the page to sign in again.
        return 'Session realm="console"'
