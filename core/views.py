"""The base of the chat paths' views, and a middleware for every other DRF view: their request, view and response
freed by reference counting once the answer is made, rather than by the garbage collector.

DRF's Request holds its view (`parser_context["view"]`) and itself (`parser_context["request"]`), the view holds the
request and the response, and a DRF Response holds the view and itself (`renderer_context`): cycles that only the
collector frees. A chat outlives the collector's young generations (a stream for as long as its reply, a reply
waited for as long as the upstream takes), so each chat's request, view, parsers, renderers and authenticators
reached the oldest generation, whose full collections walked them all, each stopping a worker's loop for 200-650 ms
with a thousand chats in flight (docs/performance.md).

Every other DRF view answering a DRF Response (health probes, session lists, logins: `ViewCyclesEndMiddleware`) has
the same cycles, and more: a view holds bound methods of its own (Django's `View.setup` gives a view with `get` and no
`head` a `head` that is its bound `get`; a DRF viewset, its actions by method). Left to the collector, each such
request left 55-230 objects of garbage for its collections to find."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.template.response import SimpleTemplateResponse
from rest_framework.request import Request
from rest_framework.views import APIView


class ChatAPIView(APIView):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = super().dispatch(request, *args, **kwargs)
        if isinstance(response, SimpleTemplateResponse) and not response.is_rendered:
            # Rendering (the browsable API's page among them) may still parse the body, and reads the context. The
            # callback holds the request, not the view, which would make a cycle of its own through the response.
            response.add_post_render_callback(partial(end_view_cycles, self.request))
        else:
            end_view_cycles(self.request, response)  # a stream's body was parsed before its answer began
        return response


def end_view_cycles(request: HttpRequest | Request, response: HttpResponseBase) -> None:
    """Ends the cycles through the view once nothing parses or renders any more."""
    if isinstance(request, Request):
        request.parser_context = {}
    if isinstance(response, SimpleTemplateResponse):
        view = response.renderer_context.get("view") if response.renderer_context else None  # type: ignore[attr-defined]
        if view is not None:
            _view_own_methods_drop(view)
        response.renderer_context = {}  # type: ignore[attr-defined]  # DRF's Response


def _view_own_methods_drop(view: object) -> None:
    """The view's bound methods that it holds itself: Django's `head` (View.setup), a viewset's actions (`get` as
    `list`, ...)."""
    attributes = view.__dict__
    for name in [name for name, value in attributes.items() if getattr(value, "__self__", None) is view]:
        del attributes[name]


class ViewCyclesEndMiddleware:
    """The innermost middleware: ends the cycles of any DRF view once its response is rendered (a chat's view ends its
    own as it answers, since a stream outlives the middleware)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        context = getattr(response, "renderer_context", None)
        if context:  # a DRF Response, rendered by now (Django renders it before the middleware sees it)
            end_view_cycles(context.get("request"), response)
        return response
