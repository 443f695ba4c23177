"""``cotpay-escrow ops list|retry|release|refund|report``: find and unblock stuck orders, and
see where the money is.

``list`` reads Temporal visibility (search attribute ``EscrowStatus``; needs a server with
advanced visibility, e.g. the dev server or any cluster); the actions are the workflow's
``operator_action`` update. The operator name recorded on the order is ``--operator`` or the
login name (docs/runbook.md). ``report`` is the order store's money report, now or for a day
(docs/store.md).
"""

from __future__ import annotations

import argparse
import getpass
from datetime import date
from typing import Any

from starter.cli.actions import run_action
from starter.cli.output import command_group, dump, fail, json_flag, render_view, table, when
from starter.cli.store_actions import database_flag, run_store, with_store
from starter.client import EscrowClient, OrderSummary
from store.api import OrderStore
from store.errors import InvalidQuery
from store.models import MoneyReport, vn_today
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


def render_report(report: MoneyReport) -> str:
    moment = f"the end of {report.day.isoformat()}" if report.day else when(report.as_of)
    rows = [[line.state.value, f"{line.count:,}", f"{line.amount:,}"] for line in report.states]
    lines = [f"Money as of {moment} (VND)", table(["STATE", "ORDERS", "AMOUNT VND"], rows)]
    if report.flows is not None and report.day is not None:
        flows = [[f.kind.value, f"{f.count:,}", f"{f.amount:,}"] for f in report.flows]
        lines += ["", f"Money events on {report.day.isoformat()}"]
        lines.append(table(["EVENT", "COUNT", "AMOUNT VND"], flows))
    return "\n".join(lines)


def _report(args: argparse.Namespace) -> int:
    async def action() -> MoneyReport:
        try:
            day = date.fromisoformat(args.day) if args.day else None
        except ValueError:
            raise InvalidQuery("invalid_date", "--day: give a date, YYYY-MM-DD", "day") from None
        if day is not None and day > vn_today():
            raise InvalidQuery("invalid_date", "--day: a day in the future", "day")

        async def read(store: OrderStore) -> MoneyReport:
            return await store.money_report(day)

        return await with_store(args, read)

    return run_store(args, action, render_report, dump)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    commands = command_group(
        subparsers,
        "ops",
        help="operators: list orders by status, retry / release / refund a stuck order, "
        "money report",
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

    report = commands.add_parser(
        "report", help="orders and VND per money state, now or at the end of a Vietnam day"
    )
    report.add_argument("--day", default=None, help="YYYY-MM-DD (default: now)")
    database_flag(report)
    json_flag(report)
    report.set_defaults(func=_report)
