"""Every error the gateway answers is JSON ``{"error": "<stable code>", "message": "..."}``.

The codes and their HTTP statuses are listed in docs/http-api.md: client errors map by type
(``STATUS_FOR``), validation errors to 422 ``invalid_request`` with the fields, the order store's
refused queries to 422 with the store's code (``store.errors.InvalidQuery.code``) and its outages
to 503 ``store_unavailable``, anything unexpected to 500 ``internal_error`` (logged by type only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from starter.client import (
    EscrowClientError,
    InvalidState,
    OrderClosed,
    OrderConflict,
    OrderNotFound,
    StartTimeout,
    TemporalUnavailable,
    VisibilityUnavailable,
)
from starter.gateway.models import ConflictBody, ErrorBody
from store.errors import InvalidQuery, StoreUnavailable

log = structlog.get_logger("cotpay_escrow.gateway")

STATUS_FOR: dict[type[EscrowClientError], int] = {
    OrderNotFound: 404,
    OrderConflict: 409,
    InvalidState: 409,
    OrderClosed: 409,
    TemporalUnavailable: 503,
    StartTimeout: 504,
    VisibilityUnavailable: 501,
}
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# A 429 of the rate limits (ratelimit.py), on every route but /healthz, before the key is read.
RATE_LIMITED_RESPONSE: dict[str, Any] = {
    "model": ErrorBody,
    "description": "rate_limited: over a rate limit (docs/security.md); retry after Retry-After",
    "headers": {
        "Retry-After": {
            "description": "seconds until the request may be sent again",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}
# The error answers every /v1 route documents in the OpenAPI document: a 409 carries the fields
# of ``ConflictBody`` (``fields`` as names, ``status``), a 429 ``Retry-After``, every other error
# an ``ErrorBody``.
V1_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **{
        status: {"model": ConflictBody if status == 409 else ErrorBody}
        for status in (400, 401, 403, 404, 409, 413, 422, 503)
    },
    429: RATE_LIMITED_RESPONSE,
}


class ApiError(Exception):
    """An error a route raises with its own status and code."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def error_response(http_status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=http_status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, **exc.extra)

    @app.exception_handler(EscrowClientError)
    async def _client_error(_request: Request, exc: EscrowClientError) -> JSONResponse:
        extra: dict[str, Any] = {}
        if isinstance(exc, OrderConflict):
            extra["fields"] = exc.fields
        if isinstance(exc, InvalidState) and exc.view is not None:
            extra["status"] = exc.view.status.value
        return error_response(STATUS_FOR.get(type(exc), 500), exc.code, exc.message, **extra)

    @app.exception_handler(InvalidQuery)
    async def _invalid_query(_request: Request, exc: InvalidQuery) -> JSONResponse:
        fields = [{"field": exc.field, "problem": exc.message, "type": exc.code}]
        return error_response(422, exc.code, exc.message, fields=fields if exc.field else None)

    @app.exception_handler(StoreUnavailable)
    async def _store_down(_request: Request, exc: StoreUnavailable) -> JSONResponse:
        # The database URL and driver message go to the log, not to the caller.
        log.error("gateway.store_unavailable", error=str(exc)[:300])
        return error_response(
            503, "store_unavailable", "the order store (database) is unavailable; retry later"
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {
                "field": ".".join(str(part) for part in err.get("loc", ())),
                "problem": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
            for err in exc.errors()
        ]
        return error_response(
            422,
            "invalid_request",
            f"the request is not valid ({len(fields)} problem(s))",
            fields=fields,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        response = error_response(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["allow"] = _allowed_methods(request, exc.headers)
        return response

    @app.exception_handler(Exception)
    async def _crash(_request: Request, exc: Exception) -> JSONResponse:
        log.error("gateway.internal_error", error_type=type(exc).__name__)
        return error_response(500, "internal_error", "internal error")


def _allowed_methods(request: Request, headers: Mapping[str, str] | None) -> str:
    """``Allow`` of a 405 (RFC 9110 15.5.6): every method some route takes on the request's path.
    Starlette's router names only the first route that matches the path (``POST /v1/orders``
    hid ``GET /v1/orders``), so each method is matched against the app's routes."""
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed) if allowed else (headers or {}).get("Allow", "")
