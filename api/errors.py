"""One mapping from the core's typed errors to HTTP: a status code, a machine code and a clear message.

Every error body has the same shape, {"error": {"type", "message", "code"}}: it reads as our own format
and as OpenAI's, so the OpenAI-compatible routes need no second shape; only the `type` vocabulary differs
there (OpenAI clients switch on "invalid_request_error" and friends). A traceback never reaches a client.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY, RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.core.errors import (
    AddressRefusedError,
    BadInputError,
    BusyError,
    DocumentNotFoundError,
    FeedError,
    FeedNotFoundError,
    FetchError,
    FetchTimeoutError,
    GeneratorError,
    IndexCorruptError,
    IndexLockedError,
    IndexMismatchError,
    IndexMissingError,
    ModelMissingError,
    RagError,
    StorageError,
    StorageFullError,
    TooLargeError,
    UnsupportedFileError,
    VectorStoreError,
)

log = logging.getLogger("newsrag.api")

OPENAI_PREFIXES = ("/v1/chat/", "/v1/models")
DEFAULT_RETRY_AFTER_S = 5


@dataclass(frozen=True)
class ErrorSpec:
    status: int
    code: str


# Checked along the exception's MRO, so TooLargeError (a BadInputError) finds its own row first.
RAG_ERRORS: dict[type[BaseException], ErrorSpec] = {
    TooLargeError: ErrorSpec(413, "too_large"),
    UnsupportedFileError: ErrorSpec(415, "unsupported_file"),
    BadInputError: ErrorSpec(400, "bad_input"),
    DocumentNotFoundError: ErrorSpec(404, "not_found"),
    BusyError: ErrorSpec(503, "busy"),
    IndexMissingError: ErrorSpec(503, "not_ready"),
    ModelMissingError: ErrorSpec(503, "not_ready"),
    IndexCorruptError: ErrorSpec(503, "index_unavailable"),
    IndexMismatchError: ErrorSpec(503, "index_unavailable"),
    IndexLockedError: ErrorSpec(409, "index_locked"),
    GeneratorError: ErrorSpec(502, "generator_failed"),
    VectorStoreError: ErrorSpec(503, "index_unavailable"),
    StorageFullError: ErrorSpec(507, "insufficient_storage"),
    StorageError: ErrorSpec(503, "storage_unavailable"),
    # A page or feed elsewhere failed: the other server's fault, not the request's (413 and 415 above cover
    # oversize and non-HTML pages); a feed that is not one will not be fixed by retrying.
    # The fetch policy refused the address (rag/ingest/addresses.py): forbidden here, whoever's page it is.
    AddressRefusedError: ErrorSpec(403, "address_refused"),
    FetchTimeoutError: ErrorSpec(504, "fetch_timeout"),
    FetchError: ErrorSpec(502, "fetch_failed"),
    FeedError: ErrorSpec(422, "bad_feed"),
    FeedNotFoundError: ErrorSpec(404, "not_found"),
    RagError: ErrorSpec(500, "internal_error"),
}

# OpenAI's `type` words for our status codes.
OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    421: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class ApiError(Exception):
    """An error that belongs to the HTTP layer itself (auth, disabled features), not to the core."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def unauthorized(message: str = "missing or wrong API key: send `Authorization: Bearer <key>`") -> ApiError:
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def spec_for(exc: BaseException) -> ErrorSpec:
    for cls in type(exc).__mro__:
        if cls in RAG_ERRORS:
            return RAG_ERRORS[cls]
    return ErrorSpec(500, "internal_error")


def retry_after(exc: BaseException) -> int:
    # A BusyError carries the queue's estimate when it has one; anything else gets a modest default.
    value = exc.retry_after if isinstance(exc, BusyError) else None
    return max(1, math.ceil(value)) if isinstance(value, (int, float)) else DEFAULT_RETRY_AFTER_S


def describe(exc: BaseException) -> tuple[int, str, str, dict[str, str]]:
    """(status, code, message, headers) for any exception; unknown ones say nothing about internals."""
    if isinstance(exc, ApiError):
        return exc.status, exc.code, exc.message, exc.headers
    if isinstance(exc, RagError):
        spec = spec_for(exc)
        headers = {"Retry-After": str(retry_after(exc))} if spec.status == 503 else {}
        return spec.status, spec.code, str(exc) or spec.code.replace("_", " "), headers
    return 500, "internal_error", "internal server error; the server log has the details", {}


def error_body(status: int, code: str, message: str, *, openai: bool = False) -> dict:
    kind = OPENAI_TYPES.get(status, "server_error") if openai else code
    return {"error": {"type": kind, "code": code, "message": message, "param": None}}


def is_openai_path(path: str) -> bool:
    return path.startswith(OPENAI_PREFIXES)


def error_response(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = error_body(status, code, message, openai=is_openai_path(request.url.path))
    return JSONResponse(body, status_code=status, headers=headers or None)


def payload_for(exc: BaseException, *, openai: bool = False) -> tuple[int, dict]:
    """The status and body for an error met mid-stream, where only an event can carry it."""
    status, code, message, _ = describe(exc)
    if status >= 500 and not isinstance(exc, (RagError, ApiError)):
        log.error("unexpected error while streaming", exc_info=exc)
    return status, error_body(status, code, message, openai=openai)


# --- handlers ---------------------------------------------------------------------------------------------


async def handle_rag_error(request: Request, exc: Exception) -> JSONResponse:
    status, code, message, headers = describe(exc)
    if status >= 500:
        log.warning("%s %s -> %d %s: %s", request.method, request.url.path, status, code, message)
    return error_response(request, status, code, message, headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict]]:
    details = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ()) if part != "body"]
        details.append({"loc": loc, "msg": err.get("msg", ""), "type": err.get("type", "")})
    message = "; ".join(f"{'.'.join(d['loc']) or 'body'}: {d['msg']}" for d in details) or "invalid request"
    return message, details


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, details = _validation_message(exc)
    body = error_body(422, "validation_error", message, openai=is_openai_path(request.url.path))
    body["error"]["details"] = details  # the offending input is left out: it may be huge or private
    return JSONResponse(body, status_code=422)


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 413:
        limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)
        message = f"request body is larger than the limit of {limit} bytes" if limit else "request body too large"
        code = "too_large"
    else:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        code = {404: "not_found", 405: "method_not_allowed"}.get(
            status, "bad_request" if status < 500 else "internal_error"
        )
    return error_response(request, status, code, message, dict(exc.headers or {}))


class CatchAllMiddleware:
    """Last line: an unexpected exception becomes a logged JSON 500, never a traceback on the wire.

    A pure ASGI middleware rather than an `Exception` handler: Starlette re-raises after calling that one,
    which makes servers log the error twice and test clients raise it.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            if isinstance(exc, StarletteHTTPException) and not started:
                response = await handle_http_exception(Request(scope, receive), exc)
                await response(scope, receive, send)
                return
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # the status line is gone; the server closes the connection
            status, code, message, _ = describe(exc)
            body = error_body(status, code, message, openai=is_openai_path(scope.get("path", "")))
            await JSONResponse(body, status_code=status)(scope, receive, send)


class BodyLimitMiddleware:
    """Request bodies over `max_body_size` get a JSON 413: at once when Content-Length says so, before a
    byte is read, otherwise as soon as the streamed body passes the limit (Starlette's counter, which
    FastAPI turns into an HTTPException our handler formats)."""

    def __init__(self, app: ASGIApp, max_body_size: int):
        self.max_body_size = max_body_size
        self.app = RequestBodyLimitMiddleware(app, max_body_size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            declared = Headers(scope=scope).get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_body_size:
                message = f"request body of {declared} bytes is larger than the limit of {self.max_body_size} bytes"
                body = error_body(413, "too_large", message, openai=is_openai_path(scope.get("path", "")))
                await JSONResponse(body, status_code=413, headers={"Connection": "close"})(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_error_handlers(app: FastAPI, *, max_body_size: int) -> None:
    app.add_exception_handler(RagError, handle_rag_error)
    app.add_exception_handler(ApiError, handle_rag_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_body_size=max_body_size)
