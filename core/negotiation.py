from __future__ import annotations

from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class IgnoreAccept(BaseContentNegotiation):
    """For views whose answer has one format whatever the client asks for (an event stream, Prometheus text):
    the view's first parser and renderer, never a 406."""

    def select_parser(self, request: Request, parsers: list[BaseParser]) -> BaseParser:
        return parsers[0]

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type


class ContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, answering at once for what most clients send (no Accept header, `*/*`, or exactly the
    view's first renderer's type) with the choice DRF would make: that renderer and its type. Parsing the header
    and matching it against every renderer was about 0.1M of a chat's 5.9M instructions."""

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        accept = request.META.get("HTTP_ACCEPT", "*/*")
        override = self.settings.URL_FORMAT_OVERRIDE
        if (
            renderers
            and accept in ("*/*", renderers[0].media_type)
            and not format_suffix
            and not (override and request.query_params.get(override))
        ):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
