"""``cotpay-escrow ops list|retry|release|refund|audit``: find and unblock stuck orders, and
read the audit trail (docs/security.md).

``list`` reads Temporal visibility (search attribute ``EscrowStatus``; needs a server with
advanced visibility, e.g. the dev server or any cluster); the actions are the workflow's
``operator_action`` update. The operator name recorded on the order is ``--operator`` or the
login name (docs/runbook.md).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Any

from starter.cli.actions import cli_actor, run_action, run_store_action, with_access
from starter.cli.output import VN, dump, fail, json_flag, render_view, table, when
from starter.client import EscrowClient, EscrowClientError, OrderSummary
from store.access import AccessStore
from store.access_models import DEFAULT_MERCHANT, AuditEvent, AuditFilter
from store.errors import StoreUnavailable
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
            status,
            seller_id=args.seller,
            buyer_id=args.buyer,
            limit=args.limit,
            merchant=args.merchant,
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
        try:
            view = await client.operator_action(args.order_ref, request, merchant=args.merchant)
        except EscrowClientError as exc:
            await _audit_action(args.order_ref, request, exc.code, args.merchant)
            raise
        await _audit_action(args.order_ref, request, view.status.value, args.merchant)
        return view

    return run_action(args, action, render_view, dump)


async def _audit_action(
    order_ref: str, request: OperatorAction, outcome: str, merchant: str
) -> None:
    """The audit trail's line for an operator action taken from this terminal (best effort:
    the order's own timeline records it in any case)."""
    actor = cli_actor()
    event = AuditEvent(
        time=datetime.now(UTC),
        actor=actor.name,
        merchant=merchant,
        action=f"order.operator.{request.action}",
        target=order_ref,
        data={"note": request.note, "typedOperator": request.operator, "outcome": outcome},
    )
    try:
        await with_access(lambda access: access.record_audit(event))
    except StoreUnavailable as exc:
        print(f"warning: not written to the audit trail: {exc}", file=sys.stderr)


def render_audit(events: list[AuditEvent]) -> str:
    if not events:
        return "No audit events."
    rows = [
        [
            when(e.time),
            e.actor,
            e.merchant or "-",
            e.action,
            e.target or "-",
            json.dumps(e.data, ensure_ascii=False, sort_keys=True) if e.data else "",
        ]
        for e in events
    ]
    return table(["TIME", "WHO", "MERCHANT", "ACTION", "TARGET", "DATA"], rows)


def _since(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time or date: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=VN)


def _audit(args: argparse.Namespace) -> int:
    where = AuditFilter(
        since=args.since,
        until=args.until,
        merchant=args.merchant,
        action=args.action,
        key_id=args.key_id,
        limit=args.limit,
    )

    async def action(access: AccessStore) -> list[AuditEvent]:
        return await access.list_audit(where)

    return run_store_action(
        args, action, render_audit, lambda events: {"events": [dump(e) for e in events]}
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ops = subparsers.add_parser(
        "ops",
        help="operators: list orders by status, retry / release / refund a stuck order",
        description="Find stuck orders (EscrowStatus) and act on them (TEMPORAL_* settings).",
    )
    commands = ops.add_subparsers(dest="ops_command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="list orders, newest first")
    listing.add_argument(
        "--status", choices=[s.value for s in EscrowStatus], help="e.g. NEEDS_ATTENTION"
    )
    listing.add_argument("--seller", default=None, help="only this seller's orders (Cotpay id)")
    listing.add_argument("--buyer", default=None, help="only this buyer's orders (Cotpay id)")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument(
        "--merchant", default=DEFAULT_MERCHANT, help="whose orders (default: default)"
    )
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
        command.add_argument(
            "--merchant", default=DEFAULT_MERCHANT, help="the order's merchant (default: default)"
        )
        json_flag(command)
        command.set_defaults(func=_act, action=name)

    audit = commands.add_parser(
        "audit", help="the audit trail: keys, merchants, operator actions, webhook endpoints"
    )
    audit.add_argument("--since", type=_since, default=None, help="from this time (ISO 8601)")
    audit.add_argument("--until", type=_since, default=None, help="before this time")
    audit.add_argument("--merchant", default=None)
    audit.add_argument(
        "--action", default=None, help="e.g. key.revoke, or a prefix ending in '.' (key.)"
    )
    audit.add_argument("--key-id", default=None, help="changes made with this key")
    audit.add_argument("--limit", type=int, default=100)
    json_flag(audit)
    audit.set_defaults(func=_audit)
