"""The codec server the Temporal UI and CLI call to show decrypted payloads (docs/deployment.md).

Protocol (Temporal's remote codec): ``POST /encode`` and ``POST /decode`` take and return the
``Payloads`` protobuf as JSON, ``{"payloads": [{"metadata": {"encoding": "<base64>"},
"data": "<base64>"}]}``; the UI adds an ``X-Namespace`` header.

Authentication: ``Authorization: Bearer <ESCROW_CODEC_TOKEN>`` (the ``temporal`` CLI sends it
with ``--codec-auth``). The browser UI cannot add a static header, so the same routes also live
under ``/t/<token>/``; point ``TEMPORAL_CODEC_ENDPOINT`` (or ``--ui-codec-endpoint``) at
``ui_codec_endpoint(base_url, token)``. That URL is visible to anyone who can open the UI, which
is the trust boundary anyway; CORS admits only the configured UI origin, and a request that
carries any other ``Origin`` is refused (403) before it is decoded.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

import structlog
from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from runtime.codec import CodecError

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024

AuthorizationHeader = Annotated[str | None, Header()]
CodecFn = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


def ui_codec_endpoint(base_url: str, token: str) -> str:
    """The codec endpoint to configure in the Temporal UI (token in the path)."""
    return f"{base_url.rstrip('/')}/t/{token}"


def _token_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def create_codec_app(codec: PayloadCodec, origin: str, token: str) -> FastAPI:
    """A FastAPI app serving the codec; ``run`` mounts or serves it in-process."""
    if not token:
        raise ValueError("the codec server needs a bearer token (ESCROW_CODEC_TOKEN)")
    app = FastAPI(title="cotpay-escrow codec server", docs_url=None, redoc_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[origin],
        allow_methods=["POST", "OPTIONS"],
        allow_headers=["Content-Type", "X-Namespace", "Authorization"],
        allow_credentials=True,
        max_age=600,
    )

    @app.exception_handler(HTTPException)
    async def error_json(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    async def apply(fn: CodecFn, request: Request) -> Response:
        sender = request.headers.get("origin")
        if sender is not None and sender != origin:
            raise HTTPException(status_code=403, detail="origin_not_allowed")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(status_code=413, detail="payloads_too_large")
        try:
            payloads = json_format.Parse(body, Payloads())
        except (json_format.ParseError, DecodeError, UnicodeDecodeError):
            raise HTTPException(status_code=400, detail="invalid_payloads") from None
        try:
            result = Payloads(payloads=await fn(payloads.payloads))
        except CodecError as exc:
            log.warning(
                "codec_failed", error=str(exc), namespace=request.headers.get("x-namespace")
            )
            raise HTTPException(status_code=400, detail="codec_failed") from None
        return Response(json_format.MessageToJson(result), media_type="application/json")

    def check_header(authorization: str | None) -> None:
        if not authorization:
            raise HTTPException(
                status_code=401,
                detail="missing_token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not _token_matches(given.strip(), token):
            raise HTTPException(status_code=403, detail="invalid_token")

    def check_path(given: str) -> None:
        if not _token_matches(given, token):
            raise HTTPException(status_code=403, detail="invalid_token")

    @app.post("/encode")
    async def encode(request: Request, authorization: AuthorizationHeader = None) -> Response:
        check_header(authorization)
        return await apply(codec.encode, request)

    @app.post("/decode")
    async def decode(request: Request, authorization: AuthorizationHeader = None) -> Response:
        check_header(authorization)
        return await apply(codec.decode, request)

    @app.post("/t/{path_token}/encode")
    async def encode_path(path_token: str, request: Request) -> Response:
        check_path(path_token)
        return await apply(codec.encode, request)

    @app.post("/t/{path_token}/decode")
    async def decode_path(path_token: str, request: Request) -> Response:
        check_path(path_token)
        return await apply(codec.decode, request)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
