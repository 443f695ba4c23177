"""A loopback webhook receiver for the tests: a raw asyncio HTTP/1.1 server whose every answer
is scripted (status, delay, hang, reset, huge body, redirect), recording each request.

Signatures are checked with the ``standardwebhooks`` library, never with the service's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when fully read
    answered: float | None = None  # when the answer was written (None: never)
    status: int | None = None

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]

    def verify(self, secret: str) -> dict[str, Any]:
        """The body, if ``secret`` signed it (``standardwebhooks``); else the library raises."""
        verified: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return verified

    def signed_by(self, secret: str) -> bool:
        try:
            self.verify(secret)
        except WebhookVerificationError:
            return False
        return True


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0
    hang: bool = False  # never answer (until the client gives up)
    reset: bool = False  # close the connection without an answer
    headers: dict[str, str] = field(default_factory=dict)
    stream_bytes: int = 0  # then send this many more body bytes (a huge body)


Behaviour = Callable[[Request], Reply | Awaitable[Reply]]


def ok(_request: Request) -> Reply:
    return Reply()


class Receiver:
    """``async with Receiver(behave) as r``: serves on ``r.url`` (127.0.0.1, a free port)."""

    def __init__(self, behave: Behaviour = ok) -> None:
        self.behave = behave
        self.requests: list[Request] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self.arrived = asyncio.Condition()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def __aenter__(self) -> Receiver:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), timeout=5)

    # --- what arrived ---------------------------------------------------------------------

    def acknowledged(self) -> list[Request]:
        """Requests answered with a 2xx, in the order answered."""
        done = [r for r in self.requests if r.status is not None and 200 <= r.status < 300]
        return sorted(done, key=lambda r: r.answered or 0.0)

    def acknowledged_ids(self) -> set[str]:
        return {r.event_id for r in self.acknowledged()}

    async def wait_for(self, check: Callable[[Receiver], bool], *, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        async with self.arrived:
            while not check(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"receiver: condition not met within {within}s;"
                        f" {len(self.requests)} request(s)"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.arrived.wait(), timeout=left)

    async def wait_acknowledged(self, ids: set[str], *, within: float = 30.0) -> None:
        await self.wait_for(lambda r: ids <= r.acknowledged_ids(), within=within)

    # --- serving --------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await self._read(reader)
                if request is None:
                    return
                self.requests.append(request)
                await self._notify()
                reply = self.behave(request)
                if not isinstance(reply, Reply):
                    reply = await reply
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                if reply.hang:
                    # Until the client gives up and closes (or the receiver stops).
                    await reader.read()
                    return
                if reply.reset:
                    transport = writer.transport
                    sock = transport.get_extra_info("socket")
                    if sock is not None:
                        import socket
                        import struct

                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                    transport.abort()
                    return
                head = [f"HTTP/1.1 {reply.status} X"]
                length = len(reply.body) + reply.stream_bytes
                headers = {"content-length": str(length), **reply.headers}
                head += [f"{k}: {v}" for k, v in headers.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + reply.body)
                sent = 0
                chunk = b"x" * 65536
                while sent < reply.stream_bytes:
                    part = chunk[: reply.stream_bytes - sent]
                    writer.write(part)
                    sent += len(part)
                    await writer.drain()
                await writer.drain()
                request.status = reply.status
                request.answered = time.monotonic()
                await self._notify()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _notify(self) -> None:
        async with self.arrived:
            self.arrived.notify_all()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Request | None:
        try:
            line = await reader.readline()
        except ConnectionError:
            return None
        if not line:
            return None
        _method, path, _version = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Request(path=path, headers=headers, body=body, at=time.monotonic())
