"""``cotpay-escrow order start|status|deliver|dispute|cancel``: one order, straight to Temporal.

Connects with ``TEMPORAL_*`` settings; defaults the order leaves out come from ``ESCROW_*``
exactly as in the HTTP gateway. Output is human-readable, or JSON with ``--json``.
Exit codes: 0 done, 1 refused or failed (the reason on stderr, or as JSON), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError

from cotpay.models import PayMethod
from runtime.codec import CodecError
from runtime.settings import EscrowSettings
from runtime.temporal import TemporalConfig
from starter.client import CreateOrderBody, EscrowClient, EscrowClientError, StartResult
from workflows.models import (
    CancelRequest,
    DeliveryConfirmation,
    DisputeRequest,
    EscrowStatus,
    OrderView,
    PayoutRule,
)

VN = ZoneInfo("Asia/Ho_Chi_Minh")
_T = TypeVar("_T")


# --- running --------------------------------------------------------------------------------


async def _with_client(action: Callable[[EscrowClient], Awaitable[_T]]) -> _T:
    from runtime.temporal import connect

    try:
        settings = TemporalConfig.from_env()
        client = await connect(settings)
        return await action(EscrowClient(client, task_queue=settings.task_queue))
    finally:
        await release_client()


async def release_client() -> None:
    """Drop the Temporal client while the loop still runs: the SDK's native client, freed
    during interpreter shutdown, can abort the process (PyGILState_Release) after the output."""
    gc.collect()
    await asyncio.sleep(0.05)


def run_action(
    args: argparse.Namespace,
    action: Callable[[EscrowClient], Awaitable[_T]],
    render: Callable[[_T], str],
    to_json: Callable[[_T], Any],
    exit_code: Callable[[_T], int] = lambda _result: 0,
) -> int:
    """Run ``action`` against Temporal and print its result; map client errors to exit 1."""
    try:
        result = asyncio.run(_with_client(action))
    except EscrowClientError as exc:
        return fail(args, exc.code, exc.message)
    except CodecError as exc:
        return fail(args, "config_error", str(exc))
    except RuntimeError as exc:
        if "connect" not in str(exc).lower():
            raise
        return fail(args, "temporal_unavailable", f"cannot reach Temporal: {exc}")
    if args.json:
        print(json.dumps(to_json(result), indent=2, ensure_ascii=False))
    else:
        print(render(result))
    return exit_code(result)


def fail(args: argparse.Namespace, code: str, message: str) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"error": code, "message": message}))
    else:
        print(f"error [{code}]: {message}", file=sys.stderr)
    return 1


def dump(model: BaseModel) -> Any:
    return model.model_dump(mode="json")


# --- rendering ------------------------------------------------------------------------------


def when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(VN).strftime("%Y-%m-%d %H:%M:%S ICT")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def render_view(view: OrderView) -> str:
    pairs: list[tuple[str, str]] = [
        ("Order", f"{view.order_ref}  (workflow {view.workflow_id})"),
        ("Status", view.status.value),
        ("Amount", f"{view.amount:,} VND by {view.pay_method.value}"),
        ("Seller / buyer", f"{view.seller_id} / {view.buyer_id}"),
        ("Cotpay order", str(view.cotpay_order_id) if view.cotpay_order_id else "-"),
        ("Waiting for", view.waiting_for or "-"),
        ("Held at", when(view.held_at)),
        ("Delivered at", when(view.delivered_at)),
        ("Payout not before", f"{when(view.payout_not_before)}  (rule {view.payout_rule.value})"),
    ]
    if view.paid_out_at:
        pairs.append(("Paid out at", when(view.paid_out_at)))
    if view.refunded_at:
        pairs.append(("Refunded at", when(view.refunded_at)))
    if view.payment:
        pairs.append(("Payment", view.payment))
    if view.attention:
        code = f" (Cotpay code {view.attention.code})" if view.attention.code else ""
        pairs.append(
            ("Attention", f"{view.attention.reason}{code} since {when(view.attention.since)}")
        )
    width = max(len(k) for k, _ in pairs)
    lines = [f"{k.ljust(width)}  {v}" for k, v in pairs]
    if view.timeline:
        rows = [
            [when(e.time), e.kind, e.status.value if e.status else "", e.detail]
            for e in view.timeline
        ]
        timeline = table(["TIME", "EVENT", "STATUS", "DETAIL"], rows)
        lines += ["", "Timeline", *("  " + line for line in timeline.splitlines())]
    return "\n".join(lines)


def render_start(result: StartResult) -> str:
    head = "Created" if result.created else "Already exists"
    return f"{head}.\n{render_view(result.view)}"


def start_json(result: StartResult) -> Any:
    return {"created": result.created, "order": dump(result.view)}


# --- commands -------------------------------------------------------------------------------


def _start(args: argparse.Namespace) -> int:
    raw: dict[str, Any] = {
        "orderRef": args.order_ref,
        "sellerId": args.seller,
        "buyerId": args.buyer,
        "amount": args.amount,
        "description": args.description,
        "payMethod": args.pay_method,
    }
    if args.agent:
        raw["agentId"] = args.agent
    if args.buyer_name or args.buyer_email:
        raw["buyer"] = {"name": args.buyer_name or "", "email": args.buyer_email or ""}
    if args.payout_rule:
        raw["payoutRule"] = args.payout_rule
    if args.auto_release:
        raw["autoRelease"] = True
    try:
        body = CreateOrderBody.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return fail(args, "invalid_request", problems)
    order = body.to_input(EscrowSettings())

    async def action(client: EscrowClient) -> StartResult:
        return await client.start_order(order, compare=body.compared_fields())

    return run_action(args, action, render_start, start_json, _start_exit)


def _start_exit(result: StartResult) -> int:
    return 1 if result.view.status == EscrowStatus.FAILED else 0


def _status(args: argparse.Namespace) -> int:
    async def action(client: EscrowClient) -> OrderView:
        return await client.get_order(args.order_ref)

    return run_action(args, action, render_view, dump)


def _deliver(args: argparse.Namespace) -> int:
    async def action(client: EscrowClient) -> OrderView:
        return await client.confirm_delivery(args.order_ref, DeliveryConfirmation(note=args.note))

    return run_action(args, action, render_view, dump)


def _dispute(args: argparse.Namespace) -> int:
    async def action(client: EscrowClient) -> OrderView:
        return await client.open_dispute(args.order_ref, DisputeRequest(reason=args.reason))

    return run_action(args, action, render_view, dump)


def _cancel(args: argparse.Namespace) -> int:
    async def action(client: EscrowClient) -> OrderView:
        return await client.cancel(args.order_ref, CancelRequest(reason=args.reason))

    return run_action(args, action, render_view, dump)


def json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    order = subparsers.add_parser(
        "order",
        help="start an order, show it, mark it delivered, disputed or cancelled",
        description="One escrow order, talking to Temporal directly (TEMPORAL_* settings).",
    )
    commands = order.add_subparsers(dest="order_command", metavar="ACTION", required=True)

    start = commands.add_parser("start", help="start an order (idempotent on ORDER_REF)")
    start.add_argument("order_ref", metavar="ORDER_REF")
    start.add_argument("--seller", required=True, help="seller's Cotpay id")
    start.add_argument("--buyer", required=True, help="buyer's Cotpay id")
    start.add_argument("--amount", required=True, type=int, help="VND, at least 30000")
    start.add_argument("--description", default="")
    start.add_argument(
        "--pay-method", default=PayMethod.VIETQR.value, choices=[m.value for m in PayMethod]
    )
    start.add_argument("--agent", default=None, help="agent's Cotpay id")
    start.add_argument("--buyer-name", default=None, help="to sign an unknown buyer up")
    start.add_argument("--buyer-email", default=None, help="to sign an unknown buyer up")
    start.add_argument(
        "--payout-rule",
        default=None,
        choices=[r.value for r in PayoutRule],
        help="default: ESCROW_PAYOUT_RULE",
    )
    start.add_argument(
        "--auto-release", action="store_true", help="pay out without a delivery message"
    )
    json_flag(start)
    start.set_defaults(func=_start)

    status = commands.add_parser("status", help="show an order, what it waits for, its timeline")
    status.add_argument("order_ref", metavar="ORDER_REF")
    json_flag(status)
    status.set_defaults(func=_status)

    deliver = commands.add_parser("deliver", help="confirm the goods were delivered")
    deliver.add_argument("order_ref", metavar="ORDER_REF")
    deliver.add_argument("--note", default="")
    json_flag(deliver)
    deliver.set_defaults(func=_deliver)

    dispute = commands.add_parser("dispute", help="open a dispute (return request)")
    dispute.add_argument("order_ref", metavar="ORDER_REF")
    dispute.add_argument("--reason", default="")
    json_flag(dispute)
    dispute.set_defaults(func=_dispute)

    cancel = commands.add_parser("cancel", help="cancel an order before it is paid")
    cancel.add_argument("order_ref", metavar="ORDER_REF")
    cancel.add_argument("--reason", default="")
    json_flag(cancel)
    cancel.set_defaults(func=_cancel)
