"""Errors the proxy raises on purpose, each knowing its OpenAI error shape.

    ThinkrouteError                      500 internal_error
    ├── ConfigError                      (startup only) a config file is invalid
    ├── InvalidRequestError              400 invalid_request_error
    │   └── RequestTooLargeError         413
    ├── AuthenticationError              401 invalid_api_key
    ├── PermissionDeniedError            403 model_not_allowed
    ├── ModelNotFoundError               404 model_not_found
    ├── RateLimitError                   429 rate_limit_exceeded
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
    "ConfigError",
    "InvalidRequestError",
    "ModelNotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
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


class ModelNotFoundError(ThinkrouteError):
    status_code = 404
    type = "invalid_request_error"
    code = "model_not_found"


class RateLimitError(ThinkrouteError):
    status_code = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


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
