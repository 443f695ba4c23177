"""Pure ASGI middleware of the gateway: access log, body size cap, bearer API keys.

Order (outermost first): ``AccessLog`` → ``BodyLimit`` → ``ApiKeyAuth`` → the app, so a request
is logged whatever happens, and neither an oversized nor an unauthenticated body is read.
The access log carries method, route template, status, duration and ``orderRef`` only: no query
string (IPN signatures), headers, bodies or client addresses.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import time
from collections.abc import Sequence
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("cotpay_escrow.gateway")


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    body = json.dumps({"error": code, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = scope.get("route")
            path_params: dict[str, Any] = scope.get("path_params") or {}
            log.info(
                "http.request",
                method=scope.get("method", ""),
                route=getattr(route, "path", None) or "<unmatched>",
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                order_ref=path_params.get("order_ref"),
            )


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuses bodies over ``max_bytes`` with 413, by header or while streaming."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await send_error(send, 400, "invalid_request", "bad Content-Length header")
                return
            if int(declared) > self.max_bytes:
                await self._too_large(send)
                return
        received = 0
        exceeded = False
        response_started = False

        async def limited() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal response_started
            if exceeded:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        with contextlib.suppress(BodyTooLarge):
            await self.app(scope, limited, guarded)
        if exceeded and not response_started:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        await send_error(
            send, 413, "body_too_large", f"request bodies are limited to {self.max_bytes} bytes"
        )


class ApiKeyAuth:
    """``Authorization: Bearer <key>`` on paths under ``prefix``; several keys for rotation."""

    def __init__(self, app: ASGIApp, *, keys: Sequence[str], prefix: str = "/v1/") -> None:
        self.app = app
        self.keys = [k.encode() for k in keys if k]
        self.prefix = prefix

    def allowed(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        candidate = token.strip().encode()
        ok = False
        for key in self.keys:
            ok |= hmac.compare_digest(key, candidate)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] == "http"
            and (path.startswith(self.prefix) or path == self.prefix.rstrip("/"))
            and not self.allowed(_header(scope, b"authorization"))
        ):
            await send_error(
                send,
                401,
                "unauthorized",
                "missing or wrong API key (Authorization: Bearer <key>)",
                headers=[(b"www-authenticate", b"Bearer")],
            )
            return
        await self.app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None
