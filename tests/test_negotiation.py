"""core.negotiation.ContentNegotiation answers common Accept headers without parsing them; it must choose exactly
what DRF's own negotiation chooses, for those and for every other header."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from conversations.views import ChatView
from core.negotiation import ContentNegotiation

ACCEPT_HEADERS = [
    None,
    "*/*",
    "application/json",
    "text/event-stream",
    "text/html",
    "application/json; indent=4",
    "text/html;q=0.9, */*;q=0.8",
    "application/*",
    "",
    "application/xml",
]


def choice(negotiation, accept: str | None, renderers) -> tuple[type, str] | str:
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().post("/chat/", **headers))
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers)
    except NotAcceptable:
        return "406"
    return type(renderer), media_type


@pytest.mark.parametrize("accept", ACCEPT_HEADERS)
def test_it_chooses_what_drf_chooses(accept):
    renderers = [renderer() for renderer in ChatView.renderer_classes]

    assert choice(ContentNegotiation(), accept, renderers) == choice(DefaultContentNegotiation(), accept, renderers)


def test_it_is_the_negotiation_of_every_view_that_does_not_choose_its_own():
    assert ChatView().get_content_negotiator().__class__ is ContentNegotiation
