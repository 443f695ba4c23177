"""Disputes, returns (approved, rejected, timed out), expiry, cancel and late payments."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from cotpay.ipn import IpnStep
from tests.workflow.fake_cotpay import FakeCotpay
from tests.workflow.helpers import Order, Session, kinds, start, statuses
from workflows.escrow import EscrowOrderWorkflow
from workflows.models import (
    CancelRequest,
    DeliveryConfirmation,
    DisputeRequest,
    EscrowStatus,
    OperatorAction,
)

S = EscrowStatus


async def _dispute(order: Order) -> None:
    view = await order.handle.execute_update(
        EscrowOrderWorkflow.open_dispute, DisputeRequest(reason="damaged")
    )
    assert view.status is S.RETURN_REQUESTED
    await order.calls_of("return_request", 1)
    await order.eventually(lambda v: "return_requested" in kinds(v))


@pytest.mark.parametrize("delivered", [False, True])
async def test_dispute_then_refund(
    env: WorkflowEnvironment,
    delivered: bool,
    fake: FakeCotpay,
    session: Session,
) -> None:
    order = await start(session)
    await order.hold()
    if delivered:
        await order.handle.execute_update(
            EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation()
        )
        await order.until(S.DELIVERED)
    await _dispute(order)
    again = await order.handle.execute_update(EscrowOrderWorkflow.open_dispute, DisputeRequest())
    assert again.status is S.RETURN_REQUESTED
    await order.ipn("REFUNDED", IpnStep.RETURN)
    result = await order.handle.result()
    assert result.status is S.REFUNDED
    assert result.refunded_at is not None
    assert not fake.called("payment")
    assert len(fake.called("return_request")) == 1


async def test_return_rejected_then_operator_release(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    order = await start(session)
    await order.hold()
    await _dispute(order)
    await order.ipn("RETURN_REJECTED", IpnStep.RETURN)
    view = await order.until(S.NEEDS_ATTENTION)
    assert view.attention is not None
    assert view.attention.step == "return_rejected"
    view = await order.handle.execute_update(
        EscrowOrderWorkflow.operator_action, OperatorAction(action="release", operator="ops")
    )
    assert view.status is S.PAYING_OUT
    await env.sleep(timedelta(days=2))
    await order.until(S.PAID_OUT)
    assert len(fake.called("payment")) == 1


async def test_return_window_times_out_then_operator_refund(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    order = await start(session)
    await order.hold()
    await _dispute(order)
    await env.sleep(timedelta(days=7, minutes=1))
    view = await order.until(S.NEEDS_ATTENTION)
    assert view.attention is not None
    assert view.attention.step == "return_window"
    await order.handle.execute_update(
        EscrowOrderWorkflow.operator_action, OperatorAction(action="refund")
    )
    await order.calls_of("return_request", 2)
    await order.ipn("REFUNDED", IpnStep.RETURN, tx="refund-2")
    result = await order.handle.result()
    assert result.status is S.REFUNDED


async def test_refund_ipn_while_waiting_for_operator_finishes_the_order(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    order = await start(session)
    await order.hold()
    await _dispute(order)
    await env.sleep(timedelta(days=8))
    await order.until(S.NEEDS_ATTENTION)
    await order.ipn("REFUNDED", IpnStep.RETURN)
    result = await order.handle.result()
    assert result.status is S.REFUNDED


async def test_expiry_then_grace_period_ends_the_workflow(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    order = await start(session)
    await order.until(S.AWAITING_PAYMENT)
    await env.sleep(timedelta(hours=23))
    assert (await order.view()).status is S.AWAITING_PAYMENT
    await env.sleep(timedelta(hours=2))
    view = await order.until(S.EXPIRED)
    assert "watching for a late payment" in view.waiting_for
    result = await order.handle.result()
    assert result.status is S.EXPIRED
    assert not fake.called("return_request")


async def test_cancel_before_payment(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    order = await start(session)
    await order.until(S.AWAITING_PAYMENT)
    view = await order.handle.execute_update(
        EscrowOrderWorkflow.cancel, CancelRequest(reason="out of stock")
    )
    assert view.status is S.CANCELLED
    again = await order.handle.execute_update(EscrowOrderWorkflow.cancel, CancelRequest())
    assert again.status is S.CANCELLED
    result = await order.handle.result()
    assert result.status is S.CANCELLED
    assert statuses(result) == ["AWAITING_PAYMENT", "CANCELLED"]


async def test_cancel_while_creating_waits_for_creation(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    fake.transport("verify_order", 1)
    order = await start(session)
    await order.calls_of("verify_order", 1)
    view = await order.handle.execute_update(EscrowOrderWorkflow.cancel, CancelRequest())
    assert view.status is S.CANCELLED
    assert view.payment is not None


@pytest.mark.parametrize("ended", ["expired", "cancelled"])
async def test_late_payment_is_returned(
    env: WorkflowEnvironment,
    ended: str,
    fake: FakeCotpay,
    session: Session,
) -> None:
    order = await start(session)
    await order.until(S.AWAITING_PAYMENT)
    if ended == "expired":
        await env.sleep(timedelta(days=1, minutes=1))
        await order.until(S.EXPIRED)
    else:
        await order.handle.execute_update(EscrowOrderWorkflow.cancel, CancelRequest())
    await env.sleep(timedelta(days=3))
    await order.ipn("HOLDING", IpnStep.VERIFY, time=await env.get_current_time())
    await order.until(S.RETURN_REQUESTED)
    await order.calls_of("return_request", 1)
    await order.eventually(lambda v: "return_requested" in kinds(v))
    await order.ipn("REFUNDED", IpnStep.RETURN)
    result = await order.handle.result()
    assert result.status is S.REFUNDED
    assert "late_payment" in kinds(result)
    assert not fake.called("payment")


async def test_late_payment_return_rejected_needs_attention(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    order = await start(session)
    await order.until(S.AWAITING_PAYMENT)
    await env.sleep(timedelta(days=1, minutes=1))
    await order.until(S.EXPIRED)
    await order.ipn("HOLDING", IpnStep.VERIFY)
    await order.calls_of("return_request", 1)
    await order.eventually(lambda v: "return_requested" in kinds(v))
    await order.ipn("RETURN_REJECTED", IpnStep.RETURN)
    view = await order.until(S.NEEDS_ATTENTION)
    assert view.attention is not None
    assert view.attention.step == "return_rejected"
