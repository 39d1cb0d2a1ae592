"""Errors of the language-model client, each already mapped to the HTTP answer our API gives.

Details are our own words: upstream error text may echo prompts or account data, so it is only logged.
"""

from __future__ import annotations

from core.exceptions import ServiceError


class LLMError(ServiceError):
    status_code = 502
    code = "upstream_error"
    default_detail = "The language model service failed."

    def __init__(self, detail: str | None = None, *, retry_after: float | None = None, code: str | None = None) -> None:
        super().__init__(detail or self.default_detail, retry_after=retry_after, code=code)


class LLMNotConfigured(LLMError):
    status_code = 503
    code = "llm_not_configured"
    default_detail = "GROQ_API_KEY is not set, so the chat service cannot reach the language model."


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

    def __init__(self, model: str, *, from_request: bool = False) -> None:
        if from_request:
            # The caller chose the model, so it is their request that needs fixing, not our configuration.
            self.status_code = 400
            detail = f"The model '{model}' is not available (decommissioned or unknown); choose another model."
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
