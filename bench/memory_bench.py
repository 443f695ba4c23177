"""Section ``memory``: the worker's resident memory against the number of parked orders, and
what an order evicted from the workflow cache costs when it wakes up (docs/benchmarks.md).

A fresh stack (``bench/process_stack.py``) runs one escrow worker with the cache setting
``max_cached_workflows`` (``--cache``; ``ESCROW_WORKER_MAX_CACHED_WORKFLOWS``). The section parks
``--parked`` orders in AWAITING_PAYMENT (update-with-start ``payment_info`` with the SDK, 20 at a
time: each order makes its three Cotpay calls, then waits for the buyer), and reads the worker's
RSS with psutil before the first order and at every tenth of them, and the SDK's sticky cache
size. Then it wakes orders one at a time with the read-only ``payment_info`` update, which the
worker must run as a workflow task: the most recently parked orders are in the cache, the first
parked ones (when more orders were parked than the cache holds) were evicted and are replayed
from their history first.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from bench import drivers, sdk_metrics
from bench.process_stack import HOST, ProcessStack, process_stack
from bench.stats import Deadline, ms, percentile, ratio
from runtime.worker_tuning import DEFAULT_MAX_CACHED_WORKFLOWS
from starter.client.escrow import start_search_attributes
from starter.stack import free_port
from workflows.models import (
    TASK_QUEUE,
    WORKFLOW_TYPE,
    OrderInput,
    PaymentInfo,
    PayoutRule,
    workflow_id_for,
)

DEFAULT_PARKED = 1000
QUICK_PARKED = 24
IN_FLIGHT = 20
PARK_ATTEMPTS = 5
RETRIED = frozenset(
    {RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE, RPCStatusCode.CANCELLED}
)
BUYERS = 50
WAKES = 20
QUICK_WAKES = 3
MB = 1024 * 1024
RSS_TARGET_MB = 300
TARGET_PARKED = 10_000


def _order(ref: str, buyer: str) -> OrderInput:
    return OrderInput(
        order_ref=ref,
        seller_id=drivers.SELLER,
        buyer_id=buyer,
        amount=drivers.AMOUNT,
        description="Parked benchmark order",
        payout_rule=PayoutRule.IMMEDIATE,
    )


async def park(client: Client, ref: str, buyer: str) -> None:
    """Start the order and wait for its payment data; a call the server let time out on a
    busy machine is repeated (``USE_EXISTING``: the repeat waits for the same order)."""
    order = _order(ref, buyer)
    for attempt in range(1, PARK_ATTEMPTS + 1):
        operation: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            WORKFLOW_TYPE,
            order,
            id=workflow_id_for(ref),
            task_queue=TASK_QUEUE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=start_search_attributes(order),
        )
        try:
            info = await client.execute_update_with_start_workflow(
                "payment_info", start_workflow_operation=operation, result_type=PaymentInfo
            )
        except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
            with contextlib.suppress(BaseException):
                await operation.workflow_handle()
            if attempt == PARK_ATTEMPTS or (
                isinstance(err, RPCError) and err.status not in RETRIED
            ):
                raise
            continue
        if info.error is not None:
            raise RuntimeError(f"order {ref} not parked: {info.error}")
        return


async def wake(client: Client, ref: str) -> float:
    handle = client.get_workflow_handle(workflow_id_for(ref))
    started = time.perf_counter()
    await handle.execute_update("payment_info", result_type=PaymentInfo)
    return time.perf_counter() - started


def _mb(value: int) -> float:
    return round(value / MB, 1)


async def run(
    *, quick: bool, deadline: Deadline, parked: int | None = None, cache: int | None = None
) -> dict[str, Any]:
    count = parked or (QUICK_PARKED if quick else DEFAULT_PARKED)
    cached = cache if cache is not None else DEFAULT_MAX_CACHED_WORKFLOWS
    if quick and cache is None:
        cached = QUICK_PARKED // 2
    metrics_address = f"{HOST}:{free_port(HOST)}"
    worker_env = {
        "ESCROW_WORKER_MAX_CACHED_WORKFLOWS": str(cached),
        "ESCROW_SDK_METRICS_ADDRESS": metrics_address,
    }
    with tempfile.TemporaryDirectory(prefix="cotpay-bench-memory-") as tmp:
        async with process_stack(Path(tmp), worker_env=worker_env) as stack:
            figures = await _measure(stack, count, cached, metrics_address, quick, deadline)
    return figures


async def _measure(
    stack: ProcessStack,
    count: int,
    cache: int,
    metrics_address: str,
    quick: bool,
    deadline: Deadline,
) -> dict[str, Any]:
    client = await stack.client()
    await stack.wait_workers(client, TASK_QUEUE, "worker")
    tag = secrets.token_hex(3)
    async with httpx.AsyncClient(base_url=stack.sandbox_url, timeout=30.0) as sandbox:
        await drivers.create_users(sandbox, BUYERS)
    refs = [f"park-{tag}-{i}" for i in range(count)]
    await park(client, f"park-{tag}-warmup", drivers.buyer_id(0))
    await asyncio.sleep(1.0)
    baseline = stack.rss_bytes("worker")
    checkpoints = {max(1, round(count * k / 10)) for k in range(1, 11)}
    samples: list[dict[str, Any]] = [{"parked": 0, "rss_mb": _mb(baseline)}]
    done = 0
    gate = asyncio.Semaphore(IN_FLIGHT)
    started = time.perf_counter()

    async def one(i: int) -> None:
        nonlocal done
        async with gate:
            deadline.check(f"parking order {i} of {count}")
            await park(client, refs[i], drivers.buyer_id(i % BUYERS))
        done += 1
        if done in checkpoints:
            scrape = await sdk_metrics.scrape(metrics_address)
            samples.append(
                {
                    "parked": done,
                    "rss_mb": _mb(stack.rss_bytes("worker")),
                    "sticky_cache_size": int(scrape.get("temporal_sticky_cache_size", -1)),
                }
            )
            print(f"memory: {samples[-1]}", file=sys.stderr, flush=True)

    try:
        async with asyncio.TaskGroup() as group:
            for i in range(count):
                group.create_task(one(i))
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    park_seconds = time.perf_counter() - started
    await asyncio.sleep(2.0)
    final = stack.rss_bytes("worker")
    samples.sort(key=lambda s: int(s["parked"]))
    wakes = QUICK_WAKES if quick else WAKES
    wake_figures = await _wakes(client, refs, cache, wakes, metrics_address)
    full = min(count, cache)
    at_full = next((s for s in samples if s["parked"] >= full), samples[-1])
    figures: dict[str, Any] = {
        "parked_orders": count,
        "max_cached_workflows": cache,
        "park_seconds": round(park_seconds, 1),
        "park_orders_per_s": round(count / park_seconds, 2) if park_seconds > 0 else 0.0,
        "rss_mb_baseline": _mb(baseline),
        "rss_mb_final": _mb(final),
        "rss_by_parked": samples,
        "kb_per_cached_order": round((at_full["rss_mb"] - _mb(baseline)) * 1024 / max(full, 1), 1),
        "wake": wake_figures,
    }
    if count > full:
        figures["kb_per_order_beyond_cache"] = round(
            (_mb(final) - at_full["rss_mb"]) * 1024 / (count - full), 2
        )
    figures["targets"] = {
        "worker_rss_mb": {
            "value": _mb(final),
            "target": f"<= {RSS_TARGET_MB} with {TARGET_PARKED} parked",
            "met": _mb(final) <= RSS_TARGET_MB if count >= TARGET_PARKED else None,
        }
    }
    figures["ratios"] = {
        "parked_orders": count,
        "max_cached_workflows": cache,
        "worker_rss_mb": _mb(final),
        "evicted_over_cached_wake_p50": wake_figures.get("evicted_over_cached_p50"),
    }
    return figures


async def _wakes(
    client: Client, refs: list[str], cache: int, count: int, metrics_address: str
) -> dict[str, Any]:
    """Wake the newest orders (cached) and, if any were evicted, the oldest, alternately."""
    newest = refs[-count:]
    evictable = len(refs) - cache
    oldest = refs[: min(count, evictable)] if evictable > 0 else []
    before = await sdk_metrics.scrape(metrics_address)
    cached_s: list[float] = []
    evicted_s: list[float] = []
    for i in range(count):
        cached_s.append(await wake(client, newest[i]))
        if i < len(oldest):
            evicted_s.append(await wake(client, oldest[i]))
    after = await sdk_metrics.scrape(metrics_address)
    figures: dict[str, Any] = {
        "cached": {
            "orders": len(cached_s),
            "p50_ms": ms(percentile(cached_s, 50)),
            "max_ms": ms(max(cached_s)),
        },
        "sdk": sdk_metrics.delta(before, after),
    }
    if evicted_s:
        figures["evicted"] = {
            "orders": len(evicted_s),
            "p50_ms": ms(percentile(evicted_s, 50)),
            "max_ms": ms(max(evicted_s)),
        }
        figures["evicted_over_cached_p50"] = ratio(
            figures["evicted"]["p50_ms"], figures["cached"]["p50_ms"]
        )
    else:
        figures["evicted"] = None
        figures["evicted_note"] = "no order was evicted: parked orders fit in the cache"
    return figures
