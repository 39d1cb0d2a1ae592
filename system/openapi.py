"""The OpenAPI document, generated once per process and kept as bytes: generating it costs far more CPU than a chat,
and what it describes changes only with a deploy."""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from functools import cache

from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.settings import spectacular_settings


@dataclass(frozen=True)
class OpenApiDocument:
    body: bytes
    gzipped: bytes


_generating = threading.Lock()


def openapi_document() -> OpenApiDocument:
    """The document as JSON, encoded once: the first call generates it while the calls that arrive meanwhile wait
    for it, so that two generations never run at once."""
    with _generating:
        return _generated()


@cache
def _generated() -> OpenApiDocument:
    # Without a request, so that what the first client sent (its Host, its headers) cannot shape the document.
    schema = spectacular_settings.DEFAULT_GENERATOR_CLASS().get_schema(request=None, public=True)
    body = OpenApiJsonRenderer().render(schema)
    return OpenApiDocument(body=body, gzipped=gzip.compress(body, mtime=0))
