"""``cotpay-escrow demo``: one order through a running stack, checkout to payout, step by step.

See docs/running.md.

Talks HTTP only: the gateway (``/v1/orders``) for the shop's side and the sandbox admin API
(``/sandbox/...``) for the buyer paying and the ledger check. With the ``t1-1600`` payout rule the
payout is not allowed before 16:00 (Vietnam) the next day. By default (``--shift-clock``) the
demo sets the sandbox clock back a few days while the buyer pays, so the hold Cotpay reports (and
the workflow counts from) lies before that instant and the payout follows at once; with
``--no-shift-clock`` it says when the payout is due and stops there.

Webhooks (docs/webhooks.md): unless ``--no-webhooks``, the demo first serves a local receiver,
registers it at ``POST /v1/webhook-endpoints`` and prints each event as it arrives, its
Standard Webhooks signature checked with the ``standardwebhooks`` library; it removes the
endpoint at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx

from webhooks.receiver import ReceivedEvent, WebhookReceiver, event_line
from workflows.models import EscrowStatus

DEFAULT_GATEWAY = "http://127.0.0.1:8000"
DEFAULT_SANDBOX = "http://127.0.0.1:8090"
DEFAULT_API_KEY = "dev-api-key"
DEFAULT_UI = "http://127.0.0.1:8233"
POLL_S = 0.5
BACKDATE = timedelta(days=3)
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
PROGRESS_EVERY_S = 5.0
WEBHOOK_WAIT_S = 10.0
WEBHOOK_QUIET_S = 2.0
FINAL_EVENTS = frozenset({"order.paid_out", "order.refunded", "order.failed", "order.expired"})


# Statuses the demo's order should never reach: waiting on would be pointless.
STOPPERS = frozenset(
    s.value
    for s in (
        EscrowStatus.FAILED,
        EscrowStatus.EXPIRED,
        EscrowStatus.CANCELLED,
        EscrowStatus.REFUNDED,
        EscrowStatus.NEEDS_ATTENTION,
    )
)


class DemoError(RuntimeError):
    pass


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="drive one order through the running stack (start, pay, deliver, payout)",
        description="Drive one escrow order through a running `cotpay-escrow run` stack.",
    )
    parser.add_argument(
        "--gateway-url",
        default=os.environ.get("ESCROW_GATEWAY_URL", DEFAULT_GATEWAY),
        help=f"default: ESCROW_GATEWAY_URL or {DEFAULT_GATEWAY}",
    )
    parser.add_argument(
        "--sandbox-url",
        default=os.environ.get("COTPAY_SANDBOX_URL", DEFAULT_SANDBOX),
        help=f"default: COTPAY_SANDBOX_URL or {DEFAULT_SANDBOX}",
    )
    parser.add_argument(
        "--ui-url",
        default=os.environ.get("TEMPORAL_UI_URL", DEFAULT_UI),
        help=f"Temporal web UI, for the order's link (default: TEMPORAL_UI_URL or {DEFAULT_UI})",
    )
    parser.add_argument("--amount", type=int, default=150_000, help="VND, at least 30000")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for each step (default 60)"
    )
    parser.add_argument(
        "--shift-clock",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=(
            "back-date the payment in the sandbox so Cotpay's T+1 16:00 instant has passed and"
            " the payout happens now (default); --no-shift-clock shows the real wait"
        ),
    )
    parser.add_argument(
        "--webhooks",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="register a local webhook receiver and print each event as it arrives (default)",
    )
    parser.set_defaults(func=_main)


def _api_key() -> str:
    keys = [k.strip() for k in os.environ.get("ESCROW_API_KEYS", "").split(",") if k.strip()]
    return keys[0] if keys else DEFAULT_API_KEY


def _new_id() -> str:
    # Sandbox users are identified by a phone-like id (String(10)).
    return "09" + "".join(secrets.choice("0123456789") for _ in range(8))


def _at(value: str | None) -> str:
    if not value:
        return "--:--:--"
    try:
        return datetime.fromisoformat(value).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return value


class Demo:
    def __init__(
        self,
        gateway: httpx.AsyncClient,
        sandbox: httpx.AsyncClient,
        *,
        timeout: float,
        out: Callable[[str], None],
    ) -> None:
        self.gateway = gateway
        self.sandbox = sandbox
        self.timeout = timeout
        self.out = out
        self.seen_events = 0

    @staticmethod
    def ok(response: httpx.Response, what: str) -> dict[str, Any]:
        if response.status_code >= 400:
            raise DemoError(f"{what}: HTTP {response.status_code} {response.text[:300]}")
        body: dict[str, Any] = response.json() if response.content else {}
        return body

    async def create_user(self, user_id: str, name: str) -> None:
        body = {"name": name, "walletLinked": True, "bankLinked": True}
        self.ok(await self.sandbox.put(f"/sandbox/users/{user_id}", json=body), name)

    async def start_order(self, order: dict[str, Any]) -> dict[str, Any]:
        return self.ok(await self.gateway.post("/v1/orders", json=order), "start order")

    async def view(self, order_ref: str) -> dict[str, Any]:
        return self.ok(await self.gateway.get(f"/v1/orders/{order_ref}"), "order status")

    def show(self, view: dict[str, Any]) -> None:
        timeline: list[dict[str, Any]] = view.get("timeline") or []
        for event in timeline[self.seen_events :]:
            status = event.get("status") or ""
            detail = event.get("detail") or ""
            line = f"  {_at(event.get('time'))}  {event.get('kind', ''):<20} {status:<17} {detail}"
            self.out(line.rstrip())
        self.seen_events = len(timeline)

    async def wait_for(self, order_ref: str, targets: set[str], *, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        next_progress = time.monotonic() + PROGRESS_EVERY_S
        started = time.monotonic()
        while True:
            view = await self.view(order_ref)
            self.show(view)
            if view.get("status") in targets:
                return view
            if view.get("status") in STOPPERS - targets:
                reason = (view.get("attention") or {}).get("reason") or view.get("waitingFor")
                raise DemoError(
                    f"order is {view.get('status')} while waiting for {what}"
                    + (f": {reason}" if reason else "")
                )
            now = time.monotonic()
            if now >= deadline:
                raise DemoError(
                    f"timed out after {self.timeout:.0f}s waiting for {what} "
                    f"(status {view.get('status')}, waiting for: {view.get('waitingFor') or '?'})"
                )
            if now >= next_progress:
                waiting = view.get("waitingFor") or view.get("status")
                self.out(f"  ... {now - started:4.0f}s, waiting for {what}: {waiting}")
                next_progress = now + PROGRESS_EVERY_S
            await asyncio.sleep(POLL_S)

    async def payouts(self, id_order: int) -> list[Any]:
        ledger = self.ok(await self.sandbox.get("/sandbox/ledger"), "ledger")
        for entry in ledger.get("orders", []):
            if entry.get("idOrder") == id_order:
                payouts: list[Any] = entry.get("payouts", [])
                return payouts
        raise DemoError(f"order {id_order} is not in the sandbox ledger")


async def _backdate_sandbox(demo: Demo) -> float:
    """Set the sandbox clock back, so the hold it reports lies before the payout instant."""
    clock = demo.ok(await demo.sandbox.get("/sandbox/clock"), "sandbox clock")
    previous = float(clock.get("offsetSeconds") or 0)
    offset = int(previous - BACKDATE.total_seconds())
    demo.ok(
        await demo.sandbox.put("/sandbox/clock", json={"offsetSeconds": offset}),
        "shift sandbox clock",
    )
    demo.out(
        f"   --shift-clock: sandbox clock set back {BACKDATE.days} days, so the buyer pays "
        "'in the past' and Cotpay's T+1 16:00 payout instant has already passed"
    )
    return previous


async def _restore_sandbox(demo: Demo, previous: float) -> None:
    demo.ok(
        await demo.sandbox.put("/sandbox/clock", json={"offsetSeconds": int(previous)}),
        "restore sandbox clock",
    )
    demo.out("   --shift-clock: sandbox clock restored")


class WebhookListener:
    """The demo's webhook receiver, registered at the gateway for the run of the demo."""

    def __init__(self, gateway: httpx.AsyncClient, out: Callable[[str], None]) -> None:
        self.gateway = gateway
        self.out = out
        self.events: list[ReceivedEvent] = []
        self.last = time.monotonic()
        self.receiver = WebhookReceiver(self._arrived, on_refused=self._refused)
        self.endpoint: str | None = None

    def _arrived(self, event: ReceivedEvent) -> None:
        self.events.append(event)
        self.last = time.monotonic()
        self.out(event_line(event))

    def _refused(self, reason: str) -> None:
        self.out(f"  webhook  REFUSED: {reason}")

    async def register(self) -> None:
        response = await self.gateway.post(
            "/v1/webhook-endpoints",
            json={"url": self.receiver.url, "description": "cotpay-escrow demo receiver"},
        )
        if response.status_code != 201:
            self.out(
                f"0. webhooks: the gateway did not register a receiver (HTTP"
                f" {response.status_code} {response.text[:200]}); going on without"
            )
            return
        body = response.json()
        self.endpoint = body["id"]
        self.receiver.secret = body["secret"]
        self.out(
            f"0. webhook receiver {self.receiver.url} registered ({self.endpoint}):"
            " each event is printed as it arrives, its signature checked"
        )

    async def finish(self) -> None:
        """Wait (bounded) for the order's last events, say what arrived, remove the endpoint."""
        if self.endpoint is None:
            return
        started = time.monotonic()
        deadline = started + WEBHOOK_WAIT_S
        while time.monotonic() < deadline:
            if {e.type for e in self.events} & FINAL_EVENTS:
                break
            if time.monotonic() - max(self.last, started) > WEBHOOK_QUIET_S:
                break  # nothing more for a while
            await asyncio.sleep(0.1)
        if self.events:
            self.out(
                f"6. {len(self.events)} webhook event(s) received, every signature checked with"
                " the standardwebhooks library"
            )
        else:
            self.out(
                "6. no webhook arrived: the worker sends them from the order store"
                " (docs/webhooks.md)"
            )
        with contextlib.suppress(httpx.HTTPError):
            await self.gateway.delete(f"/v1/webhook-endpoints/{self.endpoint}")


async def run_demo(
    gateway_url: str,
    sandbox_url: str,
    *,
    api_key: str,
    amount: int = 150_000,
    step_timeout: float = 60.0,
    shift_clock: bool = True,
    ui_url: str | None = None,
    webhooks: bool = True,
    out: Callable[[str], None] = print,
) -> int:
    """The demo; with ``webhooks``, a receiver registered for its duration prints the events."""

    async def drive() -> int:
        return await _run_demo(
            gateway_url,
            sandbox_url,
            api_key=api_key,
            amount=amount,
            step_timeout=step_timeout,
            shift_clock=shift_clock,
            ui_url=ui_url,
            out=out,
        )

    if not webhooks:
        return await drive()
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=gateway_url, headers=headers, timeout=30.0) as gateway:
        listener = WebhookListener(gateway, out)
        async with listener.receiver:
            await listener.register()
            try:
                code = await drive()
            finally:
                await listener.finish()
            return code


async def _run_demo(
    gateway_url: str,
    sandbox_url: str,
    *,
    api_key: str,
    amount: int,
    step_timeout: float,
    shift_clock: bool,
    ui_url: str | None,
    out: Callable[[str], None],
) -> int:
    headers = {"Authorization": f"Bearer {api_key}"}
    async with (
        httpx.AsyncClient(base_url=gateway_url, headers=headers, timeout=30.0) as gateway,
        httpx.AsyncClient(base_url=sandbox_url, timeout=10.0) as sandbox,
    ):
        demo = Demo(gateway, sandbox, timeout=step_timeout, out=out)
        seller, buyer = _new_id(), _new_id()
        await demo.create_user(seller, "Demo Seller")
        await demo.create_user(buyer, "Demo Buyer")
        out(f"1. seller {seller} and buyer {buyer} created in the sandbox")

        order_ref = f"demo-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
        view = await demo.start_order(
            {
                "orderRef": order_ref,
                "sellerId": seller,
                "buyerId": buyer,
                "amount": amount,
                "description": "cotpay-escrow demo order",
            }
        )
        id_order = view.get("cotpayOrderId")
        out(f"2. order {order_ref} started: Cotpay order {id_order}, {amount:,} VND")
        if ui_url:
            workflow_id = quote(str(view.get("workflowId", "")), safe="")
            namespace = os.environ.get("TEMPORAL_NAMESPACE", "default")
            out(f"   Temporal UI: {ui_url}/namespaces/{namespace}/workflows/{workflow_id}")
        demo.show(view)
        if not isinstance(id_order, int):
            raise DemoError(f"no Cotpay order id (status {view.get('status')})")

        previous = await _backdate_sandbox(demo) if shift_clock else None
        try:
            demo.ok(
                await sandbox.post(f"/sandbox/orders/{id_order}/pay", json={"outcome": "success"}),
                "buyer pays",
            )
            out("3. buyer paid in the sandbox; waiting for the HOLDING IPN")
            await demo.wait_for(order_ref, {EscrowStatus.HELD.value}, what="HELD")
        finally:
            if previous is not None:
                await _restore_sandbox(demo, previous)

        demo.ok(await gateway.post(f"/v1/orders/{order_ref}/delivered", json={}), "delivered")
        out("4. goods delivered; waiting for the payout")
        view = await demo.view(order_ref)
        demo.show(view)
        not_before = view.get("payoutNotBefore")
        if not_before and view.get("status") != EscrowStatus.PAID_OUT.value:
            when = datetime.fromisoformat(not_before)
            if when > datetime.now(UTC) + timedelta(seconds=step_timeout):
                out(
                    f"   Cotpay pays out not before {when.astimezone(VIETNAM):%Y-%m-%d %H:%M} "
                    f"Vietnam time ({when.astimezone(UTC):%H:%M} UTC) "
                    f"(rule {view.get('payoutRule')})"
                )
                out(
                    "   The order now waits for that instant (see it in the Temporal UI). "
                    "Re-run with --shift-clock, or use `cotpay-escrow run "
                    "--payout-rule immediate` for a payout in seconds."
                )
                return 0
        await demo.wait_for(order_ref, {EscrowStatus.PAID_OUT.value}, what="PAID_OUT")

        payouts = await demo.payouts(id_order)
        if len(payouts) != 1:
            raise DemoError(
                f"expected exactly one payout in the sandbox ledger, got {len(payouts)}"
            )
        out(f"5. PAID_OUT: exactly one payout of order {id_order} in the sandbox ledger")
        return 0


def _main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(
            run_demo(
                args.gateway_url,
                args.sandbox_url,
                api_key=_api_key(),
                amount=args.amount,
                step_timeout=args.timeout,
                shift_clock=args.shift_clock,
                ui_url=args.ui_url.rstrip("/"),
                webhooks=args.webhooks,
            )
        )
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(
            f"demo failed: cannot reach the stack ({type(exc).__name__}: {exc}); "
            "is `cotpay-escrow run` running?",
            file=sys.stderr,
        )
        return 1
