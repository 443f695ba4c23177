"""``python -m bench``: the project's benchmarks, as one JSON document on stdout.

Sections: ``envelope`` (seal + open, encrypted vs plain), ``sandbox`` (client calls to a
loopback sandbox per envelope), ``workflow`` (escrow orders start to PAID_OUT on a real dev
server). Every section has a fixed count of operations and a hard time limit; a section that
fails or runs out of time is reported with ``error`` and the exit code is 1. Logs go to stderr
at WARNING. Read the figures as ratios within one run (docs/benchmarks.md).
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

from bench import envelope_bench, sandbox_bench, workflow_bench
from bench.stats import Deadline
from cotpay.logs import configure_logging

SECTIONS = ("envelope", "sandbox", "workflow")
LIMITS_S = {"envelope": 60.0, "sandbox": 120.0, "workflow": 300.0}
QUICK_LIMITS_S = {"envelope": 30.0, "sandbox": 60.0, "workflow": 120.0}
_CANCEL_GRACE_S = 30.0

Runner = Callable[..., Awaitable[dict[str, Any]]]


async def _envelope(*, quick: bool, deadline: Deadline) -> dict[str, Any]:
    return envelope_bench.run(quick=quick, deadline=deadline)


RUNNERS: dict[str, Runner] = {
    "envelope": _envelope,
    "sandbox": sandbox_bench.run,
    "workflow": workflow_bench.run,
}


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


async def run_section(name: str, *, quick: bool) -> dict[str, Any]:
    limit = (QUICK_LIMITS_S if quick else LIMITS_S)[name]
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    try:
        figures = await asyncio.wait_for(
            RUNNERS[name](quick=quick, deadline=Deadline(limit)), timeout=limit + _CANCEL_GRACE_S
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


async def run(sections: list[str], *, quick: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "benchmark": "cotpay-escrow",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine(),
        "sections": {},
    }
    for name in sections:
        document["sections"][name] = await run_section(name, quick=quick)
    return document


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (smoke test)")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only this section")
    parser.add_argument("--out", type=Path, help="also write the JSON document to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("console", logging.WARNING)
    sections = [s for s in SECTIONS if args.only is None or s in args.only]
    document = asyncio.run(run(sections, quick=args.quick))
    text = json.dumps(document, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    failed = [name for name, figures in document["sections"].items() if "error" in figures]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
