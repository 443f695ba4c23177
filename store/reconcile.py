"""The store's side of the daily reconciliation (docs/reconciliation.md): read-only queries.

The checks themselves are pure (``workflows/reconcile_checks.py``); these queries find the few
orders each check must look at (money events are indexed by ``(money, time)``), so a run does
not read every order ever kept. ``money_of`` loads what a check needs about those orders.
Findings are written with ``OrderStore.open_finding``; ``finding_state`` says which keys an
operator has already closed, so that a fact from history is not reported again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, tuple_

from store.db import Database
from store.models import FindingKind, MoneyKind
from store.schema import findings, order_events, orders
from workflows.models import DEFAULT_MERCHANT, EscrowStatus
from workflows.reconcile_checks import MoneyEvent, OrderMoney

CHUNK = 500
MAX_CANDIDATES = 100_000

# An order of the store: (merchant, orderRef). Two merchants may use the same orderRef.
OrderKey = tuple[str, str]


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(values), CHUNK):
        yield values[i : i + CHUNK]


async def _keys(db: Database, stmt: Select[Any]) -> list[OrderKey]:
    async with db.connect() as conn:
        result = await conn.execute(stmt.limit(MAX_CANDIDATES))
        return sorted({(str(merchant), str(ref)) for (merchant, ref) in result})


def _same_order() -> ColumnElement[bool]:
    e, o = order_events.c, orders.c
    return and_(e.merchant == o.merchant, e.order_ref == o.order_ref)


async def paid_and_refunded_refs(db: Database) -> list[OrderKey]:
    """Orders with any sign of both a payout and a refund (events, status, times)."""
    e, o = order_events.c, orders.c
    both_events = (
        select(e.merchant, e.order_ref)
        .where(e.money.in_([MoneyKind.PAID_OUT.value, MoneyKind.REFUNDED.value]))
        .group_by(e.merchant, e.order_ref)
        .having(func.count(func.distinct(e.money)) > 1)
    )
    paid_row = or_(o.status == EscrowStatus.PAID_OUT.value, o.paid_out_at.is_not(None))
    refunded_row = or_(o.status == EscrowStatus.REFUNDED.value, o.refunded_at.is_not(None))
    joined = orders.join(order_events, _same_order())
    refund_event_on_paid = (
        select(o.merchant, o.order_ref)
        .select_from(joined)
        .where(e.money == MoneyKind.REFUNDED.value, paid_row)
    )
    payout_event_on_refunded = (
        select(o.merchant, o.order_ref)
        .select_from(joined)
        .where(e.money == MoneyKind.PAID_OUT.value, refunded_row)
    )
    both_rows = select(o.merchant, o.order_ref).where(paid_row, refunded_row)
    found: set[OrderKey] = set()
    for stmt in (both_events, refund_event_on_paid, payout_event_on_refunded, both_rows):
        found.update(await _keys(db, stmt))
    return sorted(found)


async def stranded_refs(db: Database) -> list[OrderKey]:
    """Orders with an ``ipn_after_close`` or ``payout_in_doubt`` money event."""
    e = order_events.c
    kinds = [MoneyKind.IPN_AFTER_CLOSE.value, MoneyKind.PAYOUT_IN_DOUBT.value]
    return await _keys(db, select(e.merchant, e.order_ref).where(e.money.in_(kinds)).distinct())


async def settled_refs(
    db: Database, since: datetime, merchant: str | None = None
) -> list[OrderKey]:
    """Orders with a Cotpay id that the store says were paid out or refunded at ``since`` or
    later (the ledger comparison's other direction); of ``merchant`` when given."""
    e, o = order_events.c, orders.c
    by_event = (
        select(e.merchant, e.order_ref)
        .where(
            e.money.in_([MoneyKind.PAID_OUT.value, MoneyKind.REFUNDED.value]),
            e.time >= since,
            *([e.merchant == merchant] if merchant is not None else []),
        )
        .distinct()
    )
    by_row = select(o.merchant, o.order_ref).where(
        o.cotpay_order_id.is_not(None),
        or_(o.paid_out_at >= since, o.refunded_at >= since),
        *([o.merchant == merchant] if merchant is not None else []),
    )
    found: set[OrderKey] = set()
    for stmt in (by_event, by_row):
        found.update(await _keys(db, stmt))
    return sorted(found)


async def money_of(
    db: Database,
    *,
    refs: Sequence[OrderKey] = (),
    cotpay_ids: Sequence[int] = (),
    merchant: str | None = None,
) -> list[OrderMoney]:
    """The orders named by ``refs`` ((merchant, orderRef) pairs) or by Cotpay id (of
    ``merchant`` when given: Cotpay ids are per merchant account), each with its money events
    in seq order."""
    o, e = orders.c, order_events.c
    clauses: list[ColumnElement[bool]] = [
        tuple_(o.merchant, o.order_ref).in_(list(c)) for c in _chunks(list(refs))
    ]
    owned = [o.merchant == merchant] if merchant is not None else []
    clauses += [and_(o.cotpay_order_id.in_(c), *owned) for c in _chunks(list(cotpay_ids))]
    rows: dict[OrderKey, OrderMoney] = {}
    columns = (
        o.merchant,
        o.order_ref,
        o.status,
        o.amount,
        o.cotpay_order_id,
        o.held_at,
        o.paid_out_at,
        o.refunded_at,
    )
    async with db.connect() as conn:
        for where in clauses:
            for row in await conn.execute(select(*columns).where(where)):
                rows[(row.merchant, row.order_ref)] = OrderMoney.model_validate(dict(row._mapping))
        for chunk in _chunks(sorted(rows)):
            result = await conn.execute(
                select(
                    e.merchant,
                    e.order_ref,
                    e.seq,
                    e.time,
                    e.money,
                    e.kind,
                    e.amount,
                    e.transaction_id,
                    e.cotpay_order_id,
                    e.data,
                )
                .where(tuple_(e.merchant, e.order_ref).in_(list(chunk)), e.money.is_not(None))
                .order_by(e.merchant, e.order_ref, e.seq)
            )
            for event in result:
                fields = dict(event._mapping)
                key = (fields.pop("merchant"), fields.pop("order_ref"))
                rows[key].events.append(MoneyEvent.model_validate(fields))
    return [rows[key] for key in sorted(rows)]


async def finding_state(
    db: Database, kind: FindingKind, keys: Sequence[str], merchant: str = DEFAULT_MERCHANT
) -> dict[str, bool]:
    """For each of ``keys`` of ``merchant`` that has a finding of ``kind``: True when one is
    open, False when every one was closed."""
    f = findings.c
    state: dict[str, bool] = {}
    async with db.connect() as conn:
        for chunk in _chunks(list(keys)):
            result = await conn.execute(
                select(f.key, f.closed_at).where(
                    f.merchant == merchant, f.kind == kind.value, f.key.in_(chunk)
                )
            )
            for key, closed_at in result:
                state[key] = state.get(key, False) or closed_at is None
    return state


async def open_counts(db: Database) -> dict[str, int]:
    """Open findings by kind."""
    f = findings.c
    async with db.connect() as conn:
        result = await conn.execute(
            select(f.kind, func.count()).where(f.closed_at.is_(None)).group_by(f.kind)
        )
        return {kind: int(count) for kind, count in result}
