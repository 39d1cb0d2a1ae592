"""Errors of the language-model client, each already mapped to the HTTP answer our API gives, and which upstream
answer becomes which error.

Details are our own words: upstream error text may echo prompts or account data, so it is only logged.
"""

from __future__ import annotations

import logging
import re
from contextlib import suppress

from core.exceptions import ServiceError

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 498, 500, 502, 503, 504})
TRY_AGAIN_RE = re.compile(r"try again in ((?:\d+(?:\.\d+)?(?:h|ms|us|µs|ns|m|s))+)", re.IGNORECASE)
GO_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
GO_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
TRUNCATED = "The language model service closed the connection before the answer was complete."


class LLMError(ServiceError):
    """`retryable` marks a failure another attempt may cure; the client retries only those."""

    status_code = 502
    code = "upstream_error"
    default_detail = "The language model service failed."

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(detail or self.default_detail, retry_after=retry_after, code=code)
        self.retryable = retryable


class LLMNotConfigured(LLMError):
    status_code = 503
    code = "llm_not_configured"
    default_detail = (
        "GROQ_API_KEY is not set, so the chat service cannot reach the language model: set it in the server's "
        "environment or in its .env file, then restart the server (it reads its settings only at start)."
    )


class LLMRateLimited(LLMError):
    status_code = 429
    code = "upstream_rate_limited"
    default_detail = "The language model service is rate limiting us; try again later."


class LLMTimeout(LLMError):
    status_code = 504
    code = "upstream_timeout"
    default_detail = "The language model service did not answer in time."


class LLMUnavailable(LLMError):
    status_code = 503
    code = "upstream_unavailable"
    default_detail = "The language model service is unavailable; try again shortly."


class LLMBadGateway(LLMError):
    status_code = 502
    code = "upstream_error"
    default_detail = "The language model service sent an invalid answer."


class LLMContextTooLong(LLMError):
    status_code = 400
    code = "context_length_exceeded"
    default_detail = (
        "The conversation is too long for the model's context window; "
        "start a new session or lower HISTORY_MAX_MESSAGES."
    )


class LLMModelUnavailable(LLMError):
    status_code = 503
    code = "model_unavailable"

    def __init__(self, model: str, *, from_request: bool = False, fallback: bool = False) -> None:
        if from_request:
            # The caller chose the model, so it is their request that needs fixing, not our configuration.
            self.status_code = 400
            detail = f"The model '{model}' is not available (decommissioned or unknown); choose another model."
        elif fallback:
            detail = (
                f"The fallback model '{model}' is not available (decommissioned or unknown); "
                "replace it in GROQ_FALLBACK_MODELS with a current model."
            )
        else:
            detail = (
                f"The configured model '{model}' is not available (decommissioned or unknown); "
                "set GROQ_MODEL_NAME to a current model."
            )
        super().__init__(detail)
        self.model = model


class LLMAuthFailed(LLMError):
    status_code = 502
    code = "upstream_auth_failed"
    default_detail = "The language model service rejected the API key; check GROQ_API_KEY."


class LLMStreamError(LLMError):
    status_code = 502
    code = "upstream_stream_error"
    default_detail = "The language model service stopped the answer midway."


class LLMRequestRejected(LLMError):
    status_code = 502
    code = "upstream_rejected_request"
    default_detail = "The language model service rejected the request."


def unreachable(host: str, cause: str) -> LLMUnavailable:
    """`host` is the upstream's host:port only: never a URL, which could carry credentials or a query."""
    return LLMUnavailable(
        f"Cannot reach the language model service at {host} ({cause}); try again shortly.", retryable=True
    )


def timed_out(host: str, *, retryable: bool = False) -> LLMTimeout:
    return LLMTimeout(f"The language model service at {host} did not answer in time.", retryable=retryable)


def error_for_status(
    status: int,
    *,
    code: str,
    message: str,
    retry_after: str | None,
    model: str,
    from_request: bool,
    host: str = "",
) -> LLMError:
    """Our error for an upstream answer other than 200, given Groq's error code and message and its Retry-After.
    A server-side failure's detail names `host` (host:port), so an operator sees which upstream failed."""
    logger.warning("The language model service answered %s (%s): %.300s", status, code or "no code", message)
    wait = retry_after_seconds(retry_after, message)
    error = _error_for_status(status, code, wait=wait, model=model, from_request=from_request, host=host)
    error.retryable = status in RETRYABLE_STATUSES
    return error


def _error_for_status(
    status: int, code: str, *, wait: float | None, model: str, from_request: bool, host: str
) -> LLMError:
    if status in (401, 403):
        return LLMAuthFailed()
    if (status == 400 and code == "model_decommissioned") or (status == 404 and code == "model_not_found"):
        return LLMModelUnavailable(model, from_request=from_request)
    if (status == 400 and code == "context_length_exceeded") or status == 413:
        return LLMContextTooLong()
    if status == 429:
        return LLMRateLimited(retry_after=wait)
    at = f" at {host}" if host else ""
    if status in (498, 503):
        return LLMUnavailable(
            f"The language model service{at} is unavailable (HTTP {status}); try again shortly.", retry_after=wait
        )
    if 400 <= status < 500:
        return LLMRequestRejected()
    if status >= 500:
        return LLMBadGateway(f"The language model service{at} failed (HTTP {status}); try again shortly.")
    return LLMBadGateway()


def retry_after_seconds(header: str | None, message: str) -> float | None:
    hints: list[float] = []
    # An HTTP-date is ignored: Groq sends seconds, and its message usually carries the same wait.
    with suppress(ValueError):
        hints.append(float(header or ""))
    match = TRY_AGAIN_RE.search(message)
    if match and (seconds := parse_go_duration(match.group(1))) is not None:
        hints.append(seconds)
    return max(hints) if hints else None


def parse_go_duration(text: str) -> float | None:
    parts = GO_DURATION_PART_RE.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * GO_DURATION_UNITS[unit] for number, unit in parts)
