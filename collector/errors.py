"""The collector's error model: one exception hierarchy, one JSON error shape.

Every 4xx the API returns is ``{"error": {"code", "message", "field"?}}``. Services raise
:class:`ApiError` subclasses; :func:`install_error_handlers` turns them (and FastAPI's own
validation errors) into that shape. A 5xx is a bug.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "Unauthorized",
    "UnprocessableEntity",
    "error_body",
    "install_error_handlers",
    "loc_to_field",
]


class ApiError(Exception):
    """Base of every error the API reports to a client."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field
        self.headers = headers


class BadRequest(ApiError):
    """400: the request cannot be read (e.g. malformed JSON, bad encoding)."""


class Unauthorized(ApiError):
    """401: missing, unknown, expired or revoked credentials."""

    status_code = 401
    code = "unauthorized"


class Forbidden(ApiError):
    """403: authenticated, but not allowed to do this."""

    status_code = 403
    code = "forbidden"


class NotFound(ApiError):
    """404: no such resource (or not visible to the caller)."""

    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    """409: conflicts with what is stored."""

    status_code = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    """413: the body exceeds a configured limit."""

    status_code = 413
    code = "payload_too_large"


class UnprocessableEntity(ApiError):
    """422: readable, but not valid against the schema."""

    status_code = 422
    code = "validation_error"


class ServiceUnavailable(ApiError):
    """503: a part the request needs is missing or failing on the server (e.g. the PDF
    renderer); retrying later or elsewhere may work."""

    status_code = 503
    code = "service_unavailable"


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The JSON error document."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def loc_to_field(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """Render a pydantic error location as ``events[3].boot_duration_s``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        error_body(exc.code, exc.message, exc.field),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = [p for p in first.get("loc", ()) if p != "body"]
    field = loc_to_field(loc) or None
    message = f"{field}: {first['msg']}" if field else str(first["msg"])
    return JSONResponse(error_body("validation_error", message, field), status_code=422)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the documented JSON shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
