"""``cotpay-escrow ops list|retry|release|refund``: find and unblock stuck orders.

``list`` reads Temporal visibility (search attribute ``EscrowStatus``; needs a server with
advanced visibility, e.g. the dev server or any cluster); the actions are the workflow's
``operator_action`` update. The operator name recorded on the order is ``--operator`` or the
login name (docs/runbook.md).
"""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from starter.cli.actions import run_action
from starter.cli.output import command_group, dump, fail, json_flag, render_view, table, when
from starter.client import EscrowClient, OrderSummary
from workflows.models import EscrowStatus, OperatorAction, OrderView


def render_list(rows: list[OrderSummary]) -> str:
    if not rows:
        return "No orders."
    body = [
        [
            row.order_ref,
            row.status or "?",
            f"{row.amount:,}" if row.amount is not None else "-",
            str(row.cotpay_order_id or "-"),
            when(row.payout_not_before),
            when(row.started_at),
        ]
        for row in rows
    ]
    headers = ["ORDER REF", "STATUS", "AMOUNT VND", "COTPAY ID", "PAYOUT NOT BEFORE", "STARTED"]
    return table(headers, body)


def list_json(rows: list[OrderSummary]) -> Any:
    return {"orders": [dump(row) for row in rows]}


def _list(args: argparse.Namespace) -> int:
    status = EscrowStatus(args.status) if args.status else None

    async def action(client: EscrowClient) -> list[OrderSummary]:
        return await client.list_orders(
            status, seller_id=args.seller, buyer_id=args.buyer, limit=args.limit
        )

    try:
        return run_action(args, action, render_list, list_json)
    except ValueError as exc:
        return fail(args, "invalid_request", str(exc))


def _login_name() -> str:
    try:
        return getpass.getuser()[:100]
    except (KeyError, OSError):
        return "cli"


def _act(args: argparse.Namespace) -> int:
    request = OperatorAction(
        action=args.action, operator=args.operator or _login_name(), note=args.note
    )

    async def action(client: EscrowClient) -> OrderView:
        return await client.operator_action(args.order_ref, request)

    return run_action(args, action, render_view, dump)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    commands = command_group(
        subparsers,
        "ops",
        help="operators: list orders by status, retry / release / refund a stuck order",
        description="Find stuck orders (EscrowStatus) and act on them (TEMPORAL_* settings).",
    )

    listing = commands.add_parser("list", help="list orders, newest first")
    listing.add_argument(
        "--status", choices=[s.value for s in EscrowStatus], help="e.g. NEEDS_ATTENTION"
    )
    listing.add_argument("--seller", default=None, help="only this seller's orders (Cotpay id)")
    listing.add_argument("--buyer", default=None, help="only this buyer's orders (Cotpay id)")
    listing.add_argument("--limit", type=int, default=100)
    json_flag(listing)
    listing.set_defaults(func=_list)

    helps = {
        "retry": "retry the step that needs attention (e.g. after the seller linked a wallet)",
        "release": "pay the seller out now (as far as the payout rule allows)",
        "refund": "send the money back to the buyer (return request)",
    }
    for name, text in helps.items():
        command = commands.add_parser(name, help=text)
        command.add_argument("order_ref", metavar="ORDER_REF")
        command.add_argument("--note", default="", help="why (recorded on the order)")
        command.add_argument("--operator", default="", help="who (default: login name)")
        json_flag(command)
        command.set_defaults(func=_act, action=name)
