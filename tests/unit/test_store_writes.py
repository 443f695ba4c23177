"""What the workflow writes to the order store, pure (``workflows/store_writes.py``): the money
kinds of the timeline, the writes the outbox builds and when it has nothing to send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from activities.models import CallResult, CreateOrderResult
from cotpay.ipn import IpnBody, IpnStep
from store.models import MoneyKind, OrderWrite
from workflows.calls import Failure
from workflows.models import DeliveryConfirmation, EscrowStatus, IpnSignal, OrderInput
from workflows.state_machine import OrderRecord
from workflows.store_writes import StoreOutbox, money_kinds, order_write

S = EscrowStatus
T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
ORDER = OrderInput(order_ref="w-1", seller_id="S0000001", buyer_id="0912345678", amount=90_000)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def ipn(status: str, step: IpnStep, tx: str, now: datetime, amount: int = 90_000) -> IpnSignal:
    body = IpnBody(idOrder=5, status=status, code=10100, amount=amount, transactionId=tx, time=now)
    return IpnSignal(step=step, body=body)


def paid_out_record() -> OrderRecord:
    """Held, delivered, a payout in doubt, a payout refused for good, paid out, confirmed."""
    o = OrderRecord(inp=ORDER, status=S.CREATING, status_since=T0)
    o.started(T0)
    o.order_created(T0, CreateOrderResult(id_order=5))
    o.order_verified(T0, CallResult(code=10100, data="qr"))
    o.creation_done(T0)
    o.payment_wait()
    o.record_ipn(ipn("HOLDING", IpnStep.VERIFY, "hold-1", at(1)), at(1))
    o.record_ipn(ipn("HOLDING", IpnStep.VERIFY, "hold-2", at(1.5)), at(1.5))
    o.payment_wait_over(at(1.5))
    o.receive(at(2), DeliveryConfirmation())
    o.delivered_wait_over(at(30))
    o.paying_out()
    o.payout_call(at(30))
    o.call_failed(at(30), Failure("payment", "Timeout", None, "no answer"))
    o.payout_call(at(31))
    o.call_failed(at(31), Failure("payment", "PayoutTooEarly", 11100, "too early"))
    o.payout_call(at(32))
    o.payout_succeeded(at(32))
    o.record_ipn(ipn("PAID_OUT", IpnStep.PAYMENT, "payout-1", at(32)), at(32))
    return o


def test_money_kinds_mark_each_money_event_once() -> None:
    view = paid_out_record().view()
    marked = [(e.kind, kind) for e, kind in zip(view.timeline, money_kinds(view.timeline)) if kind]
    assert marked == [
        ("ipn", MoneyKind.HELD),  # the first HOLDING only
        ("activity_failed", MoneyKind.PAYOUT_IN_DOUBT),
        ("activity_failed", MoneyKind.PAYOUT_FAILED),
        ("status", MoneyKind.PAID_OUT),
    ]


def test_a_write_carries_cotpay_ids_and_amounts_of_its_money_events() -> None:
    view = paid_out_record().view()
    write = order_write(view, created_at=T0, after_seq=0, revision=1)
    assert write.last_seq == len(view.timeline) and write.view.timeline == []
    money = {e.money: e for e in write.events if e.money}
    held = money[MoneyKind.HELD]
    assert (held.cotpay_order_id, held.transaction_id, held.amount) == (5, "hold-1", 90_000)
    paid = money[MoneyKind.PAID_OUT]
    # The PAID_OUT IPN came after the transition: no transaction id to give it yet.
    assert (paid.cotpay_order_id, paid.transaction_id, paid.amount) == (5, None, 90_000)
    assert [e.seq for e in write.events] == list(range(1, len(view.timeline) + 1))


def test_a_write_sends_only_entries_after_the_stored_ones_and_at_most_the_limit() -> None:
    view = paid_out_record().view()
    write = order_write(view, created_at=T0, after_seq=3, revision=2, limit=4)
    assert [e.seq for e in write.events] == [4, 5, 6, 7]
    assert write.last_seq == 7
    OrderWrite.model_validate(write.model_dump())  # consistent for the store


def test_the_outbox_sends_each_change_once_and_bumps_the_revision_for_a_view_change() -> None:
    o = OrderRecord(inp=ORDER, status=S.CREATING, status_since=T0)
    o.started(T0)
    box = StoreOutbox(created_at=T0)
    assert box.pending(o.view()) and not box.idle(o.view())
    first = box.next_write(o.view())
    assert first is not None and (first.last_seq, first.revision) == (1, 1)
    assert box.writing and not box.idle(o.view())
    box.stored(first)
    assert box.idle(o.view()) and box.has(1) and not box.has(2)
    assert box.next_write(o.view()) is None

    o.creating()  # the waiting line changes, no new entry
    assert box.pending(o.view())
    second = box.next_write(o.view())
    assert second is not None and second.events == []
    assert (second.last_seq, second.revision) == (1, 2)
    assert second.view.waiting_for.startswith("Creating the order on Cotpay")
    box.stored(second)

    o.order_created(at(1), CreateOrderResult(id_order=5))
    third = box.next_write(o.view())
    assert third is not None and [e.seq for e in third.events] == [2]
    box.stored(third)
    assert box.idle(o.view()) and box.has(2)


def test_a_wrong_ipn_is_no_money_event() -> None:
    o = OrderRecord(inp=ORDER, status=S.CREATING, status_since=T0)
    o.started(T0)
    o.order_created(T0, CreateOrderResult(id_order=5))
    o.creation_done(T0)
    o.record_ipn(ipn("HOLDING", IpnStep.VERIFY, "hold-x", at(1), amount=1), at(1))
    view = o.view()
    assert view.timeline[-1].kind == "ipn_mismatch"
    assert money_kinds(view.timeline) == [None] * len(view.timeline)
