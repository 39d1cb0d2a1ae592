"""Request body parsers."""

from __future__ import annotations

import io
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError, UnsupportedMediaType


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, but a body nested deeper than Python's parser can recurse (100,000 `[`) is the
    client's 400, not a 500 with a traceback."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.", code="json_too_deep") from None


class FormParser(parsers.FormParser):
    """A JSON body sent as a form (`curl -d '{...}'` without `-H 'Content-Type: application/json'`) is a 415 that
    says what to send, not a 400 saying that every field is missing."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read()
        if raw.lstrip()[:1] in (b"{", b"["):
            raise UnsupportedMediaType(
                media_type or "", detail="The body is JSON: send it with the header Content-Type: application/json."
            )
        return super().parse(io.BytesIO(raw), media_type, parser_context)
