"""``cotpay-escrow orders list|export``: orders from the order store (docs/cli.md, docs/store.md).

``list`` filters, sorts and pages like ``GET /v1/orders`` (the same JSON with ``--json``);
``export`` writes the CSV of ``GET /v1/exports/orders.csv`` (UTF-8 with a BOM) to a file, or to
standard output. Neither needs Temporal or the gateway: only ``ESCROW_DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

from starter.cli.output import dump, json_flag, table, when
from starter.cli.store_actions import database_flag, run_store, with_store
from starter.gateway.read_models import OrderList, OrderListItem
from store.api import OrderStore
from store.errors import InvalidQuery
from store.export import BOM
from store.models import OrderFilters, OrderSort, parse_instant
from store.orders import DEFAULT_LIMIT
from workflows.models import EscrowStatus

# --- list ---------------------------------------------------------------------------------------


def render_list(page: OrderList) -> str:
    if not page.orders:
        return "No orders."
    rows = [
        [
            row.order_ref,
            row.status or "?",
            f"{row.amount:,}" if row.amount is not None else "-",
            row.seller_id,
            row.buyer_id,
            when(row.created_at),
            when(row.updated_at),
            row.attention.reason if row.attention else "",
        ]
        for row in page.orders
    ]
    headers = ["ORDER REF", "STATUS", "AMOUNT VND", "SELLER", "BUYER", "CREATED", "UPDATED"]
    text = table([*headers, "ATTENTION"], rows)
    if page.next_cursor:
        text += f"\n\nMore: the same command with --cursor {page.next_cursor}"
    return text


def _list(args: argparse.Namespace) -> int:
    statuses = [s.strip() for value in args.status or [] for s in value.split(",") if s.strip()]

    async def action() -> OrderList:
        filters = OrderFilters.from_query(
            status=statuses or None,
            seller_id=args.seller,
            buyer_id=args.buyer,
            created_from=args.created_from,
            created_to=args.created_to,
            updated_from=args.updated_from,
            updated_to=args.updated_to,
        )

        async def read(store: OrderStore) -> OrderList:
            page = await store.list_orders(filters, OrderSort(args.sort), args.limit, args.cursor)
            return OrderList(
                orders=[OrderListItem.from_row(row) for row in page.orders],
                next_cursor=page.next_cursor,
            )

        return await with_store(args, read)

    return run_store(args, action, render_list, dump)


# --- export -------------------------------------------------------------------------------------


class Exported(NamedTuple):
    file: str | None
    orders: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "orders": self.orders, "bytes": self.bytes}


def _rows_in(chunk: bytes, first: bool) -> int:
    """CSV records in a chunk (each chunk holds whole rows; the first one the header)."""
    text = chunk.removeprefix(BOM).decode("utf-8")
    return sum(1 for _ in csv.reader(io.StringIO(text, newline=""))) - (1 if first else 0)


def _export(args: argparse.Namespace) -> int:
    if args.output is None and args.json:
        print("error: --json needs -o FILE (without it the CSV goes to stdout)", file=sys.stderr)
        return 2
    target = Path(args.output) if args.output else None

    async def action() -> Exported:
        low = parse_instant(args.start, "--from", end_of_day=False)
        high = parse_instant(args.end, "--to", end_of_day=True)
        if low is None or high is None:
            raise InvalidQuery("invalid_date", "give --from and --to", "--from")

        async def write(store: OrderStore) -> Exported:
            chunks = store.export_orders_csv(low, high)
            if target is None:
                return await _to_stream(chunks, sys.stdout.buffer)
            partial = target.with_name(target.name + ".part")
            try:
                with partial.open("wb") as out:
                    result = await _to_stream(chunks, out)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
            return result._replace(file=str(target))

        return await with_store(args, write)

    def render(result: Exported) -> str:
        return f"Exported {result.orders:,} orders ({result.bytes:,} bytes) to {result.file}"

    if target is None:
        try:
            return run_store(args, action, None, None)
        except BrokenPipeError:
            _quiet_stdout()
            return 0
    return run_store(args, action, render, Exported.to_json)


async def _to_stream(chunks: Any, out: Any) -> Exported:
    count = size = 0
    first = True
    async for chunk in chunks:
        out.write(chunk)
        count += _rows_in(chunk, first)
        size += len(chunk)
        first = False
    out.flush()
    return Exported(None, count, size)


def _quiet_stdout() -> None:
    """After the reader went away (``| head``), point stdout at devnull so exiting is quiet."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


# --- parser -------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    orders = subparsers.add_parser(
        "orders",
        help="orders from the order store: list with filters, export as CSV",
        description="Read the order store (ESCROW_DATABASE_URL): no Temporal needed.",
    )
    commands = orders.add_subparsers(dest="orders_command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="list orders with filters, a page at a time")
    listing.add_argument(
        "--status",
        action="append",
        metavar="STATUS",
        help="any of these (repeat, or comma-separated): "
        + ", ".join(s.value for s in EscrowStatus),
    )
    listing.add_argument("--seller", default=None, help="only this seller's orders (Cotpay id)")
    listing.add_argument("--buyer", default=None, help="only this buyer's orders (Cotpay id)")
    times = "a date (a Vietnam day) or an ISO 8601 time with an offset"
    listing.add_argument("--created-from", default=None, help=f"created at or after: {times}")
    listing.add_argument("--created-to", default=None, help="created before (a date: through it)")
    listing.add_argument("--updated-from", default=None, help="last event at or after")
    listing.add_argument("--updated-to", default=None, help="last event before")
    listing.add_argument(
        "--sort", choices=[s.value for s in OrderSort], default=OrderSort.CREATED_DESC.value
    )
    listing.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="1..1000 (default 100)")
    listing.add_argument("--cursor", default=None, help="the nextCursor a previous page printed")
    database_flag(listing)
    json_flag(listing)
    listing.set_defaults(func=_list)

    export = commands.add_parser(
        "export", help="the orders created in a range, as CSV (UTF-8 with a BOM, for Excel)"
    )
    export.add_argument(
        "--from", dest="start", required=True, help=f"first day or time, included: {times}"
    )
    export.add_argument(
        "--to", dest="end", required=True, help="last day (included) or time (excluded)"
    )
    export.add_argument("-o", "--output", default=None, help="write to FILE (default: stdout)")
    database_flag(export)
    json_flag(export)
    export.set_defaults(func=_export)
