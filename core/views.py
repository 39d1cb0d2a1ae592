"""A middleware for every DRF view, and the base of the chat paths' views for their streams: their request, view and
response freed by reference counting once the answer is made, rather than by the garbage collector.

DRF's Request holds its view (`parser_context["view"]`) and itself (`parser_context["request"]`), the view holds the
request and the response, and a DRF Response holds the view and itself (`renderer_context`): cycles that only the
collector frees. A chat outlives the collector's young generations (a stream for as long as its reply, a reply
waited for as long as the upstream takes), so each chat's request, view, parsers, renderers and authenticators
reached the oldest generation, whose full collections walked them all, each stopping a worker's loop for 200-650 ms
with a thousand chats in flight (docs/performance.md).

Every other DRF view answering a DRF Response (health probes, session lists, logins) has the same cycles, and more:
a view holds bound methods of its own (Django's `View.setup` gives a view with `get` and no `head` a `head` that is
its bound `get`; a DRF viewset, its actions by method). Left to the collector, each such request left 55-230 objects
of garbage for its collections to find."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from rest_framework.request import Request
from rest_framework.views import APIView


class ChatAPIView(APIView):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = super().dispatch(request, *args, **kwargs)
        if not hasattr(response, "renderer_context") and isinstance(self.request, Request):
            # A stream outlives the middleware below, and its body was parsed before its answer began.
            self.request.parser_context = {}
        return response


class ViewCyclesEndMiddleware:
    """The innermost middleware: ends the cycles of any DRF view answering a DRF Response, once it is rendered
    (Django renders it before the middleware sees it; nothing parses or renders any more)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        context = getattr(response, "renderer_context", None)
        if context:
            drf_request, view = context.get("request"), context.get("view")
            if isinstance(drf_request, Request):
                drf_request.parser_context = {}
            if view is not None:
                _view_own_methods_drop(view)
            response.renderer_context = {}  # type: ignore[attr-defined]  # DRF's Response
        return response


def _view_own_methods_drop(view: object) -> None:
    """The view's bound methods that it holds itself: Django's `head` (View.setup), a viewset's actions (`get` as
    `list`, ...)."""
    attributes = view.__dict__
    for name in [name for name, value in attributes.items() if getattr(value, "__self__", None) is view]:
        del attributes[name]
