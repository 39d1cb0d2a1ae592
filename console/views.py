"""The console's pages: sign-in, chat (sessions, export, import, delete), API keys, status. Server-rendered; the
chat page's script streams replies from console/api.py. Views parse and render; what they read and change goes
through the apps' selectors and services."""

from __future__ import annotations

import json
import math
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework.exceptions import AuthenticationFailed

from accounts import selectors as account_selectors
from accounts import services as account_services
from accounts.exceptions import ApiKeyNotFound
from accounts.models import AdminUser
from accounts.serializers import ApiKeyCreateRequestSerializer, ApiKeyUpdateRequestSerializer, budget_of, rules_of
from console.auth import console_admin, console_sign_in, console_sign_out, signed_in
from console.forms import AuditFilterForm, ImportForm, SignInForm, UsageRangeForm, key_change_data
from console.security import console_page
from console.usage import NO_KEY, usage_figures
from conversations import selectors as chat_selectors
from conversations import services as chat_services
from conversations.export_serializers import SessionExportSerializer
from core.exceptions import ServiceError
from system.selectors import console_status

SIDEBAR_PAGE = 50
AUDIT_PAGE = 200


def _offset(request: HttpRequest) -> int:
    raw = request.GET.get("from", "0")
    return min(int(raw), 100_000) if raw.isdigit() else 0


def _next_page(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False)
    return target if safe and target.startswith("/console/") else reverse("console:chat")


@console_page
@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    if request.method == "GET" and console_admin(request) is not None:
        return redirect(_next_page(request))
    form = SignInForm(request.POST or None)
    status, retry_after = 200, None
    if request.method == "POST" and form.is_valid():
        try:
            admin = console_sign_in(request, **form.cleaned_data)
        except ServiceError as exc:  # a throttled sign-in: the form again, with when to retry
            form.add_error(None, exc.detail)
            status, retry_after = exc.status_code, exc.retry_after
        except AuthenticationFailed as exc:  # the credentials changed while the password was checked
            form.add_error(None, str(exc.detail))
            status = 401
        else:
            if admin is not None:
                return redirect(_next_page(request))
            form.add_error(None, "Invalid username or password.")
            status = 401
    elif request.method == "POST":
        status = 400
    response = render(request, "console/sign_in.html", {"form": form, "next": _next_page(request)}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


@console_page
@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    console_sign_out(request)
    return redirect(reverse("console:sign-in"))


@console_page
@require_GET
@signed_in
def chat(request: HttpRequest, admin: AdminUser, session_id: str | None = None) -> HttpResponse:
    detail = None
    if session_id is not None:
        detail = chat_selectors.session_detail(admin_id=admin.id, session_id=session_id)
        if detail is None:
            raise Http404("No such session.")
    offset = _offset(request)
    # A page of the sidebar at a time: its cost is the page's, however many sessions the admin has.
    sessions = chat_selectors.session_list(admin_id=admin.id, offset=offset, limit=SIDEBAR_PAGE + 1)
    context = {
        "admin": admin,
        "page": "chat",
        "sessions": sessions[:SIDEBAR_PAGE],
        # Joined in the template: reversing a URL per session would cost more than the rest of the page.
        "session_base": reverse("console:chat") + "chat/",
        "current": session_id,
        "older": offset + SIDEBAR_PAGE if len(sessions) > SIDEBAR_PAGE else None,
        "newer": max(0, offset - SIDEBAR_PAGE) if offset else None,
        "session": detail,
        "messages": [m for m in (detail or {}).get("messages", []) if m["role"] in ("user", "assistant")],
        "models": chat_selectors.chat_models(),
        "import_form": ImportForm(),
    }
    return render(request, "console/chat.html", context)


@console_page
@require_POST
@signed_in
def session_delete(request: HttpRequest, admin: AdminUser, session_id: str) -> HttpResponse:
    deleted = chat_services.session_delete(admin=admin, session_id=session_id)
    outcome: dict[str, Any] = {} if deleted else {"outcome": "failure", "detail": "not_found"}
    account_services.action_audit("session.deleted", request=request, admin=admin, target=session_id, **outcome)
    if not deleted:
        raise Http404("No such session.")
    return redirect(reverse("console:chat"))


@console_page
@require_GET
@signed_in
def session_export(request: HttpRequest, admin: AdminUser, session_id: str) -> HttpResponse:
    document = chat_selectors.session_export(admin_id=admin.id, session_id=session_id)
    if document is None:
        raise Http404("No such session.")
    response = JsonResponse(document, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="{session_id}.json"'
    return response


@console_page
@require_POST
@signed_in
def session_import(request: HttpRequest, admin: AdminUser) -> HttpResponse:
    form = ImportForm(request.POST, request.FILES)
    problem = "Choose an exported session file."
    if form.is_valid():
        try:
            document: Any = json.loads(form.cleaned_data["file"].read())
        except ValueError:
            document, problem = None, "The file is not JSON."
        body = SessionExportSerializer(data=document) if isinstance(document, dict) else None
        if body is not None and body.is_valid():
            try:
                session_id = chat_services.session_import(admin=admin, document=body.validated_data)
            except ServiceError as exc:
                problem = exc.detail
            else:
                account_services.action_audit("session.imported", request=request, admin=admin, target=session_id)
                return redirect(reverse("console:session", args=[session_id]))
        elif body is not None:
            problem = f"Not an exported session: {json.dumps(body.errors)}"
    context = {"admin": admin, "page": "chat", "detail": problem, "code": "invalid"}
    return render(request, "console/error.html", context, status=400)


def _keys_page(request: HttpRequest, admin: AdminUser, **extra: Any) -> HttpResponse:
    context = {
        "admin": admin,
        "page": "keys",
        "keys": account_selectors.api_keys_with_budgets(admin_id=admin.id),
        "periods": ("day", "month"),
        **extra,
    }
    return render(request, "console/keys.html", context, status=400 if extra.get("errors") else 200)


@console_page
@require_GET
@signed_in
def keys(request: HttpRequest, admin: AdminUser) -> HttpResponse:
    return _keys_page(request, admin)


@console_page
@require_POST
@signed_in
def key_create(request: HttpRequest, admin: AdminUser) -> HttpResponse:
    data: dict[str, Any] = {"name": request.POST.get("name", "")}
    if request.POST.get("budget_tokens"):
        data["budget"] = {"tokens": request.POST["budget_tokens"], "period": request.POST.get("budget_period")}
    body = ApiKeyCreateRequestSerializer(data=data)
    if not body.is_valid():
        return _keys_page(request, admin, errors=body.errors)
    budget = budget_of(body.validated_data.get("budget"))
    key, secret = account_services.api_key_create(admin_id=admin.id, name=body.validated_data["name"], budget=budget)
    account_services.action_audit("api_key.created", request=request, admin=admin, target=key.id)
    # The secret is on this answer only (never stored, never cached: console_page sends no-store).
    return _keys_page(request, admin, created=key, secret=secret)


@console_page
@require_http_methods(["GET", "POST"])
@signed_in
def key_revoke(request: HttpRequest, admin: AdminUser, key_id: str) -> HttpResponse:
    key = next((k for k in account_selectors.api_key_list(admin_id=admin.id) if k.id == key_id), None)
    if key is None:
        raise Http404("No such API key.")
    if request.method == "GET":
        return render(request, "console/key_revoke.html", {"admin": admin, "page": "keys", "key": key})
    try:
        account_services.api_key_revoke(key_id=key_id, admin_id=admin.id)
    except ApiKeyNotFound:
        raise Http404("No such API key.") from None
    account_services.action_audit("api_key.revoked", request=request, admin=admin, target=key_id)
    return redirect(reverse("console:keys"))


@console_page
@require_http_methods(["GET", "POST"])
@signed_in
def key_change(request: HttpRequest, admin: AdminUser, key_id: str) -> HttpResponse:
    key = next((k for k in account_selectors.api_keys_with_budgets(admin_id=admin.id) if k["id"] == key_id), None)
    if key is None:
        raise Http404("No such API key.")
    errors = None
    if request.method == "POST":
        body = ApiKeyUpdateRequestSerializer(data=key_change_data(request.POST))
        if body.is_valid():
            data = body.validated_data
            try:  # as PATCH /admin/api-keys/{id} does
                current = account_services.api_key_of(key_id=key_id, admin_id=admin.id)
                account_services.api_key_budget_set(key_id=key_id, admin_id=admin.id, budget=budget_of(data["budget"]))
                account_services.api_key_rules_set(
                    key_id=key_id, admin_id=admin.id, rules=rules_of(data, current.rules)
                )
            except ApiKeyNotFound:
                raise Http404("No such API key.") from None
            changed = ",".join(sorted(data))
            account_services.action_audit(
                "api_key.changed", request=request, admin=admin, target=key_id, detail=changed
            )
            return redirect(reverse("console:keys"))
        errors = body.errors
    context = {
        "admin": admin,
        "page": "keys",
        "key": key,
        "errors": errors,
        "periods": ("day", "month"),
        "models": chat_selectors.chat_models(),
    }
    return render(request, "console/key_change.html", context, status=400 if errors else 200)


@console_page
@require_GET
@signed_in
def status(request: HttpRequest, admin: AdminUser) -> HttpResponse:
    context = {"admin": admin, "page": "status", **console_status(admin_id=admin.id)}
    return render(request, "console/status.html", context)


@console_page
@require_GET
@signed_in
def audit(request: HttpRequest, admin: AdminUser) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    entries = []
    if form.is_valid():
        entries = account_selectors.audit_log(admin_id=admin.id, limit=AUDIT_PAGE, **form.query())
    context = {"admin": admin, "page": "audit", "form": form, "entries": entries, "most": AUDIT_PAGE}
    return render(request, "console/audit.html", context, status=200 if form.is_valid() else 400)


@console_page
@require_GET
@signed_in
def usage(request: HttpRequest, admin: AdminUser) -> HttpResponse:
    form = UsageRangeForm(request.GET)
    keys = account_selectors.api_keys_with_budgets(admin_id=admin.id)
    context: dict[str, Any] = {
        "admin": admin,
        "page": "usage",
        "form": form,
        "keys": keys,
        "admin_budget": account_selectors.admin_budget(admin_id=admin.id),
        "retention_days": settings.USAGE_RETENTION_DAYS,
    }
    if not form.is_valid():
        return render(request, "console/usage.html", context, status=400)
    since, until = form.cleaned_data["since"], form.cleaned_data["until"]
    counts = chat_selectors.usage_per_day_model_and_key(admin_id=admin.id, start=since, end=until)
    names = {key["id"]: key["name"] or key["prefix"] for key in keys}

    def key_name(key_id: str) -> str:
        return names.get(key_id, f"revoked key {key_id}") if key_id else NO_KEY

    context |= {
        "form": UsageRangeForm(initial={"since": since, "until": until}),  # the range shown, defaults included
        "since": since,
        "until": until,
        "figures": usage_figures(counts, since=since, until=until, key_name=key_name),
    }
    return render(request, "console/usage.html", context)
