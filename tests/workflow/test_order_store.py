"""The workflow writes the order store (docs/store.md, The write path), on the time-skipping server
with a real ``OrderStore`` (SQLite file): every event once and in order, nothing twice under
retries and replays, updates that the store shows when they answer, and an outage that delays
only the store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.store_activities import StoreActivities
from cotpay.ipn import IpnStep
from store.api import OrderStore
from store.models import MoneyKind, OrderWrite, StoreEvent, WriteResult
from tests.workflow.fake_cotpay import FakeCotpay
from tests.workflow.helpers import Order, Session, start, worker
from workflows.escrow import (
    LEAN_PATCH,
    STORE_SYNC_WAIT,
    EscrowOrderWorkflow,
)
from workflows.models import (
    DeliveryConfirmation,
    DisputeRequest,
    EscrowStatus,
    OperatorAction,
    OrderView,
    PayoutRule,
)

S = EscrowStatus


class SwitchedStore:
    """The real ``store.record`` behind a switch: while ``down`` every attempt fails as an
    unreachable store does; the first ``lose`` attempts that reach the store commit and then
    fail, as when the answer is lost. Counts attempts and rows inserted over all attempts."""

    def __init__(self, store: OrderStore) -> None:
        self.real = StoreActivities(store)
        self.down = False
        self.lose = 0
        self.attempts = 0
        self.inserted = 0

    @activity.defn(name="store.record")
    async def record(self, write: OrderWrite) -> WriteResult:
        self.attempts += 1
        if self.down:
            raise ApplicationError("order store unavailable (test)", type="StoreUnavailable")
        result = await self.real.record(write)
        self.inserted += result.events_inserted
        if self.lose > 0:
            self.lose -= 1
            raise ApplicationError("the answer was lost (test)", type="Transport")
        return result

    def all(self) -> list[Any]:
        return [self.record]


def same_entries(events: list[StoreEvent], view: OrderView) -> None:
    """The store holds the timeline: one row per entry, numbered 1..n, in order."""
    assert [e.seq for e in events] == list(range(1, len(view.timeline) + 1))
    assert [e.timeline_event() for e in events] == view.timeline


async def paid_out_order(env: WorkflowEnvironment, session: Session) -> Order:
    order = await start(session)
    await order.handle.execute_update(EscrowOrderWorkflow.payment_info)
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation())
    await env.sleep(timedelta(days=2))
    await order.until(S.PAID_OUT)
    await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="payout-1")
    return order


async def test_the_store_receives_every_event_once_and_in_order(
    env: WorkflowEnvironment, session: Session
) -> None:
    order = await paid_out_order(env, session)
    final = await order.handle.result()
    assert final.status is S.PAID_OUT
    events = await order.stored()
    same_entries(events, final)
    assert await session.store.get_order(order.inp.order_ref) == final
    row = await session.store.get_row(order.inp.order_ref)
    assert row is not None
    assert (row.status, row.last_seq, row.waiting_for) == (
        S.PAID_OUT,
        len(final.timeline),
        "Finished: PAID_OUT",
    )
    assert row.created_at == final.timeline[0].time
    money = [(e.money, e.cotpay_order_id, e.amount) for e in events if e.money]
    amount, id_order = order.inp.amount, final.cotpay_order_id
    assert money == [(MoneyKind.HELD, id_order, amount), (MoneyKind.PAID_OUT, id_order, amount)]
    held = next(e for e in events if e.money is MoneyKind.HELD)
    assert held.kind == "ipn" and held.transaction_id == "tx-holding"


async def test_retries_and_replays_write_nothing_twice(
    env: WorkflowEnvironment, fake: FakeCotpay, order_store: OrderStore
) -> None:
    """Replay at every workflow task (no workflow cache), and the first two attempts commit but
    lose their answer, so the write is sent again: each event is still inserted exactly once,
    and the finished history replays. (Signals, not updates, drive this order: the time-skipping
    test server sometimes refuses an update's task completion when no cache is kept.)"""
    store = SwitchedStore(order_store)
    store.lose = 2
    async with worker(
        env, fake, order_store, store_activities=store.all(), max_cached_workflows=0
    ) as session:
        order = await start(session)
        await order.hold()
        await order.handle.signal("confirm_delivery", DeliveryConfirmation())
        await order.until(S.DELIVERED)
        await env.sleep(timedelta(days=2))
        await order.until(S.PAID_OUT)
        await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="payout-1")
        final = await order.handle.result()
        history = await order.handle.fetch_history()
    same_entries(await order.stored(), final)
    assert store.inserted == len(final.timeline)
    assert store.lose == 0 and store.attempts >= 4
    replayer = Replayer(workflows=[EscrowOrderWorkflow], data_converter=env.client.data_converter)
    await replayer.replay_workflow(history)


async def test_an_update_answer_is_in_the_store_when_it_returns(session: Session) -> None:
    order = await start(session)
    info = await order.handle.execute_update(EscrowOrderWorkflow.payment_info)
    row = await session.store.get_row(order.inp.order_ref)
    assert row is not None and row.status is info.status is S.AWAITING_PAYMENT
    assert row.cotpay_order_id == info.cotpay_order_id and row.payment == info.payment
    await order.hold()
    view = await order.handle.execute_update(
        EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation()
    )
    await shows(session.store, view, S.DELIVERED)
    view = await order.handle.execute_update(
        EscrowOrderWorkflow.open_dispute, DisputeRequest(reason="broken")
    )
    await shows(session.store, view, S.RETURN_REQUESTED)


async def shows(store: OrderStore, view: OrderView, status: EscrowStatus) -> None:
    """Right after the answer, the store has the update's transition to ``status``."""
    assert view.status is status
    row = await store.get_row(view.order_ref)
    assert row is not None and row.status is status
    events = await store.events(view.order_ref)
    assert events is not None and len(events) >= row.last_seq
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert any(e.kind == "status" and e.status is status for e in events)


async def test_a_store_outage_delays_only_the_store(
    env: WorkflowEnvironment, fake: FakeCotpay, order_store: OrderStore
) -> None:
    """With the store down from the start, the order is created, held, delivered and paid out,
    and every update answers (after at most ``STORE_SYNC_WAIT``); once the store is back,
    everything reaches it, in order, and only then does the workflow finish."""
    store = SwitchedStore(order_store)
    store.down = True
    async with worker(env, fake, order_store, store_activities=store.all()) as session:
        order = await start(session, payout_rule=PayoutRule.IMMEDIATE)
        await order.hold()
        answer = order.handle.execute_update(
            EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation()
        )
        view = await asyncio.wait_for(answer, STORE_SYNC_WAIT.total_seconds() + 5)
        assert view.status is S.DELIVERED  # the state right after the update applied
        await order.until(S.PAID_OUT)
        await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="payout-1")
        await order.eventually(lambda v: v.waiting_for == "Finished: PAID_OUT")
        assert len(fake.called("payment")) == 1
        assert await order.stored() == []
        assert store.attempts >= 1
        described = await order.handle.describe()
        assert described.status is not None and described.status.name == "RUNNING"
        store.down = False
        final = await asyncio.wait_for(order.handle.result(), 60)
    same_entries(await order.stored(), final)
    assert store.inserted == len(final.timeline)


class HungStore(SwitchedStore):
    """``SwitchedStore`` whose *local* attempts hang (a store that does not answer) while
    ``hang``; regular attempts fail at once while ``down``. Counts local attempts."""

    def __init__(self, store: OrderStore, on_hang: Callable[[], None] | None = None) -> None:
        super().__init__(store)
        self.hang = False
        self.local_attempts = 0
        self.on_hang = on_hang

    @activity.defn(name="store.record")
    async def record(self, write: OrderWrite) -> WriteResult:
        if activity.info().is_local:
            self.local_attempts += 1
            if self.hang:
                if self.on_hang is not None:
                    self.on_hang()
                await asyncio.sleep(3600)  # cancelled by the local attempt's timeout
        return await super().record(write)


async def test_a_hung_store_never_holds_a_payout_call(
    env: WorkflowEnvironment, fake: FakeCotpay, order_store: OrderStore
) -> None:
    """Patch ``lean-history``: a local write holds its workflow task, so none runs in the task
    that schedules the payout: the write the ``delivered`` update waits for goes out as the
    regular activity beside the payout call, which no attempt at the store holds back. The
    update answers after at most ``STORE_SYNC_WAIT`` while the store hangs; the order makes at
    most one local attempt while the store is down, pays out once, and once the store is back
    the store has every event."""
    # How many payment calls had been made when each hanging local attempt began.
    payments_at_hang: list[int] = []
    store = HungStore(order_store, lambda: payments_at_hang.append(len(fake.called("payment"))))
    async with worker(env, fake, order_store, store_activities=store.all()) as session:
        order = await start(session, payout_rule=PayoutRule.IMMEDIATE)
        await order.hold()
        await order.eventually(lambda v: v.waiting_for is not None)
        await asyncio.sleep(0.5)  # the HELD write is done
        store.hang = store.down = True
        local_before = store.local_attempts
        answer = asyncio.ensure_future(
            order.handle.execute_update(
                EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation()
            )
        )
        await order.calls_of("payment", 1)
        view = await asyncio.wait_for(answer, STORE_SYNC_WAIT.total_seconds() + 10)
        assert view.status is S.DELIVERED
        await order.until(S.PAID_OUT)
        assert len(fake.called("payment")) == 1
        await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="payout-1")
        await order.eventually(lambda v: v.waiting_for == "Finished: PAID_OUT")
        assert store.local_attempts <= local_before + 1
        # No local attempt hung before the payout call went out.
        assert all(payments == 1 for payments in payments_at_hang), payments_at_hang
        store.hang = store.down = False
        final = await asyncio.wait_for(order.handle.result(), 90)
    same_entries(await order.stored(), final)


async def test_the_patches_are_in_the_history(session: Session) -> None:
    """New orders carry one patch marker, ``lean-history``: they write the store (each write a
    local activity first), coalesce their search-attribute upserts and check IPNs against the
    order without asking ``order-store``, ``coalesce-search-attributes`` or
    ``ipn-amount-check`` (docs/store.md, docs/workflow.md)."""
    order = await start(session)
    await order.until(S.AWAITING_PAYMENT)
    await order.ipn("HOLDING", IpnStep.VERIFY, amount=order.inp.amount + 1)
    await order.until(S.NEEDS_ATTENTION)
    assert await patches(order) == [LEAN_PATCH]
    plain = await start(session)
    await plain.hold()
    assert await patches(plain) == [LEAN_PATCH]


async def patches(order: Order) -> list[str]:
    history = await order.handle.fetch_history()
    found = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            details = event.marker_recorded_event_attributes.details
            if "patch-data" not in details:  # a local activity's marker (a store write)
                continue
            [payload] = details["patch-data"].payloads
            found.append(json.loads(payload.data)["id"])
    return found


# --- IPN checks (docs/workflow.md, IPNs) ---------------------------------------------------------


async def test_a_holding_ipn_for_the_wrong_amount_needs_an_operator(
    env: WorkflowEnvironment, fake: FakeCotpay, session: Session
) -> None:
    order = await start(session)
    await order.until(S.AWAITING_PAYMENT)
    await order.ipn("HOLDING", IpnStep.VERIFY, amount=15_000, tx="tx-wrong")
    view = await order.until(S.NEEDS_ATTENTION)
    assert view.held_at is None
    assert view.attention is not None and view.attention.step == "ipn_check"
    assert "15000" in view.attention.reason and str(order.inp.amount) in view.attention.reason
    evidence = next(e for e in view.timeline if e.kind == "evidence")
    assert evidence.data is not None
    assert (evidence.data["expectedAmount"], evidence.data["receivedAmount"]) == (
        order.inp.amount,
        15_000,
    )
    assert evidence.data["transactionId"] == "tx-wrong"
    assert S.HELD.value not in [e.status for e in view.timeline if e.kind == "status"]
    # The operator waits for the right IPN; it holds the order as usual.
    view = await order.handle.execute_update(
        EscrowOrderWorkflow.operator_action, OperatorAction(action="retry", operator="ops")
    )
    assert view.status is S.AWAITING_PAYMENT
    await order.hold()
    stored = await order.until_stored()
    mismatch = next(e for e in stored if e.kind == "ipn_mismatch")
    assert mismatch.money is None and mismatch.amount == 15_000
    assert [e.kind for e in stored if e.money is MoneyKind.HELD] == ["ipn"]
    assert not fake.called("payment")


async def test_a_holding_ipn_for_another_cotpay_order_needs_an_operator(
    session: Session,
) -> None:
    order = await start(session)
    view = await order.until(S.AWAITING_PAYMENT)
    await order.ipn("HOLDING", IpnStep.VERIFY, id_order=424_242)
    view = await order.until(S.NEEDS_ATTENTION)
    evidence = next(e for e in view.timeline if e.kind == "evidence")
    assert evidence.data is not None
    assert (evidence.data["expectedIdOrder"], evidence.data["receivedIdOrder"]) == (
        view.cotpay_order_id,
        424_242,
    )
    assert evidence.data["check"] == ["idOrder"]
    assert view.held_at is None


async def test_a_refunded_ipn_for_the_wrong_amount_is_not_a_refund(
    fake: FakeCotpay, session: Session
) -> None:
    order = await start(session)
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.open_dispute, DisputeRequest())
    await order.calls_of("return_request", 1)
    await order.eventually(lambda v: any(e.kind == "return_requested" for e in v.timeline))
    await order.ipn("REFUNDED", IpnStep.RETURN, amount=1_000, tx="refund-wrong")
    view = await order.until(S.NEEDS_ATTENTION)
    assert view.refunded_at is None
    assert view.attention is not None and view.attention.step == "ipn_check"
    evidence = next(e for e in view.timeline if e.kind == "evidence")
    assert evidence.data is not None
    assert (evidence.data["ipnStatus"], evidence.data["receivedAmount"]) == ("REFUNDED", 1_000)
    assert S.REFUNDED.value not in [e.status for e in view.timeline if e.kind == "status"]
