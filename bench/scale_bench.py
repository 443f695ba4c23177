"""Section ``scale``: two escrow workers and two gateways on one Temporal server, beside one of
each, and the sandbox's ledger as the proof that no order was paid twice (docs/benchmarks.md).

One stack (``bench/process_stack.py``) with workers ``worker`` and ``worker-2`` and gateways
``gateway`` and ``gateway-2``; worker ``i`` signs its IPN URLs for gateway ``i``, so Cotpay's
(the sandbox's) IPNs arrive at both. First ``worker-2`` is stopped and a batch runs through
``gateway`` alone; then ``worker-2`` starts again and a batch of the same size runs with the
shop's calls alternating over both gateways. Both batches use the engine section's driver and
its count and concurrency. At the end the ledger must show, for every order, one hold and one
payout, and no refund.
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench import drivers
from bench.drivers import EscrowDriver, PollingWaiter, buyer_id, gateway_client
from bench.engine_bench import EngineOptions, choose_waiter, driver_figures, timed_batch
from bench.process_stack import ProcessStack, process_stack
from bench.stats import Deadline, ratio
from bench.webhook_waiter import WebhookWaiter
from workflows.models import TASK_QUEUE


async def run(
    *,
    quick: bool,
    deadline: Deadline,
    orders: int | None = None,
    in_flight: int | None = None,
) -> dict[str, Any]:
    opts = EngineOptions.for_run(quick=quick, orders=orders, in_flight=in_flight)
    with tempfile.TemporaryDirectory(prefix="cotpay-bench-scale-") as tmp:
        async with process_stack(Path(tmp), workers=2, gateways=2) as stack:
            return await _measure(stack, opts, deadline)


async def _measure(stack: ProcessStack, opts: EngineOptions, deadline: Deadline) -> dict[str, Any]:
    client = await stack.client()
    await stack.wait_workers(client, TASK_QUEUE, "worker", "worker-2")
    tag = secrets.token_hex(3)
    gateways = [gateway_client(url, stack.api_key) for url in stack.gateways]
    sandbox = httpx.AsyncClient(base_url=stack.sandbox_url, timeout=30.0)
    hooks = WebhookWaiter(gateways[0])
    warm = 2
    try:
        await hooks.__aenter__()
        await drivers.create_users(sandbox, warm + 2 * opts.orders)
        polling = PollingWaiter(gateways, opts.poll_ms / 1000)
        waiter = await choose_waiter(
            hooks,
            polling,
            EscrowDriver(gateways, sandbox, client, polling, deadline),
            f"scale-{tag}-warm-0",
        )

        def driver(count: int) -> EscrowDriver:
            return EscrowDriver(gateways[:count], sandbox, client, waiter, deadline)

        both = driver(2)
        for i in range(1, warm):
            await both.order(i, f"scale-{tag}-warm-{i}", buyer_id(i))
        await stack.stack.stop_part("worker-2")
        one = driver(1)
        single = await timed_batch(
            stack,
            opts.orders,
            opts.in_flight,
            lambda i: one.order(i, f"scale-{tag}-one-{i}", buyer_id(warm + i)),
        )
        await stack.stack.restart("worker-2")
        await stack.wait_workers(client, TASK_QUEUE, "worker-2")
        double = await timed_batch(
            stack,
            opts.orders,
            opts.in_flight,
            lambda i: both.order(i, f"scale-{tag}-two-{i}", buyer_id(warm + opts.orders + i)),
        )
        ledger = (await sandbox.get("/sandbox/ledger")).json()
    finally:
        await hooks.__aexit__(None, None, None)
        await sandbox.aclose()
        for gateway in gateways:
            await gateway.aclose()
    money = ledger_check(ledger["orders"], expected=warm + 2 * opts.orders)
    if money["violations"]:
        raise RuntimeError(f"money invariants broken: {money['violations'][:5]}")
    return {
        "orders": opts.orders,
        "in_flight": opts.in_flight,
        "driver": driver_figures(waiter, polling, hooks),
        "one_worker_one_gateway": single,
        "two_workers_two_gateways": double,
        "ledger": money,
        "ratios": {
            "two_over_one_throughput": ratio(double["orders_per_s"], single["orders_per_s"]),
        },
    }


def ledger_check(orders: list[dict[str, Any]], *, expected: int) -> dict[str, Any]:
    """Every order held once and paid out once, none refunded; ``expected`` orders in all."""
    violations: list[str] = []
    for order in orders:
        holds, payouts, refunds = (len(order[k]) for k in ("holds", "payouts", "refunds"))
        if (holds, payouts, refunds) != (1, 1, 0):
            violations.append(
                f"idOrder {order['idOrder']}: {holds} holds, {payouts} payouts, {refunds} refunds"
            )
    if len(orders) != expected:
        violations.append(f"{len(orders)} Cotpay orders for {expected} orders driven")
    return {
        "cotpay_orders": len(orders),
        "payouts": sum(len(o["payouts"]) for o in orders),
        "violations": violations,
    }
