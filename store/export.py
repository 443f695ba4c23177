"""CSV export of orders created in a time range (docs/store.md).

UTF-8 with a byte order mark, so that Excel reads Vietnamese text as written; times in ISO 8601
at Vietnam time (+07:00); one row per order in creation order. Rows are read in keyset pages of
``EXPORT_PAGE`` and written out page by page, so memory does not grow with the number of rows.
A range is at most ``MAX_EXPORT_RANGE`` long.

A cell that a spreadsheet would run as a formula (text starting with ``=``, ``+``, ``-``, ``@``,
tab or carriage return) is written with a leading ``'``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import select

from store.cursor import Position
from store.db import Database
from store.errors import InvalidQuery
from store.models import VN, OrderFilters, OrderSort, day_start
from store.orders import filter_clauses, keyset, ordering
from store.schema import UtcDateTime, orders

BOM = "\ufeff".encode()
EXPORT_PAGE = 1000
MAX_EXPORT_RANGE = timedelta(days=366)
CSV_COLUMNS = (
    "orderRef",
    "merchant",
    "status",
    "cotpayOrderId",
    "sellerId",
    "buyerId",
    "amount",
    "description",
    "payMethod",
    "payoutRule",
    "createdAt",
    "updatedAt",
    "heldAt",
    "deliveredAt",
    "payoutNotBefore",
    "paidOutAt",
    "refundedAt",
    "attentionReason",
    "attentionCode",
    "waitingFor",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def export_range(start: date | datetime, end: date | datetime) -> tuple[datetime, datetime]:
    """The half-open range ``[from, to)`` of an export. A date is a Vietnam day: as ``start``
    its first instant, as ``end`` the end of that day (so ``2026-11-01..2026-11-30`` is all of
    November). Datetimes must be aware."""
    low = _instant(start, "from", end_of_day=False)
    high = _instant(end, "to", end_of_day=True)
    if low >= high:
        raise InvalidQuery("invalid_range", "from must be before to", "from")
    if high - low > MAX_EXPORT_RANGE:
        raise InvalidQuery(
            "range_too_large", f"an export covers at most {MAX_EXPORT_RANGE.days} days", "to"
        )
    return low, high


def _instant(value: date | datetime, field: str, *, end_of_day: bool) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidQuery("invalid_date", f"{field}: give a UTC offset", field)
        return value
    return day_start(value + timedelta(days=1) if end_of_day else value)


def export_orders_csv(
    db: Database,
    start: date | datetime,
    end: date | datetime,
    *,
    merchant: str | None = None,
    page_size: int = EXPORT_PAGE,
) -> AsyncIterator[bytes]:
    """The CSV of the orders created in ``[start, end)`` (see ``export_range``), as chunks of
    UTF-8 bytes. The range is checked now (``InvalidQuery``); the first chunk (BOM, header and
    first page) is the first read, so a store that is down raises ``StoreUnavailable`` before
    anything is sent."""
    low, high = export_range(start, end)
    filters = OrderFilters(created_from=low, created_to=high, merchant=merchant)
    return _chunks(db, filters, page_size)


def _text(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _time(value: datetime | None) -> str:
    return value.astimezone(VN).isoformat() if value is not None else ""


def _plain(value: object) -> str:
    return "" if value is None else str(value)


_COLUMNS = (
    orders.c.order_ref,
    orders.c.merchant,
    orders.c.status,
    orders.c.cotpay_order_id,
    orders.c.seller_id,
    orders.c.buyer_id,
    orders.c.amount,
    orders.c.description,
    orders.c.pay_method,
    orders.c.payout_rule,
    orders.c.created_at,
    orders.c.updated_at,
    orders.c.held_at,
    orders.c.delivered_at,
    orders.c.payout_not_before,
    orders.c.paid_out_at,
    orders.c.refunded_at,
    orders.c.attention_reason,
    orders.c.attention_code,
    orders.c.waiting_for,
)
_TEXT = frozenset({"seller_id", "buyer_id", "description", "attention_reason", "waiting_for"})
_FORMAT = tuple(
    _text if c.name in _TEXT else _time if isinstance(c.type, UtcDateTime) else _plain
    for c in _COLUMNS
)


async def _chunks(db: Database, filters: OrderFilters, page_size: int) -> AsyncIterator[bytes]:
    head: bytes | None = BOM + _csv([CSV_COLUMNS])
    sort = OrderSort.CREATED_ASC
    after: Position | None = None
    while True:
        stmt = (
            select(*_COLUMNS)
            .where(*filter_clauses(filters), *keyset(sort, after))
            .order_by(*ordering(sort))
            .limit(page_size)
        )
        async with db.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        body = _csv([[fmt(value) for fmt, value in zip(_FORMAT, row, strict=True)] for row in rows])
        if head is not None:
            body, head = head + body, None
        if body:
            yield body
        if len(rows) < page_size:
            return
        after = Position(rows[-1].created_at, rows[-1].order_ref, rows[-1].merchant)


def _csv(rows: Sequence[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")
