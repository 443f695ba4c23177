"""Writing and reading orders (docs/store.md).

Orders are keyed by (merchant, orderRef): two merchants may use the same orderRef, and every
function takes the merchant (``default`` unless given). ``record`` is the only write: idempotent
on (merchant, orderRef, seq), the ``orders`` row moving only forward. Reads: ``get_order``
(the order view with its timeline), ``events`` and ``list_orders`` (filters, sort, keyset pages
with an opaque cursor). Every value reaches SQL as a bound parameter of a SQLAlchemy expression.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Insert, RowMapping, and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from store import cursor
from store.db import Database
from store.errors import InvalidQuery, StoreUnavailable
from store.models import (
    MoneyKind,
    OrderFilters,
    OrderPage,
    OrderRow,
    OrderSort,
    OrderWrite,
    StoreEvent,
    WriteResult,
)
from store.schema import order_events, orders
from workflows.models import DEFAULT_MERCHANT, Attention, EscrowStatus, OrderView

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

# Columns a newer view replaces; order_ref, merchant and created_at are set once.
_VIEW_COLUMNS = (
    "workflow_id",
    "status",
    "cotpay_order_id",
    "seller_id",
    "buyer_id",
    "amount",
    "description",
    "pay_method",
    "payout_rule",
    "payment",
    "held_at",
    "delivered_at",
    "payout_not_before",
    "paid_out_at",
    "refunded_at",
    "attention_reason",
    "attention_code",
    "attention_since",
    "attention_step",
    "waiting_for",
    "last_seq",
    "revision",
)


def order_values(write: OrderWrite) -> dict[str, Any]:
    """The ``orders`` row of a write."""
    view = write.view
    attention = view.attention
    times = [e.time for e in write.events]
    return {
        "order_ref": write.order_ref,
        "merchant": write.merchant,
        "workflow_id": view.workflow_id,
        "status": view.status.value,
        "cotpay_order_id": view.cotpay_order_id,
        "seller_id": view.seller_id,
        "buyer_id": view.buyer_id,
        "amount": view.amount,
        "description": view.description,
        "pay_method": view.pay_method.value,
        "payout_rule": view.payout_rule.value,
        "payment": view.payment,
        "held_at": view.held_at,
        "delivered_at": view.delivered_at,
        "payout_not_before": view.payout_not_before,
        "paid_out_at": view.paid_out_at,
        "refunded_at": view.refunded_at,
        "attention_reason": attention.reason if attention else None,
        "attention_code": attention.code if attention else None,
        "attention_since": attention.since if attention else None,
        "attention_step": attention.step if attention else None,
        "waiting_for": view.waiting_for,
        "created_at": write.created_at,
        "updated_at": max(times, default=write.created_at),
        "last_seq": write.last_seq,
        "revision": write.revision,
    }


def event_values(
    order_ref: str, event: StoreEvent, recorded_at: datetime, merchant: str = DEFAULT_MERCHANT
) -> dict[str, Any]:
    return {
        "merchant": merchant,
        "order_ref": order_ref,
        "seq": event.seq,
        "time": event.time,
        "kind": event.kind,
        "status": event.status.value if event.status else None,
        "detail": event.detail,
        "money": event.money.value if event.money else None,
        "cotpay_order_id": event.cotpay_order_id,
        "transaction_id": event.transaction_id,
        "amount": event.amount,
        "data": event.data,
        "recorded_at": recorded_at,
    }


# The two statements of ``record``, built once per dialect: the values go in as parameters, so
# SQLAlchemy compiles each statement once (its compiled cache) instead of building and
# compiling a new expression for every write (a multi-row ``.values(rows)`` is a new statement
# for every row count).
_RECORD_STATEMENTS: dict[str, tuple[Insert, Insert]] = {}


def _record_statements(db: Database) -> tuple[Insert, Insert]:
    """The ``orders`` upsert (the row moves only forward) and the ``order_events`` insert that
    leaves an existing (merchant, orderRef, seq) as it is; both return what they wrote."""
    cached = _RECORD_STATEMENTS.get(db.dialect)
    if cached is not None:
        return cached
    upsert: Insert = db.insert(orders)
    new = upsert.excluded  # type: ignore[attr-defined]
    newer = or_(
        new.last_seq > orders.c.last_seq,
        and_(new.last_seq == orders.c.last_seq, new.revision > orders.c.revision),
    )
    changes: dict[str, Any] = {name: new[name] for name in _VIEW_COLUMNS}
    changes["updated_at"] = case(
        (new.updated_at > orders.c.updated_at, new.updated_at), else_=orders.c.updated_at
    )
    upsert = upsert.on_conflict_do_update(  # type: ignore[attr-defined]
        index_elements=[orders.c.merchant, orders.c.order_ref], set_=changes, where=newer
    ).returning(orders.c.order_ref)
    insert_events: Insert = (
        db.insert(order_events)
        .on_conflict_do_nothing(
            index_elements=[order_events.c.merchant, order_events.c.order_ref, order_events.c.seq]
        )
        .returning(order_events.c.seq)
    )
    _RECORD_STATEMENTS[db.dialect] = (upsert, insert_events)
    return upsert, insert_events


async def record(db: Database, write: OrderWrite) -> WriteResult:
    """Write an order's view and new events in one transaction.

    An event whose (merchant, orderRef, seq) exists is left as it is; the ``orders`` row of
    (merchant, orderRef) is inserted, or replaced by a view with a greater (lastSeq, revision);
    ``updatedAt`` never goes back."""
    upsert, insert_events = _record_statements(db)
    inserted = 0
    async with db.begin() as conn:
        moved = (await conn.execute(upsert, order_values(write))).first() is not None
        if write.events:
            now = datetime.now(UTC)
            rows = [event_values(write.order_ref, e, now, write.merchant) for e in write.events]
            # executemany with RETURNING: one INSERT of all rows ("insertmanyvalues"), a row
            # back for each event inserted (none for one that existed).
            inserted = len((await conn.execute(insert_events, rows)).all())
    return WriteResult(order_moved=moved, events_inserted=inserted)


APPEND_ATTEMPTS = 5


async def append_event(
    db: Database,
    order_ref: str,
    *,
    merchant: str = DEFAULT_MERCHANT,
    time: datetime,
    kind: str,
    detail: str = "",
    data: dict[str, Any] | None = None,
    money: MoneyKind | None = None,
    cotpay_order_id: int | None = None,
    transaction_id: str | None = None,
    amount: int | None = None,
) -> StoreEvent | None:
    """Append an event after the order's last one, for an order whose workflow has closed
    (e.g. a HOLDING IPN after close: ``money=IPN_AFTER_CLOSE``). Only then: a running workflow
    numbers its own events. An event of the same kind, time and transaction id is not appended
    twice (the existing one is returned). None when the store has no such order (of
    ``merchant``)."""
    e = order_events.c
    mine = (e.merchant == merchant, e.order_ref == order_ref)
    for _ in range(APPEND_ATTEMPTS):
        async with db.begin() as conn:
            row = (
                await conn.execute(
                    select(orders.c.status, orders.c.last_seq).where(_owned(order_ref, merchant))
                )
            ).first()
            if row is None:
                return None
            same = (
                await conn.execute(
                    select(order_events).where(
                        *mine,
                        e.kind == kind,
                        e.time == time,
                        e.transaction_id.is_(None)
                        if transaction_id is None
                        else e.transaction_id == transaction_id,
                    )
                )
            ).first()
            if same is not None:
                return row_to_event(same._mapping)
            top = (await conn.execute(select(func.max(e.seq)).where(*mine))).scalar()
            event = StoreEvent(
                seq=max(row.last_seq, top or 0) + 1,
                time=time,
                kind=kind,
                status=EscrowStatus(row.status),
                detail=detail,
                data=data,
                money=money,
                cotpay_order_id=cotpay_order_id,
                transaction_id=transaction_id,
                amount=amount,
            )
            stmt = (
                db.insert(order_events)
                .values(event_values(order_ref, event, datetime.now(UTC), merchant))
                .on_conflict_do_nothing(index_elements=[e.merchant, e.order_ref, e.seq])
                .returning(e.seq)
            )
            if (await conn.execute(stmt)).first() is None:
                continue  # another append took this seq: number again
            await conn.execute(
                update(orders)
                .where(_owned(order_ref, merchant))
                .values(
                    last_seq=event.seq,
                    updated_at=case((orders.c.updated_at < time, time), else_=orders.c.updated_at),
                )
            )
            return event
    raise StoreUnavailable(
        f"could not append to {merchant}/{order_ref}: too many concurrent appends"
    )


def row_to_order(row: RowMapping) -> OrderRow:
    attention = None
    if row["attention_reason"] is not None and row["attention_since"] is not None:
        attention = Attention(
            reason=row["attention_reason"],
            code=row["attention_code"],
            since=row["attention_since"],
            step=row["attention_step"],
        )
    fields = {c.name: row[c.name] for c in orders.c if not c.name.startswith("attention_")}
    fields.pop("revision")
    return OrderRow.model_validate({**fields, "attention": attention})


def row_to_event(row: RowMapping) -> StoreEvent:
    fields = {
        c.name: row[c.name] for c in order_events.c if c.name not in ("merchant", "order_ref")
    }
    fields.pop("recorded_at")
    return StoreEvent.model_validate(fields)


def _owned(order_ref: str, merchant: str) -> ColumnElement[bool]:
    return and_(orders.c.merchant == merchant, orders.c.order_ref == order_ref)


def _events_of(order_ref: str, merchant: str) -> Any:
    e = order_events.c
    return (
        select(order_events).where(e.merchant == merchant, e.order_ref == order_ref).order_by(e.seq)
    )


async def get_row(
    db: Database, order_ref: str, merchant: str = DEFAULT_MERCHANT
) -> OrderRow | None:
    async with db.connect() as conn:
        row = (await conn.execute(select(orders).where(_owned(order_ref, merchant)))).first()
    return row_to_order(row._mapping) if row is not None else None


async def events(
    db: Database, order_ref: str, merchant: str = DEFAULT_MERCHANT
) -> list[StoreEvent] | None:
    """The order's events in seq order; None when the store has no such order of
    ``merchant``."""
    async with db.connect() as conn:
        return await _events(conn, order_ref, merchant)


async def _events(conn: AsyncConnection, order_ref: str, merchant: str) -> list[StoreEvent] | None:
    owner = (
        await conn.execute(select(orders.c.order_ref).where(_owned(order_ref, merchant)))
    ).first()
    if owner is None:
        return None
    result = await conn.execute(_events_of(order_ref, merchant))
    return [row_to_event(r._mapping) for r in result]


async def get_order(
    db: Database, order_ref: str, merchant: str = DEFAULT_MERCHANT
) -> OrderView | None:
    """The order view with its timeline, as the workflow's ``status`` query answers it; None
    when the store has no such order of ``merchant``."""
    async with db.connect() as conn:
        row = (await conn.execute(select(orders).where(_owned(order_ref, merchant)))).first()
        if row is None:
            return None
        result = await conn.execute(_events_of(order_ref, merchant))
        timeline = [row_to_event(r._mapping).timeline_event() for r in result]
    return row_to_order(row._mapping).view(timeline)


def filter_clauses(filters: OrderFilters) -> list[ColumnElement[bool]]:
    c = orders.c
    clauses: list[ColumnElement[bool]] = []
    if filters.status:
        clauses.append(c.status.in_([s.value for s in filters.status]))
    if filters.seller_id is not None:
        clauses.append(c.seller_id == filters.seller_id)
    if filters.buyer_id is not None:
        clauses.append(c.buyer_id == filters.buyer_id)
    if filters.merchant is not None:
        clauses.append(c.merchant == filters.merchant)
    if filters.created_from is not None:
        clauses.append(c.created_at >= filters.created_from)
    if filters.created_to is not None:
        clauses.append(c.created_at < filters.created_to)
    if filters.updated_from is not None:
        clauses.append(c.updated_at >= filters.updated_from)
    if filters.updated_to is not None:
        clauses.append(c.updated_at < filters.updated_to)
    return clauses


def _sort_column(sort: OrderSort) -> Any:
    return (
        orders.c.created_at
        if sort in (OrderSort.CREATED_ASC, OrderSort.CREATED_DESC)
        else (orders.c.updated_at)
    )


def _descending(sort: OrderSort) -> bool:
    return sort in (OrderSort.CREATED_DESC, OrderSort.UPDATED_DESC)


def keyset(sort: OrderSort, after: cursor.Position | None) -> list[ColumnElement[bool]]:
    """The clause that starts a page after ``after`` in ``sort`` order."""
    if after is None:
        return []
    column, ref, owner = _sort_column(sort), orders.c.order_ref, orders.c.merchant
    if _descending(sort):
        return [
            or_(
                column < after.time,
                and_(
                    column == after.time,
                    or_(
                        ref < after.order_ref,
                        and_(ref == after.order_ref, owner < after.merchant),
                    ),
                ),
            )
        ]
    return [
        or_(
            column > after.time,
            and_(
                column == after.time,
                or_(ref > after.order_ref, and_(ref == after.order_ref, owner > after.merchant)),
            ),
        )
    ]


def ordering(sort: OrderSort) -> tuple[Any, Any, Any]:
    """Sort time, then orderRef, then merchant (two merchants may share an orderRef)."""
    column, ref, owner = _sort_column(sort), orders.c.order_ref, orders.c.merchant
    if _descending(sort):
        return column.desc(), ref.desc(), owner.desc()
    return column.asc(), ref.asc(), owner.asc()


async def page(
    conn: AsyncConnection,
    filters: OrderFilters,
    sort: OrderSort,
    limit: int,
    after: cursor.Position | None,
) -> tuple[Sequence[OrderRow], cursor.Position | None]:
    """One keyset page and the position after it (None on the last page)."""
    stmt = (
        select(orders)
        .where(*filter_clauses(filters), *keyset(sort, after))
        .order_by(*ordering(sort))
        .limit(limit + 1)
    )
    rows = [row_to_order(r._mapping) for r in await conn.execute(stmt)]
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    when = last.created_at if _sort_column(sort) is orders.c.created_at else last.updated_at
    return rows[:limit], cursor.Position(when, last.order_ref, last.merchant)


async def list_orders(
    db: Database,
    filters: OrderFilters | None = None,
    sort: OrderSort = OrderSort.CREATED_DESC,
    limit: int = DEFAULT_LIMIT,
    cursor_text: str | None = None,
) -> OrderPage:
    """A page of orders matching ``filters`` in ``sort`` order. Pass the page's ``nextCursor``
    back with the same filters and sort for the next page; ``InvalidQuery`` for a bad limit or a
    cursor that is malformed or made by another query."""
    filters = filters or OrderFilters()
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidQuery("invalid_limit", f"limit must be 1..{MAX_LIMIT}", "limit")
    query = cursor.fingerprint(filters, sort)
    after = cursor.decode(cursor_text, query) if cursor_text is not None else None
    async with db.connect() as conn:
        rows, end = await page(conn, filters, sort, limit, after)
    return OrderPage(
        orders=list(rows), next_cursor=cursor.encode(end, query) if end is not None else None
    )
