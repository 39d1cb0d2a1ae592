"""Request body parsers."""

from __future__ import annotations

import io
import re
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError, UnsupportedMediaType

# JSON's escape of a UTF-16 surrogate; a string holding one alone cannot be encoded as UTF-8 again.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, but a body nested deeper than Python's parser can recurse (100,000 `[`), or a string
    holding half of a surrogate pair (`"\\ud800"`), which no JSON could be made of again for the upstream, is the
    client's 400, not a 500 with a traceback."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read()
        try:
            data = super().parse(io.BytesIO(raw), media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.", code="json_too_deep") from None
        # Only a body with an escaped surrogate has its strings looked at: a lone half, or a whole pair (an emoji
        # escaped as "\ud83d\ude00", as Python's json sends it), which the walk lets through.
        if SURROGATE_ESCAPE.search(raw):
            _refuse_lone_surrogates(data)
        return data


def _refuse_lone_surrogates(value: Any) -> None:
    """A pair of escapes is decoded into one character; a surrogate left in a string was sent alone."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            code_point = ord(value[exc.start])
            raise ParseError(
                f"JSON parse error - a lone surrogate (U+{code_point:X}) is not a character.", code="json_surrogate"
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_lone_surrogates(key)
            _refuse_lone_surrogates(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_lone_surrogates(item)


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
