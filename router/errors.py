"""Errors the proxy raises on purpose, each knowing its OpenAI error shape.

    ThinkrouteError                      500 internal_error
    ├── ConfigError                      (startup only) a config file is invalid
    ├── InvalidRequestError              400 invalid_request_error
    │   └── RequestTooLargeError         413
    ├── AuthenticationError              401 invalid_api_key
    ├── PermissionDeniedError            403 model_not_allowed
    ├── NotFoundError                    404 not_found (a tenant, a key)
    │   └── ModelNotFoundError           404 model_not_found
    ├── ConflictError                    409 conflict (a tenant that exists already)
    ├── RateLimitError                   429 rate_limit_exceeded
    │   ├── RateLimitedError             429 rate_limited (the tenant's own limits)
    │   └── BudgetExceededError          429 budget_exceeded (retrying cannot help, unless
    │                                        only requests in flight hold the budget)
    ├── StoreUnavailableError            503 Redis is unreachable and the tenant fails closed
    │   └── StoreTimeoutError            503 Redis is slow: budgeted tenants wait for it
    └── UpstreamError                    502 upstream_error
        ├── UpstreamUnavailableError     503 no provider can serve the request now
        └── UpstreamTimeoutError         504 the provider did not answer in time

The server turns any of them into ``{"error": {"message", "type", "param",
"code"}}`` with the status shown, in one exception handler.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "ConfigError",
    "ConflictError",
    "InvalidRequestError",
    "ModelNotFoundError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitedError",
    "RequestTooLargeError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "ThinkrouteError",
    "UpstreamError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
]


class ThinkrouteError(Exception):
    """Base class; carries what an OpenAI-shaped error body needs."""

    status_code = 500
    type = "internal_error"
    code: str | None = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def headers(self) -> dict[str, str]:
        """HTTP headers the error response carries (Retry-After and the like)."""
        return {}

    def to_body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class ConfigError(ThinkrouteError):
    """A configuration file or setting is invalid; names the file and field."""

    type = "config_error"
    code = "invalid_config"


class InvalidRequestError(ThinkrouteError):
    status_code = 400
    type = "invalid_request_error"
    code = "invalid_request"


class RequestTooLargeError(InvalidRequestError):
    status_code = 413
    code = "request_too_large"


class AuthenticationError(ThinkrouteError):
    status_code = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDeniedError(ThinkrouteError):
    status_code = 403
    type = "permission_error"
    code = "model_not_allowed"


class NotFoundError(ThinkrouteError):
    status_code = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class ConflictError(ThinkrouteError):
    status_code = 409
    type = "invalid_request_error"
    code = "conflict"


class RateLimitError(ThinkrouteError):
    status_code = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class RateLimitedError(RateLimitError):
    """The tenant sent more requests or tokens per minute than its policy allows."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"retry-after": str(self.retry_after_s)}


class BudgetExceededError(RateLimitError):
    """The tenant's budget for a window (or per request) cannot cover this request.

    ``is_transient``: only other requests' reservations stand in the way; they settle
    (usually for less) within seconds, so a retry soon may pass.
    """

    code = "budget_exceeded"

    def __init__(
        self, message: str, *, retry_after_s: int | None, is_transient: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.is_transient = is_transient

    def headers(self) -> dict[str, str]:
        # OpenAI's SDKs retry 429s unless told not to; retrying cannot help until the window
        # ends, except when in-flight reservations alone fill the budget.
        headers = {"x-should-retry": "true" if self.is_transient else "false"}
        if self.retry_after_s is not None:
            headers["retry-after"] = str(self.retry_after_s)
        return headers


class StoreUnavailableError(ThinkrouteError):
    status_code = 503
    type = "service_unavailable"
    code = "store_unavailable"


class StoreTimeoutError(StoreUnavailableError):
    """Redis answered too slowly: it is not down, so a budgeted tenant is not served
    unmetered; the client may retry at once."""

    code = "store_timeout"

    def headers(self) -> dict[str, str]:
        return {"retry-after": "1", "x-should-retry": "true"}


class UpstreamError(ThinkrouteError):
    status_code = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamUnavailableError(UpstreamError):
    status_code = 503
    code = "upstream_unavailable"


class UpstreamTimeoutError(UpstreamError):
    status_code = 504
    code = "upstream_timeout"
