"""How errors leave the server: every one in OpenAI's shape, none with a traceback.

The chat routes answer their own errors in their dialect; these handlers
catch the rest: the proxy's errors raised anywhere else, Starlette's 404 and
405, FastAPI's validation errors, and anything unexpected (a 500 whose body
says nothing about the cause; the traceback goes to the log).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from router.errors import InvalidRequestError, ThinkrouteError
from router.http.jsonio import JSONResponse

__all__ = ["install_error_handlers"]

logger = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    """Add the server's exception handlers to ``app``."""

    @app.exception_handler(ThinkrouteError)
    async def thinkroute_error(request: Request, exc: ThinkrouteError) -> Response:
        headers = exc.headers()
        request_id = getattr(request.state, "request_id", None)
        if request_id:
            headers["x-request-id"] = request_id
        return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = "not_found" if exc.status_code == 404 else None
        error = ThinkrouteError(str(exc.detail), code=code)
        error.type = "invalid_request_error"
        return JSONResponse(error.to_body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        error = InvalidRequestError("the request does not match the API")
        return JSONResponse(error.to_body(), status_code=400)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error on %s", request.url.path)
        error = ThinkrouteError("The server had an error while processing your request.")
        return JSONResponse(error.to_body(), status_code=500)
