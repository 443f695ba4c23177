"""``python -m bench``: the project's benchmarks, as one JSON document on stdout.

Sections: ``envelope`` (seal + open, encrypted vs plain), ``sandbox`` (client calls to a
loopback sandbox per envelope), ``workflow`` (escrow orders start to PAID_OUT on a real dev
server, in one process), ``engine`` (escrow orders over HTTP, every part its own process,
against a no-op workflow of the same shape on the same server), ``memory`` (worker RSS against
parked orders, and what waking an evicted order costs), ``scale`` (two workers and two gateways
beside one of each). The document starts with ``ratios``: the figures the targets are about.

Every section has a fixed count of operations and a hard time limit; a section that fails or
runs out of time is reported with ``error`` and the exit code is 1. Logs go to stderr at
WARNING. Read the figures as ratios within one run (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    engine_bench,
    envelope_bench,
    memory_bench,
    sandbox_bench,
    scale_bench,
    workflow_bench,
)
from bench.stats import Deadline
from cotpay.logs import configure_logging

SECTIONS = ("envelope", "sandbox", "workflow", "engine", "memory", "scale")
DEFAULT_SECTIONS = ("envelope", "sandbox", "engine", "memory", "scale")
LIMITS_S = {
    "envelope": 60.0,
    "sandbox": 120.0,
    "workflow": 300.0,
    "engine": 600.0,
    "memory": 600.0,
    "scale": 600.0,
}
QUICK_LIMITS_S = {
    "envelope": 30.0,
    "sandbox": 60.0,
    "workflow": 120.0,
    "engine": 240.0,
    "memory": 240.0,
    "scale": 240.0,
}
PARKED_S_EACH = (
    0.4  # the memory section's limit grows with --parked (a busy 2-core machine parks ~3/s)
)
_CANCEL_GRACE_S = 30.0

Runner = Callable[..., Awaitable[dict[str, Any]]]


async def _envelope(*, quick: bool, deadline: Deadline) -> dict[str, Any]:
    return envelope_bench.run(quick=quick, deadline=deadline)


def runners(args: argparse.Namespace) -> dict[str, Runner]:
    """The sections' entry points, with the flags that size them."""

    async def engine(*, quick: bool, deadline: Deadline) -> dict[str, Any]:
        options = engine_bench.EngineOptions.for_run(
            quick=quick, orders=args.orders, in_flight=args.in_flight, profile_dir=args.profile
        )
        return await engine_bench.run(quick=quick, deadline=deadline, options=options)

    async def memory(*, quick: bool, deadline: Deadline) -> dict[str, Any]:
        return await memory_bench.run(
            quick=quick, deadline=deadline, parked=args.parked, cache=args.cache
        )

    async def scale(*, quick: bool, deadline: Deadline) -> dict[str, Any]:
        return await scale_bench.run(
            quick=quick, deadline=deadline, orders=args.orders, in_flight=args.in_flight
        )

    return {
        "envelope": _envelope,
        "sandbox": sandbox_bench.run,
        "workflow": workflow_bench.run,
        "engine": engine,
        "memory": memory,
        "scale": scale,
    }


def limit_for(name: str, args: argparse.Namespace) -> float:
    limit = (QUICK_LIMITS_S if args.quick else LIMITS_S)[name]
    if name == "memory" and args.parked:
        limit = max(limit, 300.0 + args.parked * PARKED_S_EACH)
    return limit


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def cpu_seconds() -> float:
    """User + system CPU of this process (all threads) and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def run_section(name: str, runner: Runner, *, quick: bool, limit: float) -> dict[str, Any]:
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    try:
        figures = await asyncio.wait_for(
            runner(quick=quick, deadline=Deadline(limit)), timeout=limit + _CANCEL_GRACE_S
        )
    except Exception as exc:
        figures = {"error": f"{type(exc).__name__}: {exc}"}
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
    figures["section_seconds"] = round(elapsed, 3)
    figures["cpu_seconds"] = round(cpu, 3)
    figures["cpu_per_wall"] = round(cpu / elapsed, 3) if elapsed > 0 else 0.0
    figures["limit_seconds"] = limit
    return figures


def summary(sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ratios the targets are about, from the sections that ran (docs/benchmarks.md)."""
    ratios: dict[str, Any] = {}
    engine = sections.get("engine", {})
    for key in (
        "escrow_over_engine_throughput",
        "ipn_over_signal_p50",
        "ipn_over_signal_p99",
        "history_events_happy_path",
    ):
        if key in engine.get("ratios", {}):
            ratios[key] = engine["ratios"][key]
    memory = sections.get("memory", {})
    for key in (
        "parked_orders",
        "max_cached_workflows",
        "worker_rss_mb",
        "evicted_over_cached_wake_p50",
    ):
        if key in memory.get("ratios", {}):
            ratios[key] = memory["ratios"][key]
    scale = sections.get("scale", {})
    if "two_over_one_throughput" in scale.get("ratios", {}):
        ratios["two_over_one_throughput"] = scale["ratios"]["two_over_one_throughput"]
    return ratios


async def run(
    sections: list[str], *, quick: bool, args: argparse.Namespace | None = None
) -> dict[str, Any]:
    args = args or parse_args(["--quick"] if quick else [])
    table = runners(args)
    document: dict[str, Any] = {
        "benchmark": "cotpay-escrow",
        "ratios": {},
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine(),
        "sections": {},
    }
    for name in sections:
        document["sections"][name] = await run_section(
            name, table[name], quick=quick, limit=limit_for(name, args)
        )
    document["ratios"] = summary(document["sections"])
    return document


def ratio_lines(document: dict[str, Any]) -> list[str]:
    """The ratios with their targets, one per line, for a reader of ``make -s bench``."""
    targets: dict[str, Any] = {}
    for figures in document["sections"].values():
        targets.update(figures.get("targets", {}))
    lines = []
    for name, value in document["ratios"].items():
        target = targets.get(name)
        if target is None or target["met"] is None:
            lines.append(f"{name} = {value}")
        else:
            verdict = "met" if target["met"] else "NOT met"
            lines.append(f"{name} = {value} (target {target['target']}: {verdict})")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (smoke test)")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only this section")
    parser.add_argument("--out", type=Path, help="also write the JSON document to this file")
    parser.add_argument("--orders", type=int, help="orders per batch (engine, scale; default 120)")
    parser.add_argument("--in-flight", type=int, help="orders in flight (default 40)")
    parser.add_argument(
        "--parked", type=int, help="orders to park in AWAITING_PAYMENT (memory; default 1000)"
    )
    parser.add_argument(
        "--cache", type=int, help="the memory section's worker cache (max_cached_workflows)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="engine: py-spy profiles of worker, gateway, sandbox during the escrow batch here",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("console", logging.WARNING)
    sections = [s for s in SECTIONS if (s in args.only if args.only else s in DEFAULT_SECTIONS)]
    document = asyncio.run(run(sections, quick=args.quick, args=args))
    text = json.dumps(document, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    for line in ratio_lines(document):
        print(line, file=sys.stderr)
    failed = [name for name, figures in document["sections"].items() if "error" in figures]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
