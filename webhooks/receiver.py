"""A small webhook receiver, as a shop would write one (docs/webhooks.md, Verifying): it checks
each request with the ``standardwebhooks`` library (signature and timestamp tolerance), drops
repeats by ``webhook-id``, and hands each new event to a callback. ``cotpay-escrow demo`` uses it
to print the events of its order as they arrive.

A raw asyncio HTTP/1.1 server on loopback: one request per connection, bodies up to 1 MiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY = 1024 * 1024
MAX_SEEN = 10_000


@dataclass(frozen=True)
class ReceivedEvent:
    id: str
    type: str
    order_ref: str
    status: str
    body: dict[str, Any]
    signatures: int  # how many signatures the header carried (2 during a rotation)


class WebhookReceiver:
    """``async with WebhookReceiver(on_event) as r``: serves on ``r.url``; set ``r.secret`` to
    the endpoint's secret once it is registered (until then requests get 503 and are retried).
    ``on_event`` gets each new verified event; ``on_refused`` each request that fails the
    check (with the library's reason)."""

    def __init__(
        self,
        on_event: Callable[[ReceivedEvent], None],
        *,
        on_refused: Callable[[str], None] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/webhooks",
    ) -> None:
        self.on_event = on_event
        self.on_refused = on_refused
        self.host = host
        self.port = port
        self.path = path
        self.secret: str | None = None
        self.seen: dict[str, None] = {}
        self.duplicates = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    async def __aenter__(self) -> WebhookReceiver:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        """Check one request; the HTTP status to answer."""
        if self.secret is None:
            return 503
        try:
            event = Webhook(self.secret).verify(body, headers)
        except (WebhookVerificationError, ValueError) as err:
            if self.on_refused is not None:
                self.on_refused(str(err))
            return 400
        event_id = headers.get("webhook-id", "")
        if event_id in self.seen:
            self.duplicates += 1
            return 204
        self.seen[event_id] = None
        if len(self.seen) > MAX_SEEN:
            self.seen.pop(next(iter(self.seen)))
        data = event.get("data") or {}
        self.on_event(
            ReceivedEvent(
                id=event_id,
                type=str(event.get("type", "")),
                order_ref=str(data.get("orderRef", "")),
                status=str(data.get("status", "")),
                body=event,
                signatures=len(headers.get("webhook-signature", "").split()),
            )
        )
        return 204

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status = 400
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=10)
            parts = line.decode("latin-1").split(" ")
            headers: dict[str, str] = {}
            while True:
                raw = await asyncio.wait_for(reader.readline(), timeout=10)
                if raw in (b"\r\n", b"\n", b""):
                    break
                name, _, value = raw.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(parts) >= 2 and parts[0] == "POST" and 0 <= length <= MAX_BODY:
                body = await asyncio.wait_for(reader.readexactly(length), timeout=10)
                status = self.handle(headers, body) if parts[1] == self.path else 404
            writer.write(
                f"HTTP/1.1 {status} {'OK' if status < 300 else 'Error'}\r\n"
                "content-length: 0\r\nconnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def event_line(event: ReceivedEvent) -> str:
    """One line for a terminal: type, order, status and that the signature checked out."""
    signatures = "signature ok" if event.signatures == 1 else f"{event.signatures} signatures ok"
    return f"  webhook  {event.type:<24} {event.order_ref}  ({signatures}, {event.id})"


def body_text(event: ReceivedEvent) -> str:
    return json.dumps(event.body, ensure_ascii=False)
