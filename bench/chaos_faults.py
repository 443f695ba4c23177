"""What ``bench.chaos`` injects while orders run: sandbox faults, forged IPNs and SIGKILLs.

Every schedule (which fault, how strong, how long; which component is killed, when, for how
long; which order gets a forged IPN) is drawn from ``random.Random`` seeded by the run's seed,
so a seed names one plan. How the plan meets the orders still depends on timing.
Kills are one at a time: a component is killed, stays down for a moment and is restarted (with
bounded attempts) before the next kill. With a PostgreSQL order store (``bench.chaos_store``)
the plan also holds store outages: the ``store`` part is killed and stays down longer.
``supervise`` restarts a component that exited by itself and counts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from bench.chaos_http import CallFailed, Http
from bench.chaos_stack import ChaosStack
from cotpay.ipn import ipn_signature

log = structlog.get_logger(__name__)

KILLED = ("worker", "gateway", "temporal")
FAULT_KINDS = (
    "errorRate",
    "latencyMs",
    "ipnDropRate",
    "ipnDuplicateRate",
    "ipnReorder",
    "payoutFailRate",
)
START_ATTEMPTS = 5


def draw_faults(rng: random.Random) -> dict[str, Any]:
    """One fault window: one to three kinds of ``PUT /sandbox/faults``, with their strength."""
    faults: dict[str, Any] = {}
    for kind in rng.sample(FAULT_KINDS, rng.randint(1, 3)):
        if kind == "latencyMs":
            faults[kind] = rng.randint(100, 2000)
        elif kind == "ipnReorder":
            faults[kind] = True
        elif kind == "payoutFailRate":
            faults[kind] = round(rng.uniform(0.1, 0.4), 2)
        elif kind == "errorRate":
            faults[kind] = round(rng.uniform(0.05, 0.3), 2)
        else:
            faults[kind] = round(rng.uniform(0.1, 0.5), 2)
    return faults


STORE = "store"
STORE_DOWN_S = (3.0, 15.0)


def kill_plan(
    rng: random.Random, per_component: int, gap_s: float, store_outages: int = 0
) -> list[tuple[str, float, float]]:
    """(component, seconds before the kill, seconds down) for every kill, in order; a store
    outage lasts longer (``STORE_DOWN_S``) than a crash and restart."""
    names = [name for name in KILLED for _ in range(per_component)] + [STORE] * store_outages
    rng.shuffle(names)
    return [
        (
            name,
            gap_s * rng.uniform(0.5, 1.5),
            rng.uniform(*STORE_DOWN_S) if name == STORE else rng.uniform(0.2, 3.0),
        )
        for name in names
    ]


@dataclass
class ChaosCounts:
    fault_windows: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)
    restarts: Counter[str] = field(default_factory=Counter)
    start_failures: Counter[str] = field(default_factory=Counter)
    unexpected_exits: Counter[str] = field(default_factory=Counter)
    down_seconds: dict[str, float] = field(default_factory=dict)
    forged_ipns: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


class Chaos:
    def __init__(self, stack: ChaosStack, http: Http, seed: int) -> None:
        self.stack = stack
        self.http = http
        self.fault_rng = random.Random(f"{seed}:faults")
        self.kill_rng = random.Random(f"{seed}:kills")
        self.ipn_rng = random.Random(f"{seed}:ipns")
        self.counts = ChaosCounts()
        self.control = asyncio.Lock()

    async def ensure(self, name: str) -> None:
        """Start ``name`` if it is not running, with bounded attempts."""
        for attempt in range(1, START_ATTEMPTS + 1):
            if self.stack.alive(name):
                return
            try:
                await self.stack.start(name)
                return
            except (RuntimeError, OSError, TimeoutError) as exc:
                self.counts.start_failures[name] += 1
                log.warning("chaos.start_failed", component=name, attempt=attempt, error=str(exc))
                await asyncio.sleep(attempt)
        raise RuntimeError(f"{name} did not start after {START_ATTEMPTS} attempts")

    async def kills(self, plan: Sequence[tuple[str, float, float]], until: float) -> None:
        for name, gap, down in plan:
            await asyncio.sleep(gap)
            if time.monotonic() > until:
                self.counts.notes.append("kill plan cut short by the drive deadline")
                return
            async with self.control:
                began = time.monotonic()
                await self.stack.kill(name)
                self.counts.kills[name] += 1
                await asyncio.sleep(down)
                await self.ensure(name)
                self.counts.restarts[name] += 1
                spent = self.counts.down_seconds
                spent[name] = spent.get(name, 0.0) + time.monotonic() - began

    async def supervise(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            async with self.control:
                for name in self.stack.components:
                    if not self.stack.alive(name):
                        self.counts.unexpected_exits[name] += 1
                        log.warning("chaos.unexpected_exit", component=name)
                        await self.ensure(name)

    async def faults(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                faults = draw_faults(self.fault_rng)
                on, off = self.fault_rng.uniform(4, 12), self.fault_rng.uniform(2, 8)
                await self.http.sb_ok("PUT", "/sandbox/faults", faults)
                self.counts.fault_windows += 1
                self.counts.faults.update(faults.keys())
                await _sleep_or_stop(stop, on)
                await self.http.sb_ok("PUT", "/sandbox/faults", {})
                await _sleep_or_stop(stop, off)
        finally:
            await self.clear()

    async def clear(self) -> None:
        await self.http.sb_ok("PUT", "/sandbox/faults", {})

    async def forged_ipns(
        self,
        stop: asyncio.Event,
        candidates: Callable[[], list[tuple[str, int]]],
        ipn_secret: str,
    ) -> None:
        """Now and then an IPN Cotpay never sent: a wrong ``sig`` (must be 403), or a genuine
        ``sig`` with another Cotpay order's id (must change nothing: ``ipn_ignored``)."""
        while not stop.is_set():
            await _sleep_or_stop(stop, self.ipn_rng.uniform(2, 6))
            orders = candidates()
            if len(orders) < 2:
                continue
            (ref, _), (_, other_id) = self.ipn_rng.sample(orders, 2)
            step = self.ipn_rng.choice(("verify", "payment", "return"))
            status = {"verify": "HOLDING", "payment": "PAID_OUT", "return": "REFUNDED"}[step]
            body = {
                "idOrder": other_id,
                "status": status,
                "code": 10100,
                "message": "forged by the chaos harness",
                "amount": 30_000,
                "transactionId": f"FORGED-{self.ipn_rng.randrange(10**8)}",
            }
            bad = self.ipn_rng.random() < 0.5
            sig = "forged" if bad else ipn_signature(ipn_secret, ref, step)
            kind = "bad_signature" if bad else "foreign_order"
            try:
                response = await self.http.gw("POST", f"/ipn/{ref}/{step}?sig={sig}", body)
            except CallFailed:
                continue
            self.counts.forged_ipns[f"{kind} -> {response.status_code}"] += 1


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
