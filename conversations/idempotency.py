"""Idempotent retries: a request with an `Idempotency-Key` header is answered once. A retry with the same key and
the same request gets the first answer again (`Idempotent-Replayed: true`) without a new turn; the same key with a
different request is a 422, and a retry while the first is still running a 409.

Keys belong to the admin, whichever credential it used, and live in Redis (conversations.idempotency_store), so
every worker and instance shares them. Only successful (2xx) answers are kept: an error changed nothing (a 4xx)
or may not happen again (a 5xx, 429, 409 session_busy), so it gives the key back and a retry makes a new attempt.
A claim is renewed with its turn while the turn runs, and expires soon after a process that died.

Views use it through `@idempotent(...)` on their handler, which then takes the request's `claim` (None without the
header): its turn keeps the claim (claim_leases), and a streamed answer passes its items through `recorded(claim,
...)`, which keeps the final reply as the JSON answer's body, the form replays are built from. A stream that is
not recorded gives its key back when the response is made: it is never replayed."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

import redis
from django.conf import settings
from django.http import HttpResponseBase, QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from conversations import idempotency_store
from conversations.limits import slot_hold_seconds
from core import metrics
from core.exceptions import ServiceError
from core.leases import Lease
from llm_provider.types import StreamDelta

logger = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_RULE = "1 to 255 printable ASCII characters."
# Replies are a few kilobytes; a larger answer is not kept (its key is given back) rather than filling Redis.
MAX_STORED_BYTES = 1024 * 1024
_KEY = re.compile(r"[\x20-\x7e]{1,255}")

T = TypeVar("T")

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    pattern=f"^{_KEY.pattern}$",
    description=(
        "Makes retrying safe: a retry with the same key and the same request gets the first successful answer "
        "again, with `Idempotent-Replayed: true`, and no new turn (a stream replays the stored reply as a stream). "
        "The same key with another request is a 422, a retry while the first still runs a 409. An error answer "
        "keeps nothing, so its retry is a new attempt. 1-255 printable ASCII characters; kept per admin for "
        "IDEMPOTENCY_TTL_SECONDS."
    ),
)


class IdempotencyKeyInUse(ServiceError):
    status_code = 409
    code = "idempotency_key_in_use"


class IdempotencyKeyReused(ServiceError):
    status_code = 422
    code = "idempotency_key_reused"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any


@dataclass
class Claim:
    """This request holds the key until it completes it with its answer or gives it back."""

    admin_id: str
    key: str
    token: str
    streamed: bool = False  # handed to recorded(), which completes or releases it when the stream ends

    def complete(self, status: int, body: Any) -> None:
        """Keeps the answer for retries. A failure to keep it is logged, never turned into an error: the turn is
        done and its answer on its way."""
        stored = json.dumps({"status": status, "body": body}, cls=JSONEncoder, separators=(",", ":"))
        if len(stored) > MAX_STORED_BYTES:
            logger.warning("idempotent answer of %d bytes not kept (over %d)", len(stored), MAX_STORED_BYTES)
            self.release()
            return
        try:
            kept = idempotency_store.complete(
                self.admin_id, self.key, token=self.token, response=stored, ttl=settings.IDEMPOTENCY_TTL_SECONDS
            )
        except redis.RedisError as exc:
            logger.warning("idempotent answer not kept: %s", type(exc).__name__)
            return
        if not kept:
            logger.warning("idempotent answer not kept: the claim expired before the answer was ready")

    def lease(self) -> Lease:
        key = idempotency_store.idempotency_key(self.admin_id, self.key)
        return Lease("hash-token", key, self.token, running_ms() / 1000, f"its {IDEMPOTENCY_HEADER}")

    def release(self) -> None:
        try:
            idempotency_store.release(self.admin_id, self.key, token=self.token)
        except redis.RedisError as exc:  # the claim expires on its own
            logger.warning("idempotency key not released: %s", type(exc).__name__)


def key_of(request: Request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not _KEY.fullmatch(key):
        raise ValidationError({IDEMPOTENCY_HEADER: [KEY_RULE]})
    return key


def claim_leases(claim: Claim | None) -> tuple[Lease, ...]:
    """What the request holds under its Idempotency-Key, for its turn to keep while it runs."""
    return () if claim is None else (claim.lease(),)


def request_fingerprint(request: Request, headers: tuple[str, ...] = ()) -> str:
    """What makes two requests the same: method, path, the body as parsed JSON (key order and spacing aside) and
    the named headers."""
    data = request.data
    if isinstance(data, QueryDict):
        data = {name: data.getlist(name) for name in data}
    named = {name.lower(): request.headers.get(name) for name in headers}
    canonical = json.dumps([request.method, request.path.rstrip("/"), data, named], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def running_ms() -> int:
    """How long a claim holds without an answer unless its turn renews it (claim_leases): as long as the admin's
    slot, with the wait for that session to spare."""
    return int((settings.CHAT_SESSION_WAIT_SECONDS + slot_hold_seconds()) * 1000)


def begin(admin_id: str, key: str, fingerprint: str) -> Claim | StoredResponse:
    """The claim of a first request, or the stored answer of an earlier one; 422 or 409 otherwise."""
    token = secrets.token_hex(16)
    held = idempotency_store.claim(admin_id, key, fingerprint=fingerprint, token=token, running_ms=running_ms())
    if held is None:
        return Claim(admin_id, key, token)
    if held.fingerprint != fingerprint:
        metrics.idempotent_request("mismatch")
        raise IdempotencyKeyReused(
            f"This {IDEMPOTENCY_HEADER} was used with a different request; send a new key for a new request."
        )
    if held.response is None:
        metrics.idempotent_request("in_progress")
        raise IdempotencyKeyInUse(
            f"The request with this {IDEMPOTENCY_HEADER} is still being answered; retry when it has finished.",
            retry_after=1,
        )
    metrics.idempotent_request("replayed")
    stored = json.loads(held.response)
    return StoredResponse(status=stored["status"], body=stored["body"])


Replay = Callable[[Request, StoredResponse], HttpResponseBase]


def json_replay(request: Request, stored: StoredResponse) -> Response:
    return Response(stored.body, status=stored.status)


def idempotent(*, headers: tuple[str, ...] = (), replay: Replay = json_replay) -> Callable[[T], T]:
    """Makes a view's handler honour `Idempotency-Key`. The handler takes the request's claim as the keyword
    argument `claim` (None without the header). `headers` are request headers that belong to the request's
    identity besides method, path and body; `replay` builds the answer to a retry from the stored one (in the
    form the retry asks for: JSON or a stream)."""

    def decorator(handler: Any) -> Any:
        @wraps(handler)
        def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
            key = key_of(request)
            if key is None:
                return handler(view, request, *args, claim=None, **kwargs)
            outcome = begin(request.user.id, key, request_fingerprint(request, headers))
            if isinstance(outcome, StoredResponse):
                response = replay(request, outcome)
                response[REPLAYED_HEADER] = "true"
                return response
            try:
                response = handler(view, request, *args, claim=outcome, **kwargs)
            except BaseException:
                outcome.release()
                raise
            _settle(outcome, response)
            return response

        return extend_schema(parameters=[IDEMPOTENCY_KEY_PARAMETER])(wrapper)

    return decorator


def _settle(claim: Claim, response: HttpResponseBase) -> None:
    if response.streaming:
        if not claim.streamed:  # a stream nobody records cannot be replayed
            claim.release()
    elif isinstance(response, Response) and 200 <= response.status_code < 300:
        claim.complete(response.status_code, response.data)
    else:
        claim.release()


def recorded(claim: Claim | None, events: Iterator[T], body_of: Callable[[Any], Any]) -> Iterator[T]:
    """A streamed answer's items, passed on. Under an Idempotency-Key (`claim`) the final one (the item that is no
    StreamDelta: the turn's result, stored by then) is kept as `body_of` makes it the JSON answer's body; a
    stream that ends without it gives the key back."""
    if claim is None:
        return events
    claim.streamed = True
    return _recording(claim, events, body_of)


def _recording(claim: Claim, events: Iterator[T], body_of: Callable[[Any], Any]) -> Iterator[T]:
    completed = False
    try:
        for item in events:
            if not completed and not isinstance(item, StreamDelta):
                claim.complete(200, body_of(item))
                completed = True
            yield item
    finally:
        if not completed:
            claim.release()
        events.close()  # type: ignore[attr-defined]  # a client that left closes the upstream request


def document_idempotency(result: dict, generator: object, request: object, public: bool) -> dict:
    """drf-spectacular hook, for each operation that takes an Idempotency-Key: its successful answers may be
    replays, and its 422 and 409 (in the operation's own error shape, that of its 400) say what they mean here."""
    header = {
        "description": f"`true` on a replay: the stored answer of the first request with this {IDEMPOTENCY_HEADER}.",
        "schema": {"type": "string", "enum": ["true"]},
    }
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            parameters = operation.get("parameters", [])
            if not any(p.get("in") == "header" and p.get("name") == IDEMPOTENCY_HEADER for p in parameters):
                continue
            responses = operation["responses"]
            for status, response in responses.items():
                if status.startswith("2"):
                    response.setdefault("headers", {})[REPLAYED_HEADER] = header
            error = {"content": responses.get("400", {}).get("content", {})}
            responses["422"] = {**error, "description": f"This {IDEMPOTENCY_HEADER} was used with another request."}
            in_use = f"The request with this {IDEMPOTENCY_HEADER} is still being answered; see Retry-After."
            conflict = responses.setdefault("409", {**error, "description": ""})
            conflict["description"] = f"{conflict['description']} {in_use}".strip()
    return result
