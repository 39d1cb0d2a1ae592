"""The browsable API's forms: a POST-only endpoint opened in a browser shows its form, pre-filled with an example
body, instead of a 405 page with an empty box."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework.exceptions import APIException
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.request import Request
from rest_framework.response import Response

if TYPE_CHECKING:
    from django import forms
    from rest_framework.views import APIView

    _ViewBase = APIView
else:
    _ViewBase = object


class ExampleBrowsableAPIRenderer(BrowsableAPIRenderer):
    """DRF's browsable API, with the raw POST (or PATCH) form holding the view's `request_example`: DRF fills it
    only for generic views, and then with every field blank (`"session_id": ""`), which is not a body that works."""

    def get_raw_data_form(self, data: Any, view: APIView, method: str, request: Request) -> forms.Form | None:
        form = super().get_raw_data_form(data, view, method, request)
        example = getattr(view, "request_example", None)
        if form is not None and method in ("POST", "PATCH") and example is not None:
            form.fields["_content"].initial = json.dumps(_example_after(example, request), indent=4)
        return form


# Fields the next request from the same form most likely repeats (the conversation one continues).
KEPT_AFTER_SENDING = ("session_id",)


def _example_after(example: dict[str, Any], request: Request) -> dict[str, Any]:
    """The example, with the values of KEPT_AFTER_SENDING that the request just sent from the form."""
    if request.method not in ("POST", "PATCH"):
        return example
    try:
        sent = request.data
    except APIException:  # a body that did not parse has been answered with its error; the page keeps the example
        return example
    if not isinstance(sent, dict):
        return example
    kept = {name: sent[name] for name in KEPT_AFTER_SENDING if name in example and isinstance(sent.get(name), str)}
    return {**example, **kept}


class FormPageOnBrowserGet(_ViewBase):
    """For a POST-only view: a browser's GET gets the page with the POST form (200) rather than a 405 page.
    Other clients still get 405, with `Allow` unchanged: GET is no part of the API or of its schema."""

    request_example: dict[str, Any] | None = None

    def http_method_not_allowed(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if request.method == "GET" and isinstance(getattr(request, "accepted_renderer", None), BrowsableAPIRenderer):
            return Response({"detail": "This endpoint takes a POST: edit the example in the form below and send it."})
        return super().http_method_not_allowed(request, *args, **kwargs)


def service_title(request: HttpRequest) -> dict[str, str]:
    """Template context: the service's name, for the browsable API's pages and its login box."""
    return {"service_title": settings.SPECTACULAR_SETTINGS["TITLE"]}
