"""The sandbox's HTTP app: Cotpay's six endpoints under ``/api/web-ecommerce/`` plus the admin API.

A Cotpay call goes: injected 503 (``errorRate``) → body size → token and app id (11400, answered
in the envelope with the presented token, so a client can open it) → envelope (400
``bad_envelope`` in plain JSON with the reason) → the action must name the called path → request
model (10500 with ``errors: [{field, message}]``) → the service. Every Cotpay answer is HTTP 200,
sealed for the merchant (plain JSON in plain mode). Nothing before the service touches state.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from cotpay.envelope import H_CLIENT, EnvelopeError
from cotpay.models import (
    ENDPOINTS,
    CreateOrderRequest,
    CustomerIdRequest,
    Endpoint,
    PaymentRequest,
    ReturnRequest,
    SignUpRequest,
    VerifyOrderRequest,
)
from sandbox.admin import admin_router, field_errors
from sandbox.service import AdminError, Reply
from sandbox.state import SandboxState

log = structlog.get_logger("sandbox.http")

MAX_BODY = 64 * 1024
_DATA_FIELD = {"create-order": "order", "customerID": "user"}


def error_response(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status)


def data_field(endpoint: Endpoint) -> str:
    return _DATA_FIELD.get(endpoint.name, "data")


class _TooLarge(Exception):
    pass


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def _dispatch(state: SandboxState, request: BaseModel) -> Reply:
    service = state.service
    if isinstance(request, PaymentRequest):
        return await service.payment(request)
    if isinstance(request, ReturnRequest):
        return await service.return_request(request)
    await state.faults.latency()
    if isinstance(request, CreateOrderRequest):
        return service.create_order(request)
    if isinstance(request, CustomerIdRequest):
        return service.customer_id(request)
    if isinstance(request, VerifyOrderRequest):
        return service.verify_order(request)
    if isinstance(request, SignUpRequest):
        return service.sign_up(request)
    raise TypeError(type(request).__name__)


def _answer(state: SandboxState, endpoint: Endpoint, reply: Reply, token: str) -> Response:
    sealed = state.seal(reply.body(), path=endpoint.path, access_token=token)
    return Response(content=sealed.body, status_code=200, headers=sealed.headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """``Allow`` of a 405 (RFC 9110): every method a route takes on the path, not only those of
    the first route Starlette matched (``PUT /sandbox/users/{id}`` hid ``GET`` and ``PATCH``)."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    )


def create_app(state: SandboxState) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = FastAPI(
        title="Cotpay sandbox",
        description="A local Cotpay: the six web-ecommerce endpoints plus an admin API.",
        lifespan=lifespan,
    )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        names = {404: "not_found", 405: "method_not_allowed"}
        response = error_response(
            exc.status_code, names.get(exc.status_code, "http_error"), str(exc.detail)
        )
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["allow"] = _allowed_methods(request)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(
            422, "validation_error", "invalid request", errors=field_errors(exc.errors())
        )

    @app.exception_handler(RecursionError)
    async def _too_deep(_request: Request, _exc: RecursionError) -> JSONResponse:
        return error_response(422, "validation_error", "JSON nested too deeply")

    @app.exception_handler(AdminError)
    async def _admin_error(_request: Request, exc: AdminError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.message)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("sandbox.unexpected", error=type(exc).__name__)
        return error_response(500, "internal_error", "unexpected sandbox error")

    @app.post("/api/web-ecommerce/{name}", include_in_schema=True)
    async def cotpay_call(name: str, request: Request) -> Response:
        endpoint = ENDPOINTS.get(name)
        if endpoint is None:
            return error_response(
                404,
                "unknown_endpoint",
                f"no Cotpay endpoint {name!r}; known: {', '.join(ENDPOINTS)}",
            )
        if state.faults.api_error():
            return error_response(503, "injected_fault", "sandbox errorRate fault: try again")
        try:
            body = await _read_body(request)
        except _TooLarge:
            return error_response(413, "body_too_large", f"body over {MAX_BODY} bytes")
        headers = request.headers
        token = headers.get("authorization", "")
        app_id = headers.get(H_CLIENT, "")
        good_token = hmac.compare_digest(token.encode(), state.keys.access_token.encode())
        if not good_token or not hmac.compare_digest(app_id.encode(), state.keys.app_id.encode()):
            log.warning("sandbox.auth_failed", endpoint=name)
            return _answer(state, endpoint, Reply(11400, data_field(endpoint)), token)
        try:
            opened = state.envelope.open(headers, body)
        except EnvelopeError as exc:
            log.warning("sandbox.bad_envelope", endpoint=name, reason=exc.reason)
            return error_response(400, "bad_envelope", exc.detail, reason=exc.reason)
        except RecursionError:
            return error_response(400, "bad_envelope", "JSON nested too deeply", reason="bad_json")
        if opened.path != endpoint.path and (state.envelope_mode == "encrypted" or opened.path):
            return error_response(
                400,
                "bad_envelope",
                "x-api-action does not name the called endpoint",
                reason="action_mismatch",
            )
        payload = opened.payload
        if not isinstance(payload, dict):
            reply = Reply(
                10500,
                data_field(endpoint),
                errors=[{"field": "", "message": "payload must be a JSON object"}],
            )
            return _answer(state, endpoint, reply, token)
        try:
            parsed = endpoint.request.model_validate(payload)
        except ValidationError as exc:
            errors = field_errors(exc.errors())
            log.info(
                "sandbox.validation_failed", endpoint=name, fields=[e["field"] for e in errors]
            )
            reply = Reply(10500, data_field(endpoint), errors=errors)
            return _answer(state, endpoint, reply, token)
        reply = await _dispatch(state, parsed)
        log.info("sandbox.call", endpoint=name, code=reply.code)
        return _answer(state, endpoint, reply, token)

    app.include_router(admin_router(state))
    return app
