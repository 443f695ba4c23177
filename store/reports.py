"""The money report: where the money of every order is, now or at the end of a day
(docs/store.md).

Computed from ``order_events`` alone (plus each order's amount), so the answer for a past day
does not change when orders move on. For each order, over its events before the instant:

- ``refunded``: a ``refunded`` money event, or the latest status REFUNDED;
- ``paid_out``: a ``paid_out`` money event, or the latest status PAID_OUT;
- ``in_doubt``: the latest of its ``payout_in_doubt`` / ``payout_failed`` events is a doubt;
- ``stranded``: an ``ipn_after_close`` money event (amount: that event's);
- otherwise by the latest status: AWAITING_PAYMENT is ``awaiting_payment`` (``held`` once a
  ``held`` event came); HELD and RETURN_REQUESTED are ``held``; DELIVERED is ``delivered``
  (waiting for the payout window); PAYING_OUT is ``paying_out``; NEEDS_ATTENTION is ``held`` if
  money was held. Other orders hold no money and are not counted.

The first matching rule wins. A day is a Vietnam calendar day; its report is as of the end of it
and adds the day's money events (``flows``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select

from store.db import Database
from store.errors import InvalidQuery
from store.models import (
    MoneyFlow,
    MoneyKind,
    MoneyLine,
    MoneyReport,
    MoneyState,
    day_start,
    vn_today,
)
from store.schema import order_events, orders
from workflows.models import EscrowStatus

S = EscrowStatus
M = MoneyKind


def _last_seq_of(kind: MoneyKind) -> Any:
    e = order_events.c
    return func.max(case((e.money == kind.value, e.seq)))


def _states_query(before: datetime | None, merchant: str | None) -> Any:
    e = order_events.c
    where = [e.time < before] if before is not None else []
    per_order = (
        select(
            e.merchant,
            e.order_ref,
            func.max(case((e.status.is_not(None), e.seq))).label("status_seq"),
            _last_seq_of(M.HELD).label("held"),
            _last_seq_of(M.PAID_OUT).label("paid_out"),
            _last_seq_of(M.REFUNDED).label("refunded"),
            _last_seq_of(M.PAYOUT_IN_DOUBT).label("doubt"),
            _last_seq_of(M.PAYOUT_FAILED).label("failed"),
            _last_seq_of(M.IPN_AFTER_CLOSE).label("after_close"),
            func.max(case((e.money == M.IPN_AFTER_CLOSE.value, e.amount))).label(
                "after_close_amount"
            ),
        )
        .where(*where, *([e.merchant == merchant] if merchant is not None else []))
        .group_by(e.merchant, e.order_ref)
        .subquery("per_order")
    )
    latest = order_events.alias("latest")
    status = latest.c.status
    p = per_order.c
    state = case(
        (or_(p.refunded.is_not(None), status == S.REFUNDED.value), MoneyState.REFUNDED.value),
        (or_(p.paid_out.is_not(None), status == S.PAID_OUT.value), MoneyState.PAID_OUT.value),
        (p.doubt > func.coalesce(p.failed, literal(0)), MoneyState.IN_DOUBT.value),
        (p.after_close.is_not(None), MoneyState.STRANDED.value),
        (
            and_(status == S.AWAITING_PAYMENT.value, p.held.is_(None)),
            MoneyState.AWAITING_PAYMENT.value,
        ),
        (
            status.in_([S.HELD.value, S.RETURN_REQUESTED.value, S.AWAITING_PAYMENT.value]),
            MoneyState.HELD.value,
        ),
        (status == S.DELIVERED.value, MoneyState.DELIVERED.value),
        (status == S.PAYING_OUT.value, MoneyState.PAYING_OUT.value),
        (and_(status == S.NEEDS_ATTENTION.value, p.held.is_not(None)), MoneyState.HELD.value),
        else_=None,
    )
    amount = case(
        (
            state == MoneyState.STRANDED.value,
            func.coalesce(p.after_close_amount, orders.c.amount),
        ),
        else_=orders.c.amount,
    )
    joined = per_order.join(
        orders, and_(orders.c.merchant == p.merchant, orders.c.order_ref == p.order_ref)
    ).outerjoin(
        latest,
        and_(
            latest.c.merchant == p.merchant,
            latest.c.order_ref == p.order_ref,
            latest.c.seq == p.status_seq,
        ),
    )
    states = (
        select(state.label("state"), amount.label("amount")).select_from(joined).subquery("states")
    )
    return (
        select(states.c.state, func.count(), func.sum(states.c.amount))
        .where(states.c.state.is_not(None))
        .group_by(states.c.state)
    )


def _flows_query(start: datetime, end: datetime, merchant: str | None) -> Any:
    e = order_events.c
    owned = [e.merchant == merchant] if merchant is not None else []
    same_order = and_(orders.c.merchant == e.merchant, orders.c.order_ref == e.order_ref)
    return (
        select(e.money, func.count(), func.sum(func.coalesce(e.amount, orders.c.amount)))
        .select_from(order_events.join(orders, same_order))
        .where(e.money.is_not(None), e.time >= start, e.time < end, *owned)
        .group_by(e.money)
    )


async def money_report(
    db: Database,
    at: date | datetime | None = None,
    *,
    merchant: str | None = None,
    now: datetime | None = None,
) -> MoneyReport:
    """Counts and VND totals per ``MoneyState``: now (``at`` None), at the end of the Vietnam
    day ``at`` (not after today), or just before an aware instant ``at``."""
    now = now or datetime.now(UTC)
    day: date | None = None
    if at is None:
        before: datetime | None = None
        as_of = now
    elif isinstance(at, datetime):
        if at.tzinfo is None or at.utcoffset() is None:
            raise InvalidQuery("invalid_date", "at: give a UTC offset", "at")
        before = as_of = at.astimezone(UTC)
    else:
        if at > vn_today(now):
            raise InvalidQuery("invalid_date", "at: a day in the future", "at")
        day = at
        before = as_of = day_start(at + timedelta(days=1))
    totals: dict[str, tuple[int, int]] = {}
    flows: list[MoneyFlow] | None = None
    async with db.connect() as conn:
        for state, count, amount in await conn.execute(_states_query(before, merchant)):
            totals[state] = (int(count), int(amount or 0))
        if day is not None:
            start = day_start(day)
            got = {
                money: (int(count), int(amount or 0))
                for money, count, amount in await conn.execute(_flows_query(start, as_of, merchant))
            }
            flows = [
                MoneyFlow(
                    kind=k, count=got.get(k.value, (0, 0))[0], amount=got.get(k.value, (0, 0))[1]
                )
                for k in MoneyKind
            ]
    lines = [
        MoneyLine(
            state=s, count=totals.get(s.value, (0, 0))[0], amount=totals.get(s.value, (0, 0))[1]
        )
        for s in MoneyState
    ]
    return MoneyReport(as_of=as_of, day=day, states=lines, flows=flows)
