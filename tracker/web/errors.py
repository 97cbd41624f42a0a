"""The error document of DESIGN.md §4, and the exception that produces it.

Every error a client can cause is an ``ApiError``: ``{"error": {"code", "message", "field"?}}``
with the fitting status.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from tracker.web.redirect import NOT_FOUND

log = logging.getLogger("tracker")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.line: int | None = None  # the NDJSON line at fault, for streamed bodies

    def document(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.line is not None:
            body["line"] = self.line
        return {"error": body}


def invalid(field: str, message: str, code: str = "invalid_field") -> ApiError:
    """A 422 for one field; ``message`` reads after the field name."""
    return ApiError(422, code, f"{field} {message}", field)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(error.document()),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_field",
    429: "rate_limited",
}


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc, headers)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not request.scope["path"].startswith("/api/"):
        if exc.status_code == 404:
            return HTMLResponse(NOT_FOUND, status_code=404)  # the redirect's own page
        return Response(exc.detail, status_code=exc.status_code, headers=exc.headers)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    error = ApiError(exc.status_code, code, str(exc.detail))
    return error_response(error, dict(exc.headers or {}))


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(ApiError(500, "internal_error", "unexpected server error"))


async def handle_store_error(request: Request, exc: Exception) -> Response:
    log.error("store error on %s %s: %s", request.method, request.url.path, exc)
    return error_response(ApiError(503, "store_unavailable", "the store cannot answer now"))
