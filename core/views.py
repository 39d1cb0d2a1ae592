"""The base of the chat paths' views: DRF's APIView, whose request, view and response are freed by reference
counting once the answer is made, rather than by the garbage collector.

DRF's Request holds its view (`parser_context["view"]`) and itself (`parser_context["request"]`), the view holds the
request and the response, and a DRF Response holds the view and itself (`renderer_context`): cycles that only the
collector frees. A chat outlives the collector's young generations (a stream for as long as its reply, a reply
waited for as long as the upstream takes), so each chat's request, view, parsers, renderers and authenticators
reached the oldest generation, whose full collections walked them all, each stopping a worker's loop for 200-650 ms
with a thousand chats in flight (docs/performance.md)."""

from __future__ import annotations

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
        response.renderer_context = {}  # type: ignore[attr-defined]  # DRF's Response
