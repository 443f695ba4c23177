"""Asynchronous IPN delivery with retries and exponential backoff until the receiver says 2xx.

Each IPN is a record in its order's ``ipns`` log (persisted with the order); a background task
per pending record makes the attempts. Attempt n failing (non-2xx, connection error, timeout or
an injected drop) waits ``min(base * 2**(n-1), cap)`` before attempt n+1; delivery stops after
``max_attempts`` or ``max_age`` seconds (``gaveUp``). A restarted sandbox resumes pending records.

The body is sealed in the envelope (docs/cotpay-protocol.md) for the merchant's public key, with
the path of the IPN URL as the action (plain JSON in plain mode). Faults: ``ipnDropRate`` (the
attempt is not made and counts as failed), ``ipnDuplicateRate`` (the IPN is sent twice),
``ipnReorder`` (a random first delay up to ``reorder_window`` so later IPNs may overtake earlier
ones).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from cotpay.envelope import Sealed
from sandbox.clock import SandboxClock
from sandbox.domain import IpnRecord, Order
from sandbox.faults import FaultInjector, IpnPolicy
from sandbox.store import Store

log = structlog.get_logger("sandbox.ipn")

Sealer = Callable[[dict[str, Any], str], Sealed]


def ipn_path(url: str) -> str:
    return urlsplit(url).path or "/"


class IpnDispatcher:
    def __init__(
        self,
        store: Store,
        clock: SandboxClock,
        faults: FaultInjector,
        policy: IpnPolicy,
        sealer: Sealer,
    ) -> None:
        self.store = store
        self.clock = clock
        self.faults = faults
        self.policy = policy
        self._seal = sealer
        self._http: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._backlog: list[tuple[int, int]] = []

    def add_record(self, order: Order, status: str, url: str, body: dict[str, Any]) -> int:
        seq = len(order.ipns) + 1
        order.ipns.append(
            IpnRecord(seq=seq, status=status, url=url, body=body, createdAt=self.clock.now())
        )
        return seq

    def schedule(self, id_order: int, seq: int) -> None:
        if self._http is None:
            self._backlog.append((id_order, seq))
            return
        delay = self.faults.reorder_delay(self.policy.reorder_window)
        task = asyncio.get_running_loop().create_task(self._run(id_order, seq, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(self.policy.timeout), follow_redirects=False
        )
        for order in list(self.store.orders.values()):
            for record in order.ipns:
                if record.pending:
                    self.schedule(order.idOrder, record.seq)
        backlog, self._backlog = self._backlog, []
        for id_order, seq in backlog:
            self.schedule(id_order, seq)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def _record(self, id_order: int, seq: int) -> tuple[Order, IpnRecord] | None:
        order = self.store.orders.get(id_order)
        if order is None:
            return None
        for record in order.ipns:
            if record.seq == seq:
                return order, record
        return None

    async def _run(self, id_order: int, seq: int, first_delay: float) -> None:
        started = time.monotonic()
        if first_delay > 0:
            await asyncio.sleep(first_delay)
        bound = log.bind(idOrder=id_order, seq=seq)
        while True:
            found = self._record(id_order, seq)
            if found is None or not found[1].pending:
                return
            url, body, status = found[1].url, found[1].body, found[1].status
            duplicate = False
            error: str | None
            if self.faults.ipn_dropped():
                ok, error = False, "dropped (fault)"
            else:
                ok, error = await self._send(url, body)
                if ok and self.faults.ipn_duplicated():
                    duplicate = True
                    await self._send(url, body)
            found = self._record(id_order, seq)
            if found is None:
                return
            order, record = found
            record.attempts += 1
            record.duplicates += int(duplicate)
            record.lastError = error
            if ok:
                record.deliveredAt = self.clock.now()
            elif (
                record.attempts >= self.policy.max_attempts
                or time.monotonic() - started >= self.policy.max_age
            ):
                record.gaveUp = True
            self.store.save_order(order)
            if ok:
                bound.info("sandbox.ipn.delivered", status=status, attempts=record.attempts)
                return
            if record.gaveUp:
                bound.warning("sandbox.ipn.gave_up", status=status, attempts=record.attempts)
                return
            delay = self.policy.delay_after(record.attempts)
            bound.info("sandbox.ipn.retry", status=status, error=error, retry_in=delay)
            await asyncio.sleep(delay)

    async def _send(self, url: str, body: dict[str, Any]) -> tuple[bool, str | None]:
        assert self._http is not None
        sealed = self._seal(body, ipn_path(url))
        try:
            response = await self._http.post(url, content=sealed.body, headers=sealed.headers)
        except httpx.HTTPError as exc:
            return False, type(exc).__name__
        if 200 <= response.status_code < 300:
            return True, None
        return False, f"HTTP {response.status_code}"
