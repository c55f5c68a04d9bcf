"""Every failure as a JSON error with the right status and a message a person understands,
never a traceback: bad bodies (empty, not JSON, too large, wrong fields), unknown sessions,
datasets, users and items, a missing or wrong API key, and bugs (500, logged here only)."""

from __future__ import annotations

import json
import logging
import secrets

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recagent.errors import RecagentError
from recagent.web.models import ErrorBody, ErrorDetail

log = logging.getLogger(__name__)

STATUS_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
}


class ApiError(Exception):
    """An error to answer with `status` and `message`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(type=STATUS_TYPES.get(status, "error"), message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError, content_type: str) -> tuple[int, str]:
    """400 for a body that is missing or not JSON (415 when it is not sent as JSON), else
    422 naming each bad field."""
    errors = exc.errors()
    for err in errors:
        at_body = tuple(err.get("loc", ())) == ("body",)
        if at_body and err.get("type") == "model_attributes_type" and "json" not in content_type:
            return 415, (
                f"send the body as JSON with 'Content-Type: application/json' (got "
                f"{content_type or 'no Content-Type'})"
            )
        if err.get("type") == "json_invalid":
            return (
                400,
                f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})",
            )
        if err.get("type") == "missing" and tuple(err.get("loc", ())) == ("body",):
            return 400, "the request needs a JSON body"
        if err.get("type") == "model_attributes_type" and tuple(err.get("loc", ())) == ("body",):
            return 400, "the body must be a JSON object"
    parts = []
    for err in errors[:5]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        where = ".".join(loc) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return 422, "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = _validation_message(exc, request.headers.get("content-type", ""))
        return error_response(status, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, _TooLarge):  # FastAPI wraps a failed body read in a 400
            return error_response(413, str(exc.__cause__))
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        return error_response(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RecagentError)
    async def _user(request: Request, exc: RecagentError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal error (the details are in the server's log)")


def check_key(expected: str | None, authorization: str | None) -> None:
    """`Authorization: Bearer <key>` must carry the server's key (when it has one)."""
    if expected is None:
        return
    challenge = {"WWW-Authenticate": "Bearer"}
    if not authorization:
        raise ApiError(
            401, "this server needs an API key: send 'Authorization: Bearer <key>'", challenge
        )
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip(), expected):
        raise ApiError(401, "wrong API key", challenge)


class BodyLimit:
    """ASGI middleware: a request body larger than `limit` bytes is refused with 413, by its
    Content-Length or, when sent in chunks, as soon as it grows past the limit."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_large = error_response(413, f"the body is larger than {self.limit:,} bytes")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await too_large(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(f"the body is larger than {self.limit:,} bytes")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await too_large(scope, receive, send)


class _TooLarge(Exception):
    pass


__all__ = ["ApiError", "BodyLimit", "check_key", "error_response", "install_error_handlers"]
