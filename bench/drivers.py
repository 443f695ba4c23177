"""Drive orders against a ``ProcessStack``: escrow orders over HTTP as a shop does, engine
orders with the SDK, a fixed number at a time (docs/benchmarks.md).

An escrow order: ``POST /v1/orders`` (update-with-start: customerID, create-order and
verify-order are done when it answers), the sandbox admin ``pay`` (the buyer pays; the sandbox
sends the HOLDING IPN to the gateway), wait for HELD, ``POST /v1/orders/{ref}/delivered``, wait
for PAID_OUT, then for the workflow to close (the sandbox's PAID_OUT IPN closes it). The waits
poll ``GET /v1/orders/{ref}`` (``PollingWaiter``) until webhooks exist.

An engine order (``bench/engine_workflow.py``): update-with-start ``created``, signal ``paid``,
signal ``delivered``, wait for the result.

An order is done when its workflow closed; a batch's throughput is its orders over the time from
its first start to its last close.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from bench.engine_workflow import ENGINE_TASK_QUEUE, ENGINE_WORKFLOW
from bench.stats import Deadline, ms, percentile, rate
from workflows.models import EscrowStatus, workflow_id_for

AMOUNT = 250_000
SELLER = "0922000000"
POLL_S = 0.1
_STUCK = frozenset(
    {
        EscrowStatus.NEEDS_ATTENTION,
        EscrowStatus.FAILED,
        EscrowStatus.EXPIRED,
        EscrowStatus.CANCELLED,
        EscrowStatus.REFUNDED,
    }
)


def buyer_id(i: int) -> str:
    return f"09{23_000_000 + i:08d}"


@dataclass(frozen=True)
class OrderTiming:
    started: float
    """``time.perf_counter()`` when the order's first call was sent."""
    start_s: float
    """How long the start call took (the answer carries Cotpay's payment data)."""
    done: float
    """``time.perf_counter()`` when the driver saw the workflow closed."""

    @property
    def total_s(self) -> float:
        return self.done - self.started


def batch_figures(timings: list[OrderTiming]) -> dict[str, Any]:
    first = min(t.started for t in timings)
    last = max(t.done for t in timings)
    seconds = last - first
    totals = [t.total_s for t in timings]
    starts = [t.start_s for t in timings]
    return {
        "orders": len(timings),
        "seconds": round(seconds, 3),
        "orders_per_s": rate(len(timings), seconds),
        "order_ms_p50": ms(percentile(totals, 50)),
        "order_ms_p99": ms(percentile(totals, 99)),
        "start_ms_p50": ms(percentile(starts, 50)),
        "start_ms_p99": ms(percentile(starts, 99)),
    }


async def in_flight(
    count: int, limit: int, order: Callable[[int], Awaitable[OrderTiming]]
) -> list[OrderTiming]:
    """``order(0..count-1)``, at most ``limit`` at a time; the first failure is raised."""
    gate = asyncio.Semaphore(limit)

    async def one(i: int) -> OrderTiming:
        async with gate:
            return await order(i)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(i)) for i in range(count)]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


# --- escrow orders over HTTP -----------------------------------------------------------------


class Waiter(Protocol):
    async def wait(self, ref: str, status: EscrowStatus, deadline: Deadline) -> dict[str, Any]:
        """The order view once the order is in ``status``; raise when it stopped elsewhere."""
        ...


class PollingWaiter:
    """``GET /v1/orders/{ref}`` every ``interval`` seconds, on the gateways in turn."""

    def __init__(self, gateways: list[httpx.AsyncClient], interval: float = POLL_S) -> None:
        self.gateways = gateways
        self.interval = interval
        self.reads = 0
        self.unavailable = 0
        self.last_error = ""

    async def wait(self, ref: str, status: EscrowStatus, deadline: Deadline) -> dict[str, Any]:
        while True:
            gateway = self.gateways[self.reads % len(self.gateways)]
            self.reads += 1
            r = await gateway.get(f"/v1/orders/{ref}")
            if r.status_code == 503:  # a shop retries a read that Temporal did not answer
                self.unavailable += 1
                self.last_error = r.text[:300]
                deadline.check(f"order {ref} waiting for {status.value}")
                await asyncio.sleep(self.interval)
                continue
            r.raise_for_status()
            view: dict[str, Any] = r.json()
            now = EscrowStatus(view["status"])
            if now is status:
                return view
            if now in _STUCK:
                raise RuntimeError(f"order {ref} stopped in {now.value}: {view.get('attention')}")
            deadline.check(f"order {ref} waiting for {status.value}")
            await asyncio.sleep(self.interval)


def gateway_client(url: str, api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=60.0,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
    )


async def create_users(sandbox: httpx.AsyncClient, count: int) -> None:
    body = {"name": "Bench User", "walletLinked": True, "bankLinked": True}
    for user in [SELLER, *(buyer_id(i) for i in range(count))]:
        r = await sandbox.put(f"/sandbox/users/{user}", json=body)
        r.raise_for_status()


def order_body(ref: str, buyer: str) -> dict[str, Any]:
    return {
        "orderRef": ref,
        "sellerId": SELLER,
        "buyerId": buyer,
        "amount": AMOUNT,
        "description": "Benchmark order",
    }


async def start_escrow(gateway: httpx.AsyncClient, ref: str, buyer: str) -> dict[str, Any]:
    r = await gateway.post("/v1/orders", json=order_body(ref, buyer))
    if r.status_code != 201:
        raise RuntimeError(f"order {ref}: start answered {r.status_code} {r.text[:300]}")
    view: dict[str, Any] = r.json()
    if view["status"] != EscrowStatus.AWAITING_PAYMENT.value or view.get("cotpayOrderId") is None:
        raise RuntimeError(f"order {ref} started in {view['status']}")
    return view


@dataclass
class EscrowDriver:
    gateways: list[httpx.AsyncClient]
    sandbox: httpx.AsyncClient
    temporal: Client
    waiter: Waiter
    deadline: Deadline

    async def order(self, i: int, ref: str, buyer: str) -> OrderTiming:
        gateway = self.gateways[i % len(self.gateways)]
        started = time.perf_counter()
        view = await start_escrow(gateway, ref, buyer)
        start_s = time.perf_counter() - started
        paid = await self.sandbox.post(
            f"/sandbox/orders/{view['cotpayOrderId']}/pay", json={"outcome": "success"}
        )
        paid.raise_for_status()
        await self.waiter.wait(ref, EscrowStatus.HELD, self.deadline)
        r = await gateway.post(f"/v1/orders/{ref}/delivered", json={})
        if r.status_code != 200:
            raise RuntimeError(f"order {ref}: delivered answered {r.status_code} {r.text[:300]}")
        await self.waiter.wait(ref, EscrowStatus.PAID_OUT, self.deadline)
        handle = self.temporal.get_workflow_handle(workflow_id_for(ref))
        await asyncio.wait_for(handle.result(), timeout=max(self.deadline.remaining(), 0.1))
        return OrderTiming(started=started, start_s=start_s, done=time.perf_counter())


# --- engine orders ---------------------------------------------------------------------------


def engine_workflow_id(ref: str) -> str:
    return f"engine-{ref}"


async def engine_order(client: Client, ref: str, deadline: Deadline) -> OrderTiming:
    started = time.perf_counter()
    operation: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        ENGINE_WORKFLOW,
        ref,
        id=engine_workflow_id(ref),
        task_queue=ENGINE_TASK_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )
    await client.execute_update_with_start_workflow(
        "created", start_workflow_operation=operation, result_type=str
    )
    start_s = time.perf_counter() - started
    handle = await operation.workflow_handle()
    await handle.signal("paid")
    await handle.signal("delivered")
    await asyncio.wait_for(handle.result(), timeout=max(deadline.remaining(), 0.1))
    return OrderTiming(started=started, start_s=start_s, done=time.perf_counter())


# --- history ---------------------------------------------------------------------------------


async def history_events(client: Client, workflow_id: str) -> list[str]:
    """The event types of the workflow's history, in order (``EVENT_TYPE_`` left off)."""
    from temporalio.api.enums.v1 import EventType

    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events]


_TASK = ("WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED")
_ACTIVITY = ("ACTIVITY_TASK_SCHEDULED", "ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_COMPLETED")


def compact(events: list[str]) -> str:
    """The event types in one line: ``WFT`` for a scheduled/started/completed workflow task,
    ``ACT`` for a scheduled/started/completed activity with nothing in between."""
    out: list[str] = []
    i = 0
    while i < len(events):
        window = tuple(events[i : i + 3])
        if window == _TASK:
            out.append("WFT")
            i += 3
        elif window == _ACTIVITY:
            out.append("ACT")
            i += 3
        else:
            out.append(events[i])
            i += 1
    return " ".join(out)
