"""What every console page is sent with: a Content-Security-Policy that runs only the service's own script and
style files (no inline script, style or event handler, no other origin), and no caching (an API key's secret is
on a page once)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers

from core.errors import as_service_error

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)


def secured(response: HttpResponse) -> HttpResponse:
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    add_never_cache_headers(response)
    return response


def console_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The page with its security headers; a failure the service answers on purpose (Redis down, a throttled
    sign-in) is shown as a page with its status and Retry-After rather than the API's JSON."""

    @wraps(view)
    def page(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            response = view(request, *args, **kwargs)
        except Http404 as exc:
            response = render(request, "console/error.html", {"detail": str(exc), "code": "not_found"}, status=404)
        except Exception as exc:
            error = as_service_error(exc)
            if error is None:
                raise
            response = render(
                request, "console/error.html", {"detail": error.detail, "code": error.code}, status=error.status_code
            )
            if error.retry_after is not None:
                response["Retry-After"] = str(max(1, round(error.retry_after)))
        return secured(response)

    return page
