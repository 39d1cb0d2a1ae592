"""The project's own error type and the one DRF exception handler that turns every error into JSON."""

from __future__ import annotations


class ServiceError(Exception):
    """An error our code raises on purpose; the exception handler renders it as `{"detail", "code"}`.

    Subclasses set `status_code` and `code`; `retry_after` (seconds) becomes a `Retry-After` header.
    """

    status_code: int = 500
    code: str = "error"

    def __init__(self, detail: str, *, retry_after: float | None = None, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        if code is not None:
            self.code = code


class NotFound(ServiceError):
    """What was asked for does not exist, or is not the asking admin's."""

    status_code = 404
    code = "not_found"


class DependencyUnavailable(ServiceError):
    status_code = 503
    code = "service_unavailable"


class StorageError(ServiceError):
    """A Redis command or script that failed although Redis answered (not an outage: retrying fails alike)."""

    status_code = 500
    code = "storage_error"
