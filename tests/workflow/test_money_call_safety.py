"""Money-call safety: no money call may contradict one that may already have moved the money,
and no order may end or wait without saying that money may still be held."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from cotpay.ipn import IpnBody, IpnStep
from tests.workflow.fake_cotpay import FakeCotpay
from tests.workflow.helpers import Order, Session, delivered, failure_type, kinds, start
from workflows.escrow import EscrowOrderWorkflow
from workflows.models import (
    CancelRequest,
    DisputeRequest,
    EscrowStatus,
    IpnSignal,
    OperatorAction,
    OrderView,
)

S = EscrowStatus
RETRY_SKIP = timedelta(minutes=5)


async def _operator(order: Order, action: str) -> OrderView:
    return await order.handle.execute_update(
        EscrowOrderWorkflow.operator_action,
        OperatorAction.model_validate({"action": action, "operator": "ops"}),
    )


async def _refused(order: Order, action: str) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await _operator(order, action)
    return failure_type(caught.value)


async def test_release_refused_while_the_return_request_is_pending(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    """Return window ran out without a seller decision: the return is still live at Cotpay, so
    a payout now could pay the seller money that the seller may still refund to the buyer."""
    order = await start(session)
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.open_dispute, DisputeRequest())
    await order.calls_of("return_request", 1)
    await env.sleep(order.inp.timers.return_window + timedelta(minutes=1))
    view = await order.until(S.NEEDS_ATTENTION)
    assert view.attention is not None and view.attention.step == "return_window"
    assert await _refused(order, "release") == "return_pending"
    assert not fake.called("payment")
    await order.ipn("REFUNDED", IpnStep.RETURN)
    result = await order.handle.result()
    assert result.status is S.REFUNDED
    assert not fake.called("payment")


async def test_release_allowed_once_the_seller_rejected_late(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    order = await start(session)
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.open_dispute, DisputeRequest())
    await order.calls_of("return_request", 1)
    await env.sleep(order.inp.timers.return_window + timedelta(minutes=1))
    await order.until(S.NEEDS_ATTENTION)
    await order.ipn("RETURN_REJECTED", IpnStep.RETURN)
    await order.eventually(lambda v: "ipn" in kinds(v)[-1:])
    await _operator(order, "release")
    await order.until(S.PAID_OUT)
    assert len(fake.called("payment")) == 1


async def test_refund_refused_while_a_payout_may_have_happened(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    """The payout call got no answer for its whole schedule-to-close (transport errors): Cotpay
    may have paid out. A refund must wait until a retried payout call gives a clear answer."""
    fake.transport("payment", 200)
    order = await delivered(session)
    await env.sleep(timedelta(days=2))
    view = await order.until(S.NEEDS_ATTENTION, skip=RETRY_SKIP)
    assert view.attention is not None
    assert view.attention.step == "payment"
    assert "Timeout" in view.attention.reason
    assert await _refused(order, "refund") == "payout_in_doubt"
    assert not fake.called("return_request")
    fake.script["payment"].clear()
    await _operator(order, "retry")
    await order.until(S.PAID_OUT)
    assert not fake.called("return_request")


async def test_refund_allowed_after_a_definite_payout_refusal(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    fake.fail("payment", 10900)
    order = await delivered(session)
    await env.sleep(timedelta(days=2))
    await order.until(S.NEEDS_ATTENTION)
    await _operator(order, "refund")
    await order.calls_of("return_request", 1)
    await order.ipn("REFUNDED", IpnStep.RETURN)
    assert (await order.handle.result()).status is S.REFUNDED


async def test_refund_ipn_after_an_unanswered_return_request_finishes(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    """The return-request call timed out, yet Cotpay took it and the seller refunded: the
    REFUNDED IPN ends the order; release stays refused while the return may be live."""
    fake.transport("return_request", 200)
    order = await start(session)
    await order.hold()
    await order.handle.execute_update(EscrowOrderWorkflow.open_dispute, DisputeRequest())
    view = await order.until(S.NEEDS_ATTENTION, skip=RETRY_SKIP)
    assert view.attention is not None and view.attention.step == "return"
    assert await _refused(order, "release") == "return_pending"
    await order.ipn("REFUNDED", IpnStep.RETURN)
    result = await order.handle.result()
    assert result.status is S.REFUNDED
    assert not fake.called("payment")


async def test_concurrent_operator_actions_start_one_money_call(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    fake.fail("payment", 10900)
    order = await delivered(session)
    await env.sleep(timedelta(days=2))
    await order.until(S.NEEDS_ATTENTION)
    outcomes = await asyncio.gather(
        _operator(order, "release"),
        _operator(order, "refund"),
        _operator(order, "release"),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, WorkflowUpdateFailedError)]
    assert refused, outcomes
    await order.eventually(lambda v: v.status in (S.PAID_OUT, S.RETURN_REQUESTED))
    await asyncio.sleep(0.3)
    money_calls = len(fake.called("payment")) - 1 + len(fake.called("return_request"))
    assert money_calls == 1


async def test_duplicate_late_holdings_return_once(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    order = await start(session)
    await order.until(S.AWAITING_PAYMENT)
    await env.sleep(order.inp.timers.payment_window + timedelta(minutes=1))
    await order.until(S.EXPIRED)
    await order.ipn("HOLDING", IpnStep.VERIFY, tx="hold-1")
    await order.until(S.RETURN_REQUESTED)
    await order.ipn("HOLDING", IpnStep.VERIFY, tx="hold-2")
    await order.ipn("HOLDING", IpnStep.VERIFY, tx="hold-1")
    await order.calls_of("return_request", 1)
    await order.ipn("REFUNDED", IpnStep.RETURN)
    assert (await order.handle.result()).status is S.REFUNDED
    assert len(fake.called("return_request")) == 1
    assert not fake.called("payment")


async def test_expired_order_says_a_later_payment_is_not_watched(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    """Cotpay has no status API: once the grace period ends, a HOLDING that was lost or comes
    later reaches only the gateway's log. The finished order says so."""
    order = await start(session)
    await order.until(S.AWAITING_PAYMENT)
    timers = order.inp.timers
    await env.sleep(timers.payment_window + timers.grace_period + timedelta(minutes=2))
    result = await order.handle.result()
    assert result.status is S.EXPIRED
    assert "watch_ended" in kinds(result)
    ended = next(e for e in result.timeline if e.kind == "watch_ended")
    assert "ipn.after_close" in ended.detail
    assert "ipn.after_close" in result.waiting_for


async def test_payout_too_early_forever_parks_with_the_reason(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    """Cotpay answering 11100 day after day (rule mismatch) must not loop silently forever."""
    fake.fail("payment", *([11100] * 40))
    order = await delivered(session)
    view = await order.until(S.NEEDS_ATTENTION, skip=timedelta(days=1))
    assert view.attention is not None
    assert (view.attention.step, view.attention.code) == ("payment", 11100)
    calls = len(fake.called("payment"))
    assert 2 <= calls <= 20
    fake.script["payment"].clear()
    await _operator(order, "retry")
    await order.until(S.PAID_OUT, skip=timedelta(hours=6))
    assert len(fake.called("payment")) == calls + 1


async def _raw_ipn(order: Order, status: str, step: IpnStep, **body: Any) -> None:
    fields: dict[str, Any] = {"idOrder": (await order.view()).cotpay_order_id}
    fields.update(status=status, code=10800, amount=order.inp.amount, transactionId=None)
    fields.update(body)
    sig = IpnSignal(step=step, body=IpnBody.model_validate(fields))
    await order.handle.signal(EscrowOrderWorkflow.ipn, sig)


async def test_second_payout_failure_without_transaction_id_is_not_dropped(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    """Cotpay's failure IPNs carry no transaction id: the PAYOUT_FAILED of a retried payout is
    a new fact, not a duplicate of the first one; dropping it would close the order as PAID_OUT
    while Cotpay still holds the money."""
    order = await delivered(session)
    await env.sleep(timedelta(days=2))
    await order.until(S.PAID_OUT)
    await _raw_ipn(order, "PAYOUT_FAILED", IpnStep.PAYMENT, time=await env.get_current_time())
    await order.until(S.NEEDS_ATTENTION)
    await env.sleep(timedelta(hours=1))
    await _operator(order, "retry")
    await order.until(S.PAID_OUT)
    await _raw_ipn(order, "PAYOUT_FAILED", IpnStep.PAYMENT, time=await env.get_current_time())
    view = await order.until(S.NEEDS_ATTENTION)
    assert view.attention is not None and view.attention.step == "payment"
    assert len(fake.called("payment")) == 2


async def test_release_after_a_payment_seen_during_creation_trouble(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    """HOLDING arrives while the order waits for an operator after verify-order gave no answer
    (Cotpay did verify): release must pay out, not crash the workflow task forever."""
    fake.transport("verify_order", 200)
    order = await start(session)
    view = await order.until(S.NEEDS_ATTENTION, skip=timedelta(minutes=1))
    assert view.attention is not None and view.attention.step == "verify"
    await order.ipn("HOLDING", IpnStep.VERIFY, time=await env.get_current_time())
    await order.eventually(lambda v: "ipn" in kinds(v))
    view = await asyncio.wait_for(_operator(order, "release"), timeout=10)
    assert isinstance(view, OrderView) and view.status is S.PAYING_OUT
    await env.sleep(timedelta(days=2))
    await order.until(S.PAID_OUT)


async def test_ipn_before_the_cotpay_order_is_known_holds_no_money(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    """The orderRef was used before (10400 at create-order): IPNs of that older Cotpay order
    reach this workflow through the same IPN URL. They are not this order's money."""
    fake.fail("create_order", 10400, data={"order": {"idOrder": 77}})
    order = await start(session)
    view = await order.until(S.NEEDS_ATTENTION)
    assert view.cotpay_order_id is None
    await order.ipn("HOLDING", IpnStep.VERIFY, id_order=77)
    view = await order.eventually(lambda v: "ipn_ignored" in kinds(v))
    assert await _refused(order, "refund") == "not_held"
    view = await _operator(order, "cancel")
    assert isinstance(view, OrderView) and view.status is S.CANCELLED
    assert not fake.called("return_request")


async def test_cancel_during_creation_does_not_open_the_payment(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    """A cancel that arrives while create-order runs must not be followed by verify-order: that
    call opens the payment at Cotpay (a buyer could pay an order the shop cancelled)."""
    fake.transport("create_order", 1)
    order = await start(session)
    await order.calls_of("create_order", 1)
    view = await order.handle.execute_update(EscrowOrderWorkflow.cancel, CancelRequest())
    assert view.status is S.CANCELLED
    assert not fake.called("verify_order")
    assert view.payment is None


async def test_paid_out_ipn_before_any_payout_is_not_the_payouts_outcome(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    """Finding F2 (patch ``early-outcome-ipn``): a PAID_OUT IPN that no payout call can have
    caused is recorded as ``ipn_early``; the payout Cotpay refuses (10800) needs an operator,
    the order does not end PAID_OUT."""
    fake.fail("payment", 10800)
    order = await delivered(session)
    await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="payout-forged")
    await order.eventually(lambda v: "ipn_early" in kinds(v))
    await env.sleep(timedelta(days=2))
    view = await order.until(S.NEEDS_ATTENTION)
    assert view.attention is not None and view.attention.step == "payment"
    assert view.paid_out_at is None
    assert len(fake.called("payment")) == 1
    await _operator(order, "retry")
    await order.until(S.PAID_OUT)
    assert len(fake.called("payment")) == 2
