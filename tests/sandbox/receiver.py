"""A tiny IPN receiver on 127.0.0.1:0 that answers from a script and records what it got."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response

from cotpay.envelope import (
    EncryptedEnvelope,
    PlainEnvelope,
    is_enveloped,
    load_private_key,
    load_public_key,
)
from sandbox.keys import SandboxKeys
from sandbox.testing import serve_app


@dataclass
class Received:
    path: str
    query: str
    payload: Any
    sealed: bool
    action: str


@dataclass
class Receiver:
    base_url: str = ""
    script: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)

    def url(self, ref: str, step: str) -> str:
        return f"{self.base_url}/ipn/{ref}/{step}?sig=test-sig"

    def statuses(self) -> list[str]:
        return [r.payload["status"] for r in self.received]


@asynccontextmanager
async def ipn_receiver(
    keys: SandboxKeys, script: list[int] | None = None
) -> AsyncIterator[Receiver]:
    receiver = Receiver(script=list(script or []))
    opener = EncryptedEnvelope(
        peer_public_key=load_public_key(keys.cotpay_public_file.read_bytes()),
        own_private_key=load_private_key(keys.merchant_private_file.read_bytes()),
    )
    app = FastAPI()

    @app.post("/ipn/{ref}/{step}")
    async def ipn(ref: str, step: str, request: Request) -> Response:
        body = await request.body()
        sealed = is_enveloped(request.headers, body)
        opened = (opener if sealed else PlainEnvelope()).open(request.headers, body)
        receiver.received.append(
            Received(request.url.path, request.url.query, opened.payload, sealed, opened.path)
        )
        status = receiver.script.pop(0) if receiver.script else 200
        receiver.answers.append(status)
        return Response(status_code=status)

    async with serve_app(app, what="IPN receiver") as base_url:
        receiver.base_url = base_url
        yield receiver
