"""Section ``engine``: escrow orders against the engine's limit, on one dev server in one run.

The stack is ``bench/process_stack.py``: the dev server, the sandbox, the escrow worker, the
gateway and the engine baseline's worker, each its own process. After a warm-up, three batches
run one after another with the same count and the same number in flight: engine, escrow,
engine again (the engine figure is the mean of the two, so a machine that gets busier or quieter
during the run moves both sides). Then the happy-path history is counted, and IPN intake over
HTTP is timed against a raw signal (``bench/ipn_intake.py``). Every batch reports the CPU each
process spent per order, which says what bounds the ratio on a machine whose cores are busy.
"""

from __future__ import annotations

import secrets
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import httpx
from temporalio.client import Client

from bench import drivers, ipn_intake, profiling, sdk_metrics
from bench.drivers import (
    EscrowDriver,
    OrderTiming,
    PollingWaiter,
    Waiter,
    batch_figures,
    buyer_id,
    engine_order,
    engine_workflow_id,
    gateway_client,
    in_flight,
)
from bench.engine_workflow import ENGINE_TASK_QUEUE
from bench.process_stack import WEBHOOK_POLL_S, ProcessStack, process_stack
from bench.stats import Deadline, ratio
from bench.webhook_waiter import WebhookWaiter
from workflows.models import TASK_QUEUE, workflow_id_for

HISTORY_SAMPLES = 3
WEBHOOK_PROBE_S = 8.0
TARGETS = {
    "escrow_over_engine_throughput": (">=", 0.85),
    "ipn_over_signal_p99": ("<=", 1.15),
    "history_events_happy_path": ("<=", 50),
}


@dataclass(frozen=True)
class EngineOptions:
    orders: int
    in_flight: int
    poll_ms: float
    ipn_orders: int
    ipn_rounds: int
    ipn_concurrency: int
    profile_dir: Path | None = None

    @classmethod
    def for_run(
        cls,
        *,
        quick: bool,
        orders: int | None = None,
        in_flight: int | None = None,
        profile_dir: Path | None = None,
    ) -> EngineOptions:
        if quick:
            return cls(
                orders=orders or 8,
                in_flight=in_flight or 4,
                poll_ms=drivers.POLL_S * 1000,
                ipn_orders=4,
                ipn_rounds=2,
                ipn_concurrency=4,
                profile_dir=profile_dir,
            )
        return cls(
            orders=orders or 120,
            in_flight=in_flight or 40,
            poll_ms=drivers.POLL_S * 1000,
            ipn_orders=40,
            ipn_rounds=10,
            ipn_concurrency=8,
            profile_dir=profile_dir,
        )


def cpu_per_order(
    before: dict[str, float], after: dict[str, float], orders: int
) -> dict[str, float]:
    """Milliseconds of CPU per order, per process, and their ``total``."""
    spent = {name: after[name] - before.get(name, 0.0) for name in after}
    figures = {name: round(seconds * 1000 / orders, 2) for name, seconds in sorted(spent.items())}
    figures["total"] = round(sum(spent.values()) * 1000 / orders, 2)
    return figures


async def timed_batch(
    stack: ProcessStack,
    count: int,
    limit: int,
    order: Callable[[int], Awaitable[OrderTiming]],
) -> dict[str, Any]:
    rpcs_before = {name: await sdk_metrics.requests(a) for name, a in stack.sdk_metrics.items()}
    before = stack.cpu_seconds()
    timings = await in_flight(count, limit, order)
    after = stack.cpu_seconds()
    figures = batch_figures(timings)
    figures["cpu_ms_per_order"] = cpu_per_order(before, after, count)
    if rpcs_before:
        rpcs = {}
        for name, address in stack.sdk_metrics.items():
            counted = sdk_metrics.per_order(
                rpcs_before[name], await sdk_metrics.requests(address), count
            )
            if counted["total"] >= 0.5:  # leave out the idle parts
                rpcs[name] = counted
        figures["temporal_rpcs_per_order"] = rpcs
    return figures


async def choose_waiter(
    hooks: WebhookWaiter, polling: PollingWaiter, warm_up: EscrowDriver, ref: str
) -> Waiter:
    """Drive one order with polling; wait for webhooks when its ``order.held`` arrived."""
    await warm_up.order(0, ref, buyer_id(0))
    return hooks if await hooks.probe(ref, WEBHOOK_PROBE_S) else polling


def driver_figures(waiter: Waiter, polling: PollingWaiter, hooks: WebhookWaiter) -> dict[str, Any]:
    if waiter is hooks:
        return {
            "waits_by": "webhooks",
            "dispatcher_poll_interval_ms": WEBHOOK_POLL_S * 1000,
            "webhooks_received": hooks.received,
            "webhooks_refused": len(hooks.refused),
        }
    return {
        "waits_by": "polling",
        "why": "no order.held webhook arrived for the first order: the workflow does not write"
        " the order store, which webhooks are sent from",
        "poll_interval_ms": polling.interval * 1000,
        "status_reads": polling.reads,
        "status_reads_unavailable": polling.unavailable,
        "last_unavailable": polling.last_error,
    }


def targets(ratios: dict[str, float]) -> dict[str, dict[str, Any]]:
    met: dict[str, dict[str, Any]] = {}
    for name, (op, bound) in TARGETS.items():
        value = ratios.get(name)
        ok = None if value is None else (value >= bound if op == ">=" else value <= bound)
        met[name] = {"value": value, "target": f"{op} {bound}", "met": ok}
    return met


async def history_figures(client: Client, refs: list[str], engine_ref: str) -> dict[str, Any]:
    counts = []
    events: list[str] = []
    for ref in refs:
        events = await drivers.history_events(client, workflow_id_for(ref))
        counts.append(len(events))
    engine_events = await drivers.history_events(client, engine_workflow_id(engine_ref))
    return {
        "escrow_events": int(median(counts)),
        "escrow_events_by_type": dict(Counter(events).most_common()),
        "escrow_sequence": drivers.compact(events),
        "engine_events": len(engine_events),
        "engine_sequence": drivers.compact(engine_events),
    }


async def run(
    *, quick: bool, deadline: Deadline, options: EngineOptions | None = None
) -> dict[str, Any]:
    opts = options or EngineOptions.for_run(quick=quick)
    tag = secrets.token_hex(3)
    with tempfile.TemporaryDirectory(prefix="cotpay-bench-engine-") as tmp:
        async with process_stack(Path(tmp), engine=True, sdk_metrics=True) as stack:
            return await _measure(stack, opts, tag, deadline)


async def _measure(
    stack: ProcessStack, opts: EngineOptions, tag: str, deadline: Deadline
) -> dict[str, Any]:
    client = await stack.client()
    await stack.wait_workers(client, TASK_QUEUE, "worker")
    await stack.wait_workers(client, ENGINE_TASK_QUEUE, "engine-worker")
    gateways = [gateway_client(url, stack.api_key) for url in stack.gateways]
    sandbox = httpx.AsyncClient(base_url=stack.sandbox_url, timeout=30.0)
    sender = ipn_intake.IpnSender(stack, client, stack.gateways)
    hooks = WebhookWaiter(gateways[0])
    warm = 2
    try:
        await hooks.__aenter__()
        await drivers.create_users(sandbox, warm + opts.orders + opts.ipn_orders)
        polling = PollingWaiter(gateways, opts.poll_ms / 1000)

        def escrow_ref(phase: str, i: int) -> str:
            return f"bench-{tag}-{phase}-{i}"

        waiter = await choose_waiter(
            hooks,
            polling,
            EscrowDriver(gateways, sandbox, client, polling, deadline),
            escrow_ref("warm", 0),
        )
        escrow = EscrowDriver(gateways, sandbox, client, waiter, deadline)
        for i in range(warm):
            if i > 0:
                await escrow.order(i, escrow_ref("warm", i), buyer_id(i))
            await engine_order(client, escrow_ref("warm", i), deadline)

        async def engine_batch(phase: str) -> dict[str, Any]:
            return await timed_batch(
                stack,
                opts.orders,
                opts.in_flight,
                lambda i: engine_order(client, escrow_ref(phase, i), deadline),
            )

        engine_1 = await engine_batch("engine1")
        recording = None
        if opts.profile_dir is not None:
            pids = {name: stack.pid(name) for name in ("worker", "gateway", "sandbox")}
            recording = profiling.Recording(
                opts.profile_dir, {k: v for k, v in pids.items() if v is not None}
            )
            await recording.start()
        escrow_batch = await timed_batch(
            stack,
            opts.orders,
            opts.in_flight,
            lambda i: escrow.order(i, escrow_ref("escrow", i), buyer_id(warm + i)),
        )
        if recording is not None:
            escrow_batch["profile"] = await recording.stop()
        engine_2 = await engine_batch("engine2")
        history = await history_figures(
            client,
            [escrow_ref("escrow", i) for i in range(min(HISTORY_SAMPLES, opts.orders))],
            escrow_ref("engine1", 0),
        )
        parked = await _park(gateways, opts, tag, warm + opts.orders)
        ipn = await ipn_intake.measure(
            sender,
            parked,
            amount=drivers.AMOUNT,
            rounds=opts.ipn_rounds,
            concurrency=opts.ipn_concurrency,
            deadline=deadline,
        )
    finally:
        await hooks.__aexit__(None, None, None)
        await sender.aclose()
        await sandbox.aclose()
        for gateway in gateways:
            await gateway.aclose()
    engine_rate = (engine_1["orders_per_s"] + engine_2["orders_per_s"]) / 2
    ratios = {
        "escrow_over_engine_throughput": ratio(escrow_batch["orders_per_s"], engine_rate),
        "ipn_over_signal_p50": ipn["ipn_over_signal_p50"],
        "ipn_over_signal_p99": ipn["ipn_over_signal_p99"],
        "history_events_happy_path": history["escrow_events"],
        "escrow_over_engine_cpu_per_order": ratio(
            escrow_batch["cpu_ms_per_order"]["total"],
            (engine_1["cpu_ms_per_order"]["total"] + engine_2["cpu_ms_per_order"]["total"]) / 2,
        ),
    }
    return {
        "orders": opts.orders,
        "in_flight": opts.in_flight,
        "driver": driver_figures(waiter, polling, hooks),
        "worker_settings": stack.worker_settings or "defaults (docs/deployment.md)",
        "engine_1": engine_1,
        "escrow": escrow_batch,
        "engine_2": engine_2,
        "engine_orders_per_s": round(engine_rate, 2),
        "history": history,
        "ipn_intake": ipn,
        "ratios": ratios,
        "targets": targets(ratios),
    }


async def _park(
    gateways: list[httpx.AsyncClient], opts: EngineOptions, tag: str, first_buyer: int
) -> list[tuple[str, int]]:
    """Start ``opts.ipn_orders`` escrow orders and leave them in AWAITING_PAYMENT."""
    parked: list[tuple[str, int]] = []

    async def one(i: int) -> OrderTiming:
        ref = f"bench-{tag}-ipn-{i}"
        view = await drivers.start_escrow(
            gateways[i % len(gateways)], ref, buyer_id(first_buyer + i)
        )
        parked.append((ref, int(view["cotpayOrderId"])))
        return OrderTiming(0.0, 0.0, 0.0)

    await in_flight(opts.ipn_orders, opts.in_flight, one)
    return sorted(parked)
