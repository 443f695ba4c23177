"""Waiting for an order's status the way a shop does once it has webhooks: a loopback receiver
(``webhooks/receiver.py``, signatures checked with ``standardwebhooks``) registered at a gateway
(``POST /v1/webhook-endpoints``), and one awaitable per order and event type
(docs/webhooks.md, docs/benchmarks.md).

Events come from the order store: the worker's dispatcher sends a status change once the
workflow has written it there. ``probe`` says whether that happens on this stack (a first
order's ``order.held`` arrives within a few seconds); the engine section polls instead when it
does not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

import httpx

from bench.stats import Deadline, SectionTimeout
from webhooks.receiver import ReceivedEvent, WebhookReceiver
from workflows.models import EscrowStatus

WANTED = (EscrowStatus.HELD, EscrowStatus.PAID_OUT)
STOPPED = (
    EscrowStatus.NEEDS_ATTENTION,
    EscrowStatus.FAILED,
    EscrowStatus.EXPIRED,
    EscrowStatus.CANCELLED,
    EscrowStatus.REFUNDED,
)


def event_type(status: EscrowStatus) -> str:
    return f"order.{status.value.lower()}"


class WebhookWaiter:
    """``async with WebhookWaiter(gateway) as w``: ``await w.wait(ref, HELD, deadline)``."""

    def __init__(self, gateway: httpx.AsyncClient) -> None:
        self.gateway = gateway
        self.receiver = WebhookReceiver(self._arrived, on_refused=self._refused)
        self.endpoint: str | None = None
        self.received = 0
        self.refused: list[str] = []
        self._seen: dict[tuple[str, str], asyncio.Event] = defaultdict(asyncio.Event)
        self._stopped: dict[str, str] = {}

    async def __aenter__(self) -> WebhookWaiter:
        await self.receiver.__aenter__()
        types = [event_type(s) for s in (*WANTED, *STOPPED)]
        r = await self.gateway.post(
            "/v1/webhook-endpoints",
            json={"url": self.receiver.url, "eventTypes": types, "description": "bench"},
        )
        if r.status_code != 201:
            await self.receiver.__aexit__(None, None, None)
            raise RuntimeError(f"webhook endpoint not registered: {r.status_code} {r.text[:300]}")
        answer: dict[str, Any] = r.json()
        self.endpoint = str(answer["id"])
        self.receiver.secret = str(answer["secret"])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.endpoint is not None:
            with contextlib.suppress(httpx.HTTPError):
                await self.gateway.delete(f"/v1/webhook-endpoints/{self.endpoint}")
        await self.receiver.__aexit__(*exc)

    def _arrived(self, event: ReceivedEvent) -> None:
        self.received += 1
        self._seen[(event.order_ref, event.type)].set()
        if event.type in {event_type(s) for s in STOPPED}:
            self._stopped[event.order_ref] = event.type
            for (ref, _), waiting in self._seen.items():
                if ref == event.order_ref:
                    waiting.set()

    def _refused(self, reason: str) -> None:
        self.refused.append(reason)

    async def wait(self, ref: str, status: EscrowStatus, deadline: Deadline) -> dict[str, Any]:
        arrived = self._seen[(ref, event_type(status))]
        try:
            await asyncio.wait_for(arrived.wait(), timeout=max(deadline.remaining(), 0.01))
        except TimeoutError:
            raise SectionTimeout(f"order {ref}: no {event_type(status)} webhook in time") from None
        if ref in self._stopped:
            raise RuntimeError(f"order {ref} stopped: {self._stopped[ref]}")
        return {"orderRef": ref, "status": status.value}

    async def probe(self, ref: str, within: float) -> bool:
        """Whether ``order.held`` of ``ref`` arrives within ``within`` seconds."""
        try:
            await asyncio.wait_for(self._seen[(ref, event_type(EscrowStatus.HELD))].wait(), within)
        except TimeoutError:
            return False
        return True
