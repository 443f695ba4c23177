"""Orders driven down every path of the escrow over HTTP, as a shop, buyer, seller and operator.

A shop backend drives the gateway (``/v1/orders``); the buyer and seller act through the sandbox
admin API (``/sandbox/orders/{id}/pay|return``, ``PATCH /sandbox/users/{id}``); an operator
answers every ``NEEDS_ATTENTION`` with ``retry`` (after relinking the seller on 10900/11000) or
``release`` (after a rejected return), and the run records each reason. Every wait is bounded.

The sandbox runs Cotpay's ``t1-1600`` rule while orders use ``payoutRule: immediate``, so our
side pays as soon as it may and Cotpay decides. ``SandboxClock`` makes that decision per order
on one shared clock that only moves forward: once an order's money is held, the clock moves two
days past the hold before the shop says "delivered", so Cotpay allows the payout. An order of
the ``payout_too_early`` path is paid and delivered without that move, so its first payout gets
11100; no move happens while such an order still waits for its first payout call, and the next
move lets its retry (five minutes later) through.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.chaos_check import FINAL
from bench.chaos_http import CallFailed, Http

PATHS = (
    "happy",
    "dispute_approved",
    "dispute_rejected",
    "cancel",
    "expiry",
    "late_payment",
    "payout_too_early",
    "wallet_unlinked",
    "bank_unlinked",
)
EXPECTED = {
    "happy": "PAID_OUT",
    "dispute_approved": "REFUNDED",
    "dispute_rejected": "PAID_OUT",
    "cancel": "CANCELLED",
    "expiry": "EXPIRED",
    "late_payment": "REFUNDED",
    "payout_too_early": "PAID_OUT",
    "wallet_unlinked": "PAID_OUT",
    "bank_unlinked": "PAID_OUT",
}
MOVE_S = 2 * 86400  # past T+1 16:00 of any hold
STEP_S = 300.0
FINAL_S = 600.0  # a payout may meet 11100 by chance (below) and wait 5 minutes
TOO_EARLY_S = 900.0
POLL_S = 1.0
ARMED_MAX_S = 180.0
MAX_OPERATOR_ACTIONS = 8
OPERATOR_REPEAT_S = 20.0
RETURN_PENDING_AT_COTPAY = "order is RETURN_PENDING"
BUSY_ATTEMPTS = 5  # a seller decision meeting 409 order_busy (a money call on the order)


class PathFailed(RuntimeError):
    pass


def assign_paths(count: int, paths: tuple[str, ...], rng: random.Random) -> list[str]:
    """``count`` paths, each of ``paths`` in turn (``happy`` twice per turn), shuffled."""
    cycle = [p for p in paths for _ in range(2 if p == "happy" else 1)]
    chosen = [cycle[i % len(cycle)] for i in range(count)]
    rng.shuffle(chosen)
    return chosen


@dataclass
class OrderRun:
    index: int
    path: str
    ref: str
    seller: str
    buyer: str
    body: dict[str, Any]
    started: bool = False
    id_order: int | None = None
    t_start: float | None = None
    t_settled: float | None = None
    final: str | None = None
    error: str | None = None
    too_early_seen: bool = False
    operator: list[dict[str, Any]] = field(default_factory=list)
    handled: dict[tuple[Any, Any], float] = field(default_factory=dict)

    @property
    def settle_seconds(self) -> float | None:
        if self.t_start is None or self.t_settled is None:
            return None
        return self.t_settled - self.t_start


def new_run(index: int, path: str, seed: int) -> OrderRun:
    seller, buyer = f"s{seed % 1000:03d}{index:05d}", f"b{seed % 1000:03d}{index:05d}"
    timers: dict[str, str] = {}
    if path in ("expiry", "late_payment"):
        timers = {
            "paymentWindow": "PT8S",
            "gracePeriod": "PT15M" if path == "late_payment" else "PT15S",
        }
    elif path == "cancel":
        timers = {"gracePeriod": "PT15S"}
    body: dict[str, Any] = {
        "orderRef": f"chaos-{seed}-{index:04d}-{path}",
        "sellerId": seller,
        "buyerId": buyer,
        "amount": 50_000 + 1_000 * index,
        "description": f"chaos order {index} ({path})",
        "payoutRule": "immediate",
    }
    if timers:
        body["timers"] = timers
    return OrderRun(index, path, body["orderRef"], seller, buyer, body)


class SandboxClock:
    """The sandbox's one clock, shared by every order; it only moves forward (module docstring).

    ``pay`` returns the clock offset the money was held at; ``payable`` moves the clock two days
    past it, so that Cotpay allows the payout, but never while an order armed for 11100 still
    waits for its first payout call (bounded by ``ARMED_MAX_S``). Checks and moves happen under
    one lock with the payments, so no payment slips between a check and a move.
    """

    def __init__(self, http: Http) -> None:
        self.http = http
        self.base = 0
        self.lock = asyncio.Lock()
        self.armed: dict[str, tuple[float, int]] = {}  # ref -> (since, offset at the hold)
        self.waiting: dict[str, int] = {}  # met 11100: ref -> offset at the hold
        self.moves_pending = 0
        self.moves = 0

    async def _move(self, offset: int) -> None:
        if offset > self.base:
            await self.http.sb_ok("PUT", "/sandbox/clock", {"offsetSeconds": offset})
            self.base = offset
            self.moves += 1

    def _armed_blocks(self) -> bool:
        now = time.monotonic()
        return any(now - since < ARMED_MAX_S for since, _ in self.armed.values())

    async def pay(self, id_order: int) -> int:
        async with self.lock:
            held_at = self.base
            response = await self.http.sb(
                "POST", f"/sandbox/orders/{id_order}/pay", {"outcome": "success"}
            )
        if response.status_code >= 300:
            order = await self.http.sb_ok("GET", f"/sandbox/orders/{id_order}")
            if order.get("status") == "AWAITING_PAYMENT":
                raise PathFailed(f"pay {id_order}: {response.status_code} {response.text[:200]}")
        return held_at

    async def payable(self, held_at: int) -> None:
        """Until Cotpay allows paying out money held at clock offset ``held_at``."""
        self.moves_pending += 1
        try:
            while True:
                async with self.lock:
                    if self.base >= held_at + MOVE_S:
                        return
                    if not self._armed_blocks():
                        await self._move(held_at + MOVE_S)
                        return
                await asyncio.sleep(0.2)
        finally:
            self.moves_pending -= 1

    async def decide(self, id_order: int, decision: str) -> None:
        for _ in range(BUSY_ATTEMPTS):
            async with self.lock:
                response = await self.http.sb(
                    "POST", f"/sandbox/orders/{id_order}/return", {"decision": decision}
                )
            if response.status_code < 300:
                return
            if response.status_code != 409 or "order_busy" not in response.text:
                break
            await asyncio.sleep(1.0)
        raise PathFailed(f"return {decision} {id_order}: {response.text[:200]}")

    async def pay_armed(self, ref: str, id_order: int) -> None:
        """Pay at the current clock, armed: the first payout must meet 11100."""
        deadline = time.monotonic() + ARMED_MAX_S
        while (self.waiting or self.moves_pending) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        async with self.lock:
            self.armed[ref] = (time.monotonic(), self.base)
            response = await self.http.sb(
                "POST", f"/sandbox/orders/{id_order}/pay", {"outcome": "success"}
            )
        if response.status_code >= 300:
            self.armed.pop(ref, None)
            raise PathFailed(f"pay {id_order}: {response.status_code} {response.text[:200]}")

    def observed(self, ref: str) -> None:
        """``ref`` met 11100 (or paid out without): it waits for the clock to move."""
        armed = self.armed.pop(ref, None)
        if armed is not None:
            self.waiting[ref] = armed[1]

    def disarm(self, ref: str) -> None:
        self.armed.pop(ref, None)
        self.waiting.pop(ref, None)

    async def keep(self) -> None:
        """Move the clock for the orders that met 11100, once nothing armed blocks it."""
        while True:
            await asyncio.sleep(1.0)
            async with self.lock:
                if self.waiting and not self._armed_blocks():
                    await self._move(max(self.waiting.values()) + MOVE_S)
                    self.waiting.clear()


class Driver:
    def __init__(self, http: Http, clock: SandboxClock, deadline: float) -> None:
        self.http = http
        self.clock = clock
        self.deadline = deadline
        self.sources: dict[str, str] = {}  # orderRef -> X-Escrow-Source of its last GET
        self.paths: dict[str, Callable[[OrderRun], Awaitable[None]]] = {
            "happy": self.happy,
            "dispute_approved": self.dispute_approved,
            "dispute_rejected": self.dispute_rejected,
            "cancel": self.cancel,
            "expiry": self.expiry,
            "late_payment": self.late_payment,
            "payout_too_early": self.payout_too_early,
            "wallet_unlinked": self.wallet_unlinked,
            "bank_unlinked": self.bank_unlinked,
        }

    async def run(self, run: OrderRun) -> None:
        run.t_start = time.monotonic()
        try:
            await self._users(run)
            await self.paths[run.path](run)
        except (CallFailed, PathFailed, TimeoutError) as exc:
            run.error = f"{type(exc).__name__}: {exc}"
        except asyncio.CancelledError:
            run.error = "still waiting when the run ended"
            raise
        finally:
            self.clock.disarm(run.ref)

    # --- the paths ---------------------------------------------------------------------------

    async def happy(self, run: OrderRun) -> None:
        await self._held(run)
        await self._message(run, "delivered")
        await self._final(run, "PAID_OUT")

    async def dispute_approved(self, run: OrderRun) -> None:
        await self._disputed(run)
        await self.clock.decide(self._id(run), "approve")
        await self._final(run, "REFUNDED")

    async def dispute_rejected(self, run: OrderRun) -> None:
        await self._disputed(run)
        await self.clock.decide(self._id(run), "reject")
        await self._final(run, "PAID_OUT")  # the operator releases after RETURN_REJECTED

    async def cancel(self, run: OrderRun) -> None:
        await self._awaiting_payment(run)
        await self._message(run, "cancel", {"reason": "chaos: shop cancels"})
        await self._final(run, "CANCELLED")

    async def expiry(self, run: OrderRun) -> None:
        await self._start(run)
        await self._final(run, "EXPIRED")

    async def late_payment(self, run: OrderRun) -> None:
        await self._start(run)
        await self._wait(run, {"EXPIRED"})
        await self.clock.pay(self._id(run))
        late = frozenset({"EXPIRED"})  # until the late HOLDING reaches the order
        await self._sandbox_status(run, "RETURN_PENDING", late)
        await self.clock.decide(self._id(run), "approve")
        await self._final(run, "REFUNDED", passing=late)

    async def payout_too_early(self, run: OrderRun) -> None:
        await self._awaiting_payment(run)
        await self.clock.pay_armed(run.ref, self._id(run))
        await self._wait(run, {"HELD"})
        await self._message(run, "delivered")
        view = await self._wait(run, {"PAID_OUT"}, until=met_too_early, within=STEP_S)
        run.too_early_seen = met_too_early(view)
        self.clock.observed(run.ref)
        await self._final(run, "PAID_OUT", within=TOO_EARLY_S)

    async def wallet_unlinked(self, run: OrderRun) -> None:
        await self._unlinked(run, "walletLinked")

    async def bank_unlinked(self, run: OrderRun) -> None:
        await self._unlinked(run, "bankLinked")

    async def _unlinked(self, run: OrderRun, link: str) -> None:
        await self._held(run)
        await self.http.sb_ok("PATCH", f"/sandbox/users/{run.seller}", {link: False})
        await self._message(run, "delivered")
        await self._final(run, "PAID_OUT")  # the operator relinks and retries on 10900/11000

    # --- steps -------------------------------------------------------------------------------

    async def _users(self, run: OrderRun) -> None:
        for user, name in ((run.seller, "Chaos Seller"), (run.buyer, "Chaos Buyer")):
            body = {"name": name, "walletLinked": True, "bankLinked": True}
            await self.http.sb_ok("PUT", f"/sandbox/users/{user}", body)

    async def _start(self, run: OrderRun) -> dict[str, Any]:
        response = await self.http.gw("POST", "/v1/orders", run.body)
        if response.status_code not in (200, 201):
            raise PathFailed(f"start: {response.status_code} {response.text[:300]}")
        run.started = True
        view: dict[str, Any] = response.json()
        run.id_order = view.get("cotpayOrderId") or run.id_order
        return view

    async def _awaiting_payment(self, run: OrderRun) -> None:
        view = await self._start(run)
        if view.get("status") != "AWAITING_PAYMENT":
            await self._wait(run, {"AWAITING_PAYMENT"})

    async def _held(self, run: OrderRun) -> None:
        """Paid and HELD, with the sandbox clock far enough on for Cotpay to allow a payout."""
        await self._awaiting_payment(run)
        held_at = await self.clock.pay(self._id(run))
        await self._wait(run, {"HELD"})
        await self.clock.payable(held_at)

    async def _disputed(self, run: OrderRun) -> None:
        await self._held(run)
        await self._message(run, "dispute", {"reason": "chaos: buyer disputes"})
        await self._sandbox_status(run, "RETURN_PENDING")

    async def _message(self, run: OrderRun, name: str, body: Any = None) -> None:
        response = await self.http.gw("POST", f"/v1/orders/{run.ref}/{name}", body)
        if response.status_code != 200:
            raise PathFailed(f"{name}: {response.status_code} {response.text[:300]}")

    async def _final(
        self,
        run: OrderRun,
        status: str,
        *,
        within: float = FINAL_S,
        passing: frozenset[str] = frozenset(),
    ) -> None:
        await self._wait(run, {status}, within=within, passing=passing)
        run.final = status
        run.t_settled = time.monotonic()

    def _id(self, run: OrderRun) -> int:
        if run.id_order is None:
            raise PathFailed("no Cotpay order id")
        return run.id_order

    async def view(self, ref: str) -> dict[str, Any] | None:
        response = await self.http.gw("GET", f"/v1/orders/{ref}")
        self.sources[ref] = response.headers.get("x-escrow-source", "")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise PathFailed(f"GET {ref}: {response.status_code} {response.text[:200]}")
        view: dict[str, Any] = response.json()
        return view

    async def _wait(
        self,
        run: OrderRun,
        targets: set[str],
        *,
        until: Callable[[dict[str, Any]], bool] | None = None,
        within: float = STEP_S,
        passing: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """Until the order is in ``targets`` (or ``until(view)``); operates on the way.

        A final status outside ``targets`` and ``passing`` ends the path."""
        deadline = min(time.monotonic() + within, self.deadline)
        while True:
            view = await self.view(run.ref)
            if view is not None:
                run.id_order = view.get("cotpayOrderId") or run.id_order
                status = view["status"]
                if status in targets or (until is not None and until(view)):
                    return view
                if status in FINAL and status not in passing:
                    raise PathFailed(f"ended {status} while waiting for {sorted(targets)}")
                if status == "NEEDS_ATTENTION":
                    await self.operate(run, view)
            if time.monotonic() > deadline:
                status = view["status"] if view else "not found"
                raise TimeoutError(f"still {status} after waiting for {sorted(targets)}")
            await asyncio.sleep(POLL_S)

    async def _sandbox_status(
        self, run: OrderRun, status: str, passing: frozenset[str] = frozenset()
    ) -> None:
        deadline = min(time.monotonic() + STEP_S, self.deadline)
        while True:
            order = await self.http.sb_ok("GET", f"/sandbox/orders/{self._id(run)}")
            if order.get("status") == status:
                return
            view = await self.view(run.ref)
            if view is not None and view["status"] == "NEEDS_ATTENTION":
                await self.operate(run, view)
            elif view is not None and view["status"] in FINAL - passing:
                raise PathFailed(f"ended {view['status']} while waiting for Cotpay {status}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Cotpay order still {order.get('status')}, not {status}")
            await asyncio.sleep(POLL_S)

    # --- the operator ------------------------------------------------------------------------

    async def operate(self, run: OrderRun, view: dict[str, Any]) -> None:
        """What an operator does for an order in NEEDS_ATTENTION (docs/runbook.md 3)."""
        attention = view.get("attention") or {}
        key = (attention.get("since"), attention.get("reason"))
        now = time.monotonic()
        if now - run.handled.get(key, -OPERATOR_REPEAT_S) < OPERATOR_REPEAT_S:
            return
        if len(run.operator) >= MAX_OPERATOR_ACTIONS:
            return
        run.handled[key] = now
        code, step = attention.get("code"), attention.get("step")
        reason = str(attention.get("reason") or "")
        seller = None
        if code in (10900, 11000):
            body = {"walletLinked": True, "bankLinked": True}
            await self.http.sb_ok("PATCH", f"/sandbox/users/{run.seller}", body)
            seller = "relinked"
        elif code == 10800 and RETURN_PENDING_AT_COTPAY in reason:
            # A return request is open at Cotpay although the order saw the seller reject one:
            # a retried return-request opened it (docs/reliability.md, "Open finding").
            order = await self.http.sb_ok("GET", f"/sandbox/orders/{self._id(run)}")
            if order.get("status") == "RETURN_PENDING":
                await self.clock.decide(self._id(run), "reject")
                seller = "rejected the open return request again"
        action = "release" if step == "return_rejected" else "retry"
        response = await self.http.gw(
            "POST",
            f"/v1/orders/{run.ref}/operator",
            {"action": action, "operator": "chaos-harness", "note": "chaos run"},
        )
        answer = (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        run.operator.append(
            {
                "reason": attention.get("reason"),
                "code": code,
                "step": step,
                "seller": seller,
                "action": action,
                "answer": response.status_code,
                "error": answer.get("error") if response.status_code >= 300 else None,
            }
        )


def met_too_early(view: dict[str, Any]) -> bool:
    return any(e.get("kind") == "payout_too_early" for e in view.get("timeline") or [])
