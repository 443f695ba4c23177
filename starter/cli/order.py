"""``cotpay-escrow order start|status|deliver|dispute|cancel``: one order, straight to Temporal.

Connects with ``TEMPORAL_*`` settings; defaults the order leaves out come from ``ESCROW_*``
exactly as in the HTTP gateway (the same ``CreateOrderBody``). Output is human-readable, or JSON
with ``--json``. Exit codes: 0 done, 1 refused or failed (the reason on stderr, or as JSON),
2 usage (docs/cli.md).
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import ValidationError

from cotpay.models import PayMethod
from runtime.settings import EscrowSettings
from starter.cli.actions import run_action
from starter.cli.output import dump, fail, json_flag, render_view, with_code
from starter.client import CreateOrderBody, EscrowClient, StartResult
from workflows.models import (
    CancelRequest,
    DeliveryConfirmation,
    DisputeRequest,
    EscrowStatus,
    OrderView,
    PayoutRule,
)


def start_failure(result: StartResult) -> tuple[str, str] | None:
    """A start whose order failed at once: its error code and reason, as the gateway's 422
    (``cotpay_refused`` with Cotpay's code, else ``order_failed``); None when it did not fail."""
    view = result.view
    if view.status != EscrowStatus.FAILED:
        return None
    reason = (result.payment.error if result.payment else None) or view.attention
    if reason is None:
        return "order_failed", "the order could not be created"
    code = "cotpay_refused" if reason.code is not None else "order_failed"
    return code, with_code(reason.reason, reason.code)


def render_start(result: StartResult) -> str:
    failure = start_failure(result)
    if failure is not None:
        code, reason = failure
        return f"Failed [{code}]: {reason}\n{render_view(result.view)}"
    head = "Created" if result.created else "Already exists"
    return f"{head}.\n{render_view(result.view)}"


def start_json(result: StartResult) -> Any:
    document: dict[str, Any] = {"created": result.created, "order": dump(result.view)}
    failure = start_failure(result)
    if failure is not None:
        document["error"], document["message"] = failure
    return document


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
