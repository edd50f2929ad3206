"""Application errors: services raise these, one handler renders them."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """An error a user may see: a plain message, never patient data or a trace."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        details: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code
        self.details = details or []
        self.headers = headers or {}


class NotAuthenticated(AppError):
    """No valid session or token."""

    status_code = 401
    code = "not_authenticated"


class Forbidden(AppError):
    """Authenticated, but this caller may not do this."""

    status_code = 403
    code = "forbidden"


class NotFound(AppError):
    """Missing, or not the caller's to see (we never reveal which)."""

    status_code = 404
    code = "not_found"


class Conflict(AppError):
    """The request clashes with the current state."""

    status_code = 409
    code = "conflict"


class LeaseExpired(Conflict):
    """The caller's lease on a work item ran out or was taken back."""

    code = "lease_expired"


class ValidationFailed(AppError):
    """Input was understood but is not acceptable; details list every problem."""

    status_code = 422
    code = "validation_failed"


class PayloadTooLarge(AppError):
    """Body over the configured limit."""

    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(AppError):
    """Wrong content type."""

    status_code = 415
    code = "unsupported_media_type"


class RateLimited(AppError):
    """Too many requests; headers carry Retry-After."""

    status_code = 429
    code = "rate_limited"


class ServiceUnavailable(AppError):
    """A dependency (database, keyring) is not usable."""

    status_code = 503
    code = "unavailable"
