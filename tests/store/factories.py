"""Orders and writes for the store tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cotpay.models import PayMethod
from store.models import MoneyKind, OrderWrite, StoreEvent
from workflows.models import (
    Attention,
    EscrowStatus,
    OrderView,
    PayoutRule,
    TimelineEvent,
    workflow_id_for,
)

T0 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)  # 10:00 in Vietnam


def view(
    ref: str,
    status: EscrowStatus = EscrowStatus.AWAITING_PAYMENT,
    *,
    amount: int = 150_000,
    seller: str = "0901000001",
    buyer: str = "0902000002",
    description: str = "Áo dài lụa tơ tằm, đỏ",
    **fields: Any,
) -> OrderView:
    return OrderView(
        order_ref=ref,
        workflow_id=workflow_id_for(ref),
        status=status,
        cotpay_order_id=fields.pop("cotpay_order_id", 4242),
        seller_id=seller,
        buyer_id=buyer,
        amount=amount,
        description=description,
        pay_method=PayMethod.VIETQR,
        payout_rule=PayoutRule.T1_1600,
        **fields,
    )


def event(
    seq: int,
    time: datetime,
    kind: str = "status",
    status: EscrowStatus | None = EscrowStatus.AWAITING_PAYMENT,
    money: MoneyKind | None = None,
    **fields: Any,
) -> StoreEvent:
    return StoreEvent(seq=seq, time=time, kind=kind, status=status, money=money, **fields)


def write(
    ref: str,
    status: EscrowStatus,
    events: list[StoreEvent],
    *,
    last_seq: int | None = None,
    created_at: datetime = T0,
    merchant: str = "default",
    revision: int = 0,
    **view_fields: Any,
) -> OrderWrite:
    return OrderWrite(
        order_ref=ref,
        merchant=merchant,
        created_at=created_at,
        last_seq=last_seq if last_seq is not None else max((e.seq for e in events), default=0),
        revision=revision,
        view=view(ref, status, **view_fields),
        events=events,
    )


def full_view(ref: str, start: datetime = T0) -> OrderView:
    """A view with a realistic timeline: created, paid (HOLDING IPN), held, needs attention."""
    t = start
    timeline = [
        TimelineEvent(time=t, kind="started", status=EscrowStatus.CREATING, detail="Bắt đầu"),
        TimelineEvent(
            time=t + timedelta(seconds=1),
            kind="order_created",
            status=EscrowStatus.CREATING,
            detail="order created",
            data={"idOrder": 4242},
        ),
        TimelineEvent(
            time=t + timedelta(seconds=2),
            kind="status",
            status=EscrowStatus.AWAITING_PAYMENT,
            detail="payment data ready",
        ),
        TimelineEvent(
            time=t + timedelta(minutes=5),
            kind="ipn",
            status=EscrowStatus.AWAITING_PAYMENT,
            detail="payment HOLDING",
            data={
                "step": "payment",
                "status": "HOLDING",
                "idOrder": 4242,
                "code": 10100,
                "transactionId": "TX-1",
                "amount": 150_000,
            },
        ),
        TimelineEvent(
            time=t + timedelta(minutes=5, seconds=1),
            kind="status",
            status=EscrowStatus.HELD,
            detail="money held",
        ),
        TimelineEvent(
            time=t + timedelta(hours=1),
            kind="status",
            status=EscrowStatus.NEEDS_ATTENTION,
            detail="seller wallet not linked",
        ),
    ]
    return view(
        ref,
        EscrowStatus.NEEDS_ATTENTION,
        held_at=t + timedelta(minutes=5),
        attention=Attention(
            reason="seller wallet not linked",
            code=10900,
            since=t + timedelta(hours=1),
            step="payout",
        ),
        waiting_for="Waiting for an operator since 11:00",
        timeline=timeline,
    )


async def record_before_0005(url: object, write: OrderWrite) -> None:
    """``write`` as the code before revision 0005 stored it: ``order_events`` had no merchant
    column (for tests that upgrade a database holding orders)."""
    from datetime import UTC as _UTC

    from sqlalchemy import Column, MetaData, Table
    from sqlalchemy.ext.asyncio import create_async_engine

    from store.orders import event_values, order_values
    from store.schema import order_events, orders

    old = MetaData()
    old_orders = Table("orders", old, *(Column(c.name, c.type) for c in orders.c))
    old_events = Table(
        "order_events",
        old,
        *(Column(c.name, c.type) for c in order_events.c if c.name != "merchant"),
    )
    now = datetime.now(_UTC)
    rows = [event_values(write.order_ref, e, now) for e in write.events]
    for row in rows:
        row.pop("merchant")
    engine = create_async_engine(url)  # type: ignore[arg-type]
    try:
        async with engine.begin() as conn:
            await conn.execute(old_orders.insert().values(order_values(write)))
            if rows:
                await conn.execute(old_events.insert().values(rows))
    finally:
        await engine.dispose()
