"""The OTLP encoding of a batch of spans, built in place: the same message as the exporter's own `encode_spans`
(tests/test_tracing.py compares them), at about half its CPU.

The OTLP exporter's encoder builds each attribute as a message of its own, then copies it into the span's, the span
into its scope's, the scope into the request: with the Redis instrumentation's seven attributes per command, that
encoding was the largest part of a traced chat's CPU after the SDK's locks (docs/performance.md, Tracing). Here each
part is added where it belongs, once. Scalar attributes (all this service's spans have) are written directly;
anything else, events and links go through the library's own functions."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.exporter.otlp.proto.common._internal import (
    _encode_attributes,
    _encode_instrumentation_scope,
    _encode_key_value,
)
from opentelemetry.exporter.otlp.proto.common._internal import trace_encoder as library
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

_logger = logging.getLogger(library.__name__)
_SCALARS = (str, int, bool, float)


def encode_spans(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    """`spans` as an OTLP export request, grouped by resource and then scope in the order they first appear."""
    request = ExportTraceServiceRequest()
    groups: dict[Any, tuple[Any, dict[Any, Any]]] = {}
    for sdk_span in spans:
        resource = sdk_span.resource
        group = groups.get(resource)
        if group is None:
            resource_spans = request.resource_spans.add()
            resource_spans.resource.SetInParent()
            resource_spans.resource.attributes.extend(_encode_attributes(resource.attributes))
            if resource.schema_url:
                resource_spans.schema_url = resource.schema_url
            group = groups[resource] = (resource_spans, {})
        scope = sdk_span.instrumentation_scope or None
        scope_spans = group[1].get(scope)
        if scope_spans is None:
            scope_spans = group[0].scope_spans.add()
            scope_spans.scope.CopyFrom(_encode_instrumentation_scope(scope))
            if scope is not None and scope.schema_url:
                scope_spans.schema_url = scope.schema_url
            group[1][scope] = scope_spans
        _encode_span(scope_spans.spans.add(), sdk_span)
    return request


def _encode_span(span: Any, sdk_span: ReadableSpan) -> None:
    context = sdk_span.get_span_context()
    span.trace_id = context.trace_id.to_bytes(16, "big")
    span.span_id = context.span_id.to_bytes(8, "big")
    if context.trace_state is not None:
        span.trace_state = ",".join([f"{key}={value}" for key, value in context.trace_state.items()])
    parent = sdk_span.parent
    if parent:
        span.parent_span_id = parent.span_id.to_bytes(8, "big")
    span.name = sdk_span.name
    span.kind = library._SPAN_KIND_MAP[sdk_span.kind]
    if sdk_span.start_time is not None:
        span.start_time_unix_nano = sdk_span.start_time
    if sdk_span.end_time is not None:
        span.end_time_unix_nano = sdk_span.end_time
    _encode_attributes_into(span.attributes, sdk_span.attributes)
    if sdk_span.events:
        span.events.extend(library._encode_events(sdk_span.events))
    if sdk_span.links:
        span.links.extend(library._encode_links(sdk_span.links))
    status = sdk_span.status
    if status is not None:
        span.status.SetInParent()
        span.status.code = status.status_code.value
        if status.description:
            span.status.message = status.description
    span.dropped_attributes_count = sdk_span.dropped_attributes
    span.dropped_events_count = sdk_span.dropped_events
    span.dropped_links_count = sdk_span.dropped_links
    span.flags = library._span_flags(parent)


def _encode_attributes_into(pairs: Any, attributes: Any) -> None:
    """As the library's `_encode_attributes`: a value it cannot encode is logged and left out."""
    if not attributes:
        return
    for key, value in attributes.items():
        kind = type(value)
        if kind not in _SCALARS:
            try:
                pairs.append(_encode_key_value(key, value))
            except Exception as error:
                _logger.exception("Failed to encode key %s: %s", key, error)
            continue
        pair = pairs.add()
        pair.key = key
        try:
            if kind is str:
                pair.value.string_value = value
            elif kind is int:
                pair.value.int_value = value
            elif kind is bool:
                pair.value.bool_value = value
            else:
                pair.value.double_value = value
        except Exception as error:  # a str that is not UTF-8, an int over 64 bits
            del pairs[-1]
            _logger.exception("Failed to encode key %s: %s", key, error)
