"""The base of the views that may answer with a stream (the chat paths): DRF's APIView, whose request and view are
freed by reference counting once the stream ends.

DRF's Request holds its view (`parser_context["view"]`) and itself (`parser_context["request"]`), and the view
holds the request: a cycle only the garbage collector frees. A stream outlives the collector's young generations,
so each stream's request, view, parsers, renderers and authenticators reached the oldest one, and a worker holding
a thousand streams ran a full collection, its loop stopped for 200-650 ms, every few seconds (docs/performance.md)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponseBase
from rest_framework.request import Request
from rest_framework.views import APIView


class StreamingAPIView(APIView):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = super().dispatch(request, *args, **kwargs)
        # A stream's body was parsed before its answer began, and no renderer reads it after: only the parsers
        # used the context. Other responses keep it, since the browsable API's renderer may parse the body later.
        if response.streaming and isinstance(self.request, Request):
            self.request.parser_context = {}
        return response
