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

from sqlalchemy import ColumnElement, Select, func, or_, select

from store.db import Database
from store.models import FindingKind, MoneyKind
from store.schema import findings, order_events, orders
from workflows.models import EscrowStatus
from workflows.reconcile_checks import MoneyEvent, OrderMoney

CHUNK = 500
MAX_CANDIDATES = 100_000


def _chunks(values: Sequence[str] | Sequence[int]) -> Iterable[Sequence[str] | Sequence[int]]:
    for i in range(0, len(values), CHUNK):
        yield values[i : i + CHUNK]


async def _refs(db: Database, stmt: Select[tuple[str]]) -> list[str]:
    async with db.connect() as conn:
        result = await conn.execute(stmt.limit(MAX_CANDIDATES))
        return sorted({str(ref) for (ref,) in result})


async def paid_and_refunded_refs(db: Database) -> list[str]:
    """Orders with any sign of both a payout and a refund (events, status, times)."""
    e, o = order_events.c, orders.c
    both_events = (
        select(e.order_ref)
        .where(e.money.in_([MoneyKind.PAID_OUT.value, MoneyKind.REFUNDED.value]))
        .group_by(e.order_ref)
        .having(func.count(func.distinct(e.money)) > 1)
    )
    paid_row = or_(o.status == EscrowStatus.PAID_OUT.value, o.paid_out_at.is_not(None))
    refunded_row = or_(o.status == EscrowStatus.REFUNDED.value, o.refunded_at.is_not(None))
    joined = orders.join(order_events, e.order_ref == o.order_ref)
    refund_event_on_paid = (
        select(o.order_ref).select_from(joined).where(e.money == MoneyKind.REFUNDED.value, paid_row)
    )
    payout_event_on_refunded = (
        select(o.order_ref)
        .select_from(joined)
        .where(e.money == MoneyKind.PAID_OUT.value, refunded_row)
    )
    both_rows = select(o.order_ref).where(paid_row, refunded_row)
    found: set[str] = set()
    for stmt in (both_events, refund_event_on_paid, payout_event_on_refunded, both_rows):
        found.update(await _refs(db, stmt))
    return sorted(found)


async def stranded_refs(db: Database) -> list[str]:
    """Orders with an ``ipn_after_close`` or ``payout_in_doubt`` money event."""
    e = order_events.c
    kinds = [MoneyKind.IPN_AFTER_CLOSE.value, MoneyKind.PAYOUT_IN_DOUBT.value]
    return await _refs(db, select(e.order_ref).where(e.money.in_(kinds)).distinct())


async def settled_refs(db: Database, since: datetime) -> list[str]:
    """Orders with a Cotpay id that the store says were paid out or refunded at ``since`` or
    later (the ledger comparison's other direction)."""
    e, o = order_events.c, orders.c
    by_event = (
        select(e.order_ref)
        .where(
            e.money.in_([MoneyKind.PAID_OUT.value, MoneyKind.REFUNDED.value]),
            e.time >= since,
        )
        .distinct()
    )
    by_row = select(o.order_ref).where(
        o.cotpay_order_id.is_not(None), or_(o.paid_out_at >= since, o.refunded_at >= since)
    )
    found: set[str] = set()
    for stmt in (by_event, by_row):
        found.update(await _refs(db, stmt))
    return sorted(found)


async def money_of(
    db: Database,
    *,
    refs: Sequence[str] = (),
    cotpay_ids: Sequence[int] = (),
) -> list[OrderMoney]:
    """The orders named by ``refs`` or by Cotpay id, each with its money events in seq order."""
    o, e = orders.c, order_events.c
    clauses: list[ColumnElement[bool]] = [o.order_ref.in_(c) for c in _chunks(list(refs))]
    clauses += [o.cotpay_order_id.in_(c) for c in _chunks(list(cotpay_ids))]
    rows: dict[str, OrderMoney] = {}
    columns = (
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
                rows[row.order_ref] = OrderMoney.model_validate(dict(row._mapping))
        for chunk in _chunks(sorted(rows)):
            result = await conn.execute(
                select(
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
                .where(e.order_ref.in_(chunk), e.money.is_not(None))
                .order_by(e.order_ref, e.seq)
            )
            for event in result:
                fields = dict(event._mapping)
                rows[fields.pop("order_ref")].events.append(MoneyEvent.model_validate(fields))
    return [rows[ref] for ref in sorted(rows)]


async def finding_state(db: Database, kind: FindingKind, keys: Sequence[str]) -> dict[str, bool]:
    """For each of ``keys`` that has a finding of ``kind``: True when one is open, False when
    every one was closed."""
    f = findings.c
    state: dict[str, bool] = {}
    async with db.connect() as conn:
        for chunk in _chunks(list(keys)):
            result = await conn.execute(
                select(f.key, f.closed_at).where(f.kind == kind.value, f.key.in_(chunk))
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
