"""Read a worker's Temporal SDK metrics (``ESCROW_SDK_METRICS_ADDRESS``, Prometheus text).

Where an order's time goes, as the SDK sees it: how long workflow and activity tasks waited for
a worker (schedule-to-start) and how long they ran, how many it ran, and the sticky cache's
size. Histogram means are ``sum / count``; the figures are totals since the worker started, so a
phase's figures are the difference of two scrapes (``delta``).
"""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

HISTOGRAMS = (
    "temporal_workflow_task_schedule_to_start_latency",
    "temporal_workflow_task_execution_latency",
    "temporal_workflow_task_replay_latency",
    "temporal_workflow_endtoend_latency",
    "temporal_activity_schedule_to_start_latency",
    "temporal_activity_execution_latency",
    "temporal_request_latency",
)
COUNTERS = (
    "temporal_workflow_task_queue_poll_succeed",
    "temporal_sticky_cache_hit",
    "temporal_sticky_cache_miss",
    "temporal_sticky_cache_total_forced_eviction",
    "temporal_workflow_task_execution_failed",
)
GAUGES = ("temporal_sticky_cache_size",)

REQUESTS = ("temporal_request", "temporal_long_request")

Scrape = dict[str, float]


async def _text(address: str) -> str:
    async with httpx.AsyncClient(timeout=10.0) as http:
        return (await http.get(f"http://{address}/metrics")).text


async def requests(address: str) -> Scrape:
    """Temporal RPCs the process made, by operation (``temporal_request`` and
    ``temporal_long_request``, e.g. ``ExecuteMultiOperation``, ``QueryWorkflow``)."""
    counts: Scrape = {}
    for family in text_string_to_metric_families(await _text(address)):
        for sample in family.samples:
            if sample.name.removesuffix("_total") in REQUESTS:
                operation = sample.labels.get("operation", "?")
                counts[operation] = counts.get(operation, 0.0) + sample.value
    return counts


def per_order(before: Scrape, after: Scrape, orders: int) -> dict[str, float]:
    """RPCs per order by operation between two ``requests`` scrapes (those that changed)."""
    figures = {
        op: round((after[op] - before.get(op, 0.0)) / orders, 2)
        for op in sorted(after)
        if after[op] - before.get(op, 0.0) > 0
    }
    figures["total"] = round(sum(v for k, v in figures.items()), 2)
    return figures


async def scrape(address: str) -> Scrape:
    """Sums and counts of the histograms, the counters and the gauges, summed over labels."""
    text = await _text(address)
    figures: Scrape = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if (
                (name.endswith(("_sum", "_count")) and name.rsplit("_", 1)[0] in HISTOGRAMS)
                or name.removesuffix("_total") in COUNTERS
                or name in GAUGES
            ):
                key = name.removesuffix("_total")
                figures[key] = figures.get(key, 0.0) + sample.value
    return figures


def delta(before: Scrape, after: Scrape) -> dict[str, Any]:
    """Per-phase figures: each histogram's count and mean (ms), counters' increments, gauges."""
    out: dict[str, Any] = {}
    for name in HISTOGRAMS:
        count = after.get(f"{name}_count", 0.0) - before.get(f"{name}_count", 0.0)
        total = after.get(f"{name}_sum", 0.0) - before.get(f"{name}_sum", 0.0)
        if count > 0:
            short = name.removeprefix("temporal_")
            out[short] = {"count": int(count), "mean_ms": round(total / count, 2)}
    for name in COUNTERS:
        if name in after:
            out[name.removeprefix("temporal_")] = int(after[name] - before.get(name, 0.0))
    for name in GAUGES:
        if name in after:
            out[name.removeprefix("temporal_")] = int(after[name])
    return out
