"""Regenerate the committed histories: ``.venv/bin/python -m tests.replay.record``.

Runs the main paths of ``EscrowOrderWorkflow`` on the time-skipping test server (scripted
Cotpay, as in ``tests/workflow``) and writes each finished history to ``histories/<path>.json``.
Record new files for a new workflow shape; never regenerate the files of a released shape (they
are what running orders look like), add the new ones beside them
(``python -m tests.replay.record --suffix _coalesced``: ``happy_path_coalesced.json``, ...).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.store_activities import StoreActivities
from cotpay.ipn import IpnStep
from starter.stack.devserver import test_server_binary
from store.api import OrderStore
from store.models import OrderWrite, WriteResult
from tests.workflow.conftest import register_search_attributes
from tests.workflow.fake_cotpay import FakeCotpay
from tests.workflow.helpers import Order, Session, start, worker
from workflows.escrow import EscrowOrderWorkflow
from workflows.models import (
    CancelRequest,
    DeliveryConfirmation,
    DisputeRequest,
    EscrowStatus,
    OperatorAction,
)

HISTORIES = Path(__file__).parent / "histories"
S = EscrowStatus


async def happy_path(env: WorkflowEnvironment, session: Session) -> Order:
    order = await start(session, order_ref="replay-happy")
    await order.handle.execute_update(EscrowOrderWorkflow.payment_info)
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation())
    await env.sleep(timedelta(days=2))
    await order.until(S.PAID_OUT)
    await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="payout-1")
    return order


async def merchant_happy_path(env: WorkflowEnvironment, session: Session) -> Order:
    """The happy path of an order of a merchant other than the default one (docs/security.md):
    its inputs carry ``merchant``."""
    order = await start(session, order_ref="replay-merchant", merchant="shopb")
    await order.handle.execute_update(EscrowOrderWorkflow.payment_info)
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation())
    await env.sleep(timedelta(days=2))
    await order.until(S.PAID_OUT)
    await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="payout-1")
    return order


async def return_path(env: WorkflowEnvironment, session: Session) -> Order:
    order = await start(session, order_ref="replay-return")
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.open_dispute, DisputeRequest())
    await order.calls_of("return_request", 1)
    await order.eventually(lambda v: any(e.kind == "return_requested" for e in v.timeline))
    await order.ipn("REFUNDED", IpnStep.RETURN, tx="refund-1")
    return order


async def expiry(env: WorkflowEnvironment, session: Session) -> Order:
    order = await start(session, order_ref="replay-expiry")
    await order.until(S.AWAITING_PAYMENT)
    await env.sleep(timedelta(days=1, minutes=1))
    await order.until(S.EXPIRED)
    return order


async def attention_retry(env: WorkflowEnvironment, session: Session) -> Order:
    session.fake.fail("payment", 10900)
    order = await start(session, order_ref="replay-attention")
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation())
    await env.sleep(timedelta(days=2))
    await order.until(S.NEEDS_ATTENTION)
    await order.handle.execute_update(
        EscrowOrderWorkflow.operator_action, OperatorAction(action="retry", operator="ops")
    )
    await order.until(S.PAID_OUT)
    await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="payout-1")
    return order


async def payout_too_early(env: WorkflowEnvironment, session: Session) -> Order:
    session.fake.fail("payment", 11100)
    order = await start(session, order_ref="replay-too-early")
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation())
    await env.sleep(timedelta(days=2))
    await order.calls_of("payment", 1)
    await order.eventually(lambda v: any(e.kind == "payout_too_early" for e in v.timeline))
    await env.sleep(timedelta(days=2))
    await order.until(S.PAID_OUT)
    await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="payout-1")
    return order


async def late_payment(env: WorkflowEnvironment, session: Session) -> Order:
    order = await start(session, order_ref="replay-late-payment")
    await order.until(S.AWAITING_PAYMENT)
    await env.sleep(timedelta(days=1, minutes=1))
    await order.until(S.EXPIRED)
    await env.sleep(timedelta(days=3))
    await order.ipn("HOLDING", IpnStep.VERIFY, time=await env.get_current_time())
    await order.until(S.RETURN_REQUESTED)
    await order.calls_of("return_request", 1)
    await order.eventually(lambda v: any(e.kind == "return_requested" for e in v.timeline))
    await order.ipn("REFUNDED", IpnStep.RETURN, tx="refund-1")
    return order


async def released_and_paid_out(env: WorkflowEnvironment, order: Order) -> Order:
    """An operator releases the money of an order that needs attention after a rejected return;
    the payout follows (two days later, past the payout instant) and so does its IPN."""
    await order.handle.execute_update(
        EscrowOrderWorkflow.operator_action, OperatorAction(action="release", operator="ops")
    )
    await env.sleep(timedelta(days=2))
    await order.until(S.PAID_OUT)
    await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="payout-1")
    return order


async def rejected_release(env: WorkflowEnvironment, session: Session) -> Order:
    order = await start(session, order_ref="replay-rejected-release")
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation())
    await order.handle.execute_update(EscrowOrderWorkflow.open_dispute, DisputeRequest())
    await order.calls_of("return_request", 1)
    await order.eventually(lambda v: any(e.kind == "return_requested" for e in v.timeline))
    await order.ipn("RETURN_REJECTED", IpnStep.RETURN, tx="reject-1")
    await order.until(S.NEEDS_ATTENTION)
    return await released_and_paid_out(env, order)


async def cancel_before_payment(env: WorkflowEnvironment, session: Session) -> Order:
    order = await start(session, order_ref="replay-cancel")
    await order.until(S.AWAITING_PAYMENT)
    await order.handle.execute_update(
        EscrowOrderWorkflow.cancel, CancelRequest(reason="out of stock")
    )
    await order.until(S.CANCELLED)
    return order


async def duplicate_ipns(env: WorkflowEnvironment, session: Session) -> Order:
    order = await start(session, order_ref="replay-duplicates")
    await order.until(S.AWAITING_PAYMENT)
    await order.ipn("PAYMENT_FAILED", IpnStep.VERIFY, tx="f-1")
    await order.eventually(lambda v: any(e.kind == "ipn" for e in v.timeline))
    held = await order.hold()
    await order.ipn("HOLDING", IpnStep.VERIFY, time=held.held_at)
    await order.ipn("PAYMENT_FAILED", IpnStep.VERIFY, tx="f-0")
    await order.ipn("PAID_OUT", IpnStep.PAYMENT, id_order=999_999)
    await order.ipn("CHARGEBACK", IpnStep.VERIFY, tx="c-1")
    await order.eventually(lambda v: any(e.kind == "ipn_unknown" for e in v.timeline))
    await order.handle.execute_update(EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation())
    await env.sleep(timedelta(days=2))
    await order.until(S.PAID_OUT)
    await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="payout-1")
    return order


async def ipn_wrong_amount(env: WorkflowEnvironment, session: Session) -> Order:
    """A HOLDING for the wrong amount (NEEDS_ATTENTION, operator retry), then the right one."""
    order = await start(session, order_ref="replay-ipn-wrong-amount")
    await order.until(S.AWAITING_PAYMENT)
    await order.ipn("HOLDING", IpnStep.VERIFY, amount=order.inp.amount - 1, tx="hold-wrong")
    await order.until(S.NEEDS_ATTENTION)
    await order.handle.execute_update(
        EscrowOrderWorkflow.operator_action, OperatorAction(action="retry", operator="ops")
    )
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation())
    await env.sleep(timedelta(days=2))
    await order.until(S.PAID_OUT)
    await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="payout-1")
    return order


async def ipn_wrong_refund(env: WorkflowEnvironment, session: Session) -> Order:
    """A REFUNDED for another Cotpay order (NEEDS_ATTENTION), then an operator refund."""
    order = await start(session, order_ref="replay-ipn-wrong-refund")
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.open_dispute, DisputeRequest())
    await order.calls_of("return_request", 1)
    await order.eventually(lambda v: any(e.kind == "return_requested" for e in v.timeline))
    await order.ipn("REFUNDED", IpnStep.RETURN, id_order=999_999, tx="refund-wrong")
    await order.until(S.NEEDS_ATTENTION)
    await order.handle.execute_update(
        EscrowOrderWorkflow.operator_action, OperatorAction(action="refund", operator="ops")
    )
    await order.calls_of("return_request", 2)
    await order.eventually(lambda v: [e.kind for e in v.timeline].count("return_requested") == 2)
    await order.ipn("REFUNDED", IpnStep.RETURN, tx="refund-1")
    return order


async def money_moved_slot(env: WorkflowEnvironment, session: Session) -> Order:
    """Patch ``money-moved-guard``: a PAID_OUT IPN recorded while the payout waits for its next
    slot after 11100; at the slot the order ends PAID_OUT without a second payment call."""
    session.fake.fail("payment", 11100)
    order = await start(session, order_ref="replay-money-moved")
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation())
    await env.sleep(timedelta(days=2))
    await order.calls_of("payment", 1)
    await order.eventually(lambda v: any(e.kind == "payout_too_early" for e in v.timeline))
    await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="payout-1")
    await env.sleep(timedelta(days=2))
    await order.until(S.PAID_OUT)
    assert len(session.fake.called("payment")) == 1
    return order


async def rejection_in_flight(env: WorkflowEnvironment, session: Session) -> Order:
    """Patch ``return-rejection-in-flight``: a RETURN_REJECTED arrives while return-request is in
    flight; the 10100 answer leaves the return pending until the seller decides again, then an
    operator releases."""
    gate = session.fake.gates["return_request"] = asyncio.Event()
    order = await start(session, order_ref="replay-rejection-in-flight")
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.open_dispute, DisputeRequest())
    await order.calls_of("return_request", 1)
    now = await env.get_current_time()
    await order.ipn("RETURN_REJECTED", IpnStep.RETURN, time=now)
    await order.eventually(lambda v: any(e.kind == "ipn" for e in v.timeline[-1:]))
    gate.set()
    await order.eventually(lambda v: any(e.kind == "rejection_in_flight" for e in v.timeline))
    await order.ipn("RETURN_REJECTED", IpnStep.RETURN, time=now + timedelta(minutes=1))
    await order.until(S.NEEDS_ATTENTION)
    return await released_and_paid_out(env, order)


async def early_refund(env: WorkflowEnvironment, session: Session) -> Order:
    """Patch ``early-outcome-ipn``: a REFUNDED IPN before any return request is recorded as
    ``ipn_early``; after a dispute and the 10100 answer to the return request the order waits
    for the seller's decision (the return window's timer) and ends REFUNDED on the next
    REFUNDED IPN."""
    order = await start(session, order_ref="replay-early-refund")
    await order.hold()
    await order.ipn("REFUNDED", IpnStep.RETURN, tx="refund-early")
    await order.eventually(lambda v: any(e.kind == "ipn_early" for e in v.timeline))
    await order.handle.execute_update(EscrowOrderWorkflow.open_dispute, DisputeRequest())
    await order.calls_of("return_request", 1)
    await order.eventually(lambda v: any(e.kind == "return_requested" for e in v.timeline))
    assert (await order.view()).status is S.RETURN_REQUESTED
    await order.ipn("REFUNDED", IpnStep.RETURN, tx="refund-1")
    await order.until(S.REFUNDED)
    return order


async def repeated_delivery(env: WorkflowEnvironment, session: Session) -> Order:
    """Patch ``repeated-delivery``: the payout is refused (11000), the order needs an operator,
    the shop repeats ``delivered`` (answered, not refused), then the operator retries."""
    session.fake.fail("payment", 11000)
    order = await start(session, order_ref="replay-repeated-delivery")
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation())
    await env.sleep(timedelta(days=2))
    await order.until(S.NEEDS_ATTENTION)
    view = await order.handle.execute_update(
        EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation()
    )
    assert view.status is S.NEEDS_ATTENTION
    await order.handle.execute_update(
        EscrowOrderWorkflow.operator_action, OperatorAction(action="retry", operator="ops")
    )
    await order.until(S.PAID_OUT)
    await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="payout-1")
    return order


class FlakyStore:
    """The real ``store.record``, whose first ``failures`` attempts fail as an unreachable store
    does (patch ``store-local-writes``: the local attempt fails, the regular activity retries)."""

    def __init__(self, store: OrderStore, failures: int) -> None:
        self.real = StoreActivities(store)
        self.failures = failures

    @activity.defn(name="store.record")
    async def record(self, write: OrderWrite) -> WriteResult:
        if self.failures > 0:
            self.failures -= 1
            raise ApplicationError("order store unavailable (recording)", type="StoreUnavailable")
        return await self.real.record(write)


PATHS: dict[str, Callable[[WorkflowEnvironment, Session], Awaitable[Order]]] = {
    "happy_path": happy_path,
    "return_path": return_path,
    "expiry": expiry,
    "attention_retry": attention_retry,
    "payout_too_early": payout_too_early,
    "late_payment": late_payment,
    "rejected_release": rejected_release,
    "cancel_before_payment": cancel_before_payment,
    "duplicate_ipns": duplicate_ipns,
    "merchant_happy_path": merchant_happy_path,
    # Since the order-store and ipn-amount-check patches (docs/store.md, docs/workflow.md):
    "store_happy_path": happy_path,
    "store_return_path": return_path,
    "ipn_wrong_amount": ipn_wrong_amount,
    "ipn_wrong_refund": ipn_wrong_refund,
    # Since the money-moved-guard and return-rejection-in-flight patches (docs/workflow.md):
    "money_moved_slot": money_moved_slot,
    "rejection_in_flight": rejection_in_flight,
    # Since the early-outcome-ipn patch (docs/workflow.md, IPNs):
    "early_refund": early_refund,
    "repeated_delivery": repeated_delivery,
    # Since the store-local-writes patch (``--suffix _local``; docs/store.md): the store's first
    # two attempts fail, so the first write falls back to the regular activity.
    "store_outage": happy_path,
}
# Paths recorded against a store that fails at first: how many attempts fail.
FLAKY = {"store_outage": 2}


async def record(names: list[str], suffix: str = "") -> None:
    HISTORIES.mkdir(parents=True, exist_ok=True)
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(test_server_binary()),
        data_converter=pydantic_data_converter,
    )
    store = OrderStore.open(f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='replay-')}/escrow.db")
    await store.upgrade()
    try:
        await register_search_attributes(env)
        for name in names:
            flaky: list[Any] | None = None
            if name in FLAKY:
                flaky = [FlakyStore(store, FLAKY[name]).record]
            async with worker(env, FakeCotpay(), store, store_activities=flaky) as session:
                order = await PATHS[name](env, session)
                await order.handle.result()
                history = await order.handle.fetch_history()
            path = HISTORIES / f"{name}{suffix}.json"
            path.write_text(history.to_json() + "\n", encoding="utf-8")
            print(f"wrote {path}")
    finally:
        await store.close()
        await env.shutdown()


if __name__ == "__main__":
    # ``--suffix _name``: write ``<path>_name.json``, the histories of a new workflow shape
    # beside those of the released ones.
    args = sys.argv[1:]
    suffix = ""
    if args[:1] == ["--suffix"]:
        suffix, args = args[1], args[2:]
    asyncio.run(record(args or list(PATHS), suffix))
