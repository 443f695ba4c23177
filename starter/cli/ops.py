"""``cotpay-escrow ops list|retry|release|refund|report``: find and unblock stuck orders, and
see where the money is.

``list`` reads Temporal visibility (search attribute ``EscrowStatus``; needs a server with
advanced visibility, e.g. the dev server or any cluster), and the reason of each stuck or failed
order from the order itself (its ``status`` query); the actions are the workflow's
``operator_action`` update. The operator name recorded on the order is ``--operator`` or the
login name (docs/runbook.md). ``report`` is the order store's money report, now or for a day
(docs/store.md).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
from dataclasses import dataclass
from datetime import date
from typing import Any

from starter.cli.actions import run_action
from starter.cli.output import (
    command_group,
    dump,
    fail,
    json_flag,
    render_view,
    table,
    ui_list_url,
    when,
    with_code,
)
from starter.cli.store_actions import database_flag, run_store, with_store
from starter.client import EscrowClient, EscrowClientError, OrderSummary
from store.api import OrderStore
from store.errors import InvalidQuery
from store.models import MoneyReport, vn_today
from workflows.models import WORKFLOW_TYPE, EscrowStatus, OperatorAction, OrderView

# Escrow outcomes that are not workflow failures: the workflow ran to its end and returned the
# order (docs/runbook.md, "Why a FAILED order is a COMPLETED workflow").
ENDED_BADLY = frozenset({EscrowStatus.FAILED, EscrowStatus.CANCELLED, EscrowStatus.EXPIRED})
COMPLETED_NOTE = (
    "FAILED, CANCELLED and EXPIRED say how the escrow order ended, not that its workflow "
    "failed: the workflow ran to its end and returned the order, so Temporal (and its UI) "
    "shows it COMPLETED. See docs/runbook.md."
)
# Rows whose reason is read from the order itself (one status query each, bounded).
WITH_REASON = frozenset({EscrowStatus.NEEDS_ATTENTION, EscrowStatus.FAILED})
REASON_QUERIES = 8
REASON_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Listed:
    row: OrderSummary
    reason: str | None = None


def render_list(listed: list[Listed], query: str | None = None) -> str:
    """The table; with ``query``, a last line linking the same list in the Temporal UI."""
    link = f"\n\nIn the Temporal UI: {ui_list_url(query)}" if query else ""
    if not listed:
        return f"No orders.{link}"
    body = [_cells(item) for item in listed]
    headers = [
        "ORDER REF",
        "STATUS",
        "WORKFLOW",
        "AMOUNT VND",
        "COTPAY ID",
        "PAYOUT NOT BEFORE",
        "STARTED",
        "REASON",
    ]
    text = table(headers, body)
    if any(item.row.status in ENDED_BADLY for item in listed):
        text += f"\n\n{COMPLETED_NOTE}"
    return text + link


def ui_query(status: EscrowStatus | None) -> str:
    """What to type in the Temporal UI's list for the same orders (by status)."""
    if status is None:
        return f'WorkflowType = "{WORKFLOW_TYPE}"'
    return f'EscrowStatus = "{status.value}"'


def _cells(item: Listed) -> list[str]:
    row = item.row
    return [
        row.order_ref,
        row.status or "?",
        row.run_status or "?",
        f"{row.amount:,}" if row.amount is not None else "-",
        str(row.cotpay_order_id or "-"),
        when(row.payout_not_before),
        when(row.started_at),
        item.reason or "-",
    ]


def list_json(listed: list[Listed]) -> Any:
    return {"orders": [{**dump(item.row), "reason": item.reason} for item in listed]}


async def _reason(client: EscrowClient, row: OrderSummary) -> str | None:
    """The attention reason of a stuck or failed order (its ``status`` query); None when the
    order does not answer in time (e.g. no worker runs to answer a finished order's query)."""
    try:
        view = await asyncio.wait_for(client.get_order(row.order_ref), REASON_TIMEOUT_S)
    except (EscrowClientError, TimeoutError):
        return None
    return with_code(view.attention.reason, view.attention.code) if view.attention else None


async def list_with_reasons(client: EscrowClient, rows: list[OrderSummary]) -> list[Listed]:
    gate = asyncio.Semaphore(REASON_QUERIES)

    async def one(row: OrderSummary) -> Listed:
        if row.status not in WITH_REASON:
            return Listed(row)
        async with gate:
            return Listed(row, await _reason(client, row))

    return list(await asyncio.gather(*(one(row) for row in rows)))


def _list(args: argparse.Namespace) -> int:
    status = EscrowStatus(args.status) if args.status else None

    async def action(client: EscrowClient) -> list[Listed]:
        rows = await client.list_orders(
            status, seller_id=args.seller, buyer_id=args.buyer, limit=args.limit
        )
        return await list_with_reasons(client, rows)

    def render(listed: list[Listed]) -> str:
        return render_list(listed, ui_query(status))

    try:
        return run_action(args, action, render, list_json)
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
