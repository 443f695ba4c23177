"""IPN deduplication and ordering, update validators, idempotent updates, signal twins."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from cotpay.ipn import IpnStep
from tests.workflow.fake_cotpay import FakeCotpay
from tests.workflow.helpers import Session, delivered, failure_type, kinds, start
from workflows.escrow import EscrowOrderWorkflow
from workflows.models import (
    CancelRequest,
    DeliveryConfirmation,
    DisputeRequest,
    EscrowStatus,
    OperatorAction,
)

S = EscrowStatus


def _ipns(view_kinds: list[str]) -> int:
    return sum(1 for k in view_kinds if k == "ipn")


async def test_duplicate_and_reordered_ipns_change_nothing(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    order = await start(session)
    await order.until(S.AWAITING_PAYMENT)
    await order.ipn("PAYMENT_FAILED", IpnStep.VERIFY, tx="f-1")
    view = await order.eventually(lambda v: "ipn" in kinds(v))
    assert view.status is S.AWAITING_PAYMENT
    held = await order.hold()
    await order.ipn("HOLDING", IpnStep.VERIFY, time=held.held_at)
    await order.ipn("PAYMENT_FAILED", IpnStep.VERIFY, tx="f-0")
    await order.ipn("PAID_OUT", IpnStep.PAYMENT, id_order=999_999)
    await order.ipn("CHARGEBACK", IpnStep.VERIFY, tx="c-1")
    view = await order.eventually(lambda v: "ipn_unknown" in kinds(v))
    assert view.status is S.HELD
    assert view.held_at == held.held_at
    assert _ipns(kinds(view)) == 3
    assert "ipn_ignored" in kinds(view)
    assert any(e.detail.startswith("verify CHARGEBACK") for e in view.timeline)

    await order.handle.execute_update(EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation())
    await env.sleep(timedelta(days=2))
    await order.until(S.PAID_OUT)
    await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="p-1")
    result = await order.handle.result()
    assert result.status is S.PAID_OUT


async def test_payout_failed_then_paid_out_reordered_stays_paid(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    order = await start(session)
    await order.hold()
    await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="p-1")
    await order.handle.execute_update(EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation())
    await env.sleep(timedelta(days=2))
    result = await order.handle.result()
    assert result.status is S.PAID_OUT
    assert len(fake.called("payment")) == 1


async def test_validators_reject_in_wrong_states(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    order = await start(session)
    await order.until(S.AWAITING_PAYMENT)
    wrong = [
        ("confirm_delivery", DeliveryConfirmation(), "invalid_state"),
        ("open_dispute", DisputeRequest(), "not_held"),
        ("operator_action", OperatorAction(action="retry"), "invalid_state"),
    ]
    for update, arg, code in wrong:
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await order.handle.execute_update(update, arg)
        assert failure_type(caught.value) == code
    await order.hold()
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await order.handle.execute_update(EscrowOrderWorkflow.cancel, CancelRequest())
    assert failure_type(caught.value) == "invalid_state"
    first = await order.handle.execute_update(
        EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation()
    )
    again = await order.handle.execute_update(
        EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation()
    )
    assert first.delivered_at == again.delivered_at
    assert first.status is again.status is S.DELIVERED
    view = await order.view()
    assert view.status is S.DELIVERED
    assert kinds(view).count("delivery_confirmed") == 1


async def test_signal_twins(env: WorkflowEnvironment, fake: FakeCotpay, session: Session) -> None:
    order = await start(session)
    await order.until(S.AWAITING_PAYMENT)
    await order.handle.signal(EscrowOrderWorkflow.confirm_delivery_signal, DeliveryConfirmation())
    await order.eventually(lambda v: "signal_rejected" in kinds(v))
    await order.hold()
    await order.handle.signal(EscrowOrderWorkflow.open_dispute_signal, DisputeRequest())
    await order.until(S.RETURN_REQUESTED)
    await order.calls_of("return_request", 1)
    await order.ipn("RETURN_REJECTED", IpnStep.RETURN)
    await order.until(S.NEEDS_ATTENTION)
    await order.handle.signal(
        EscrowOrderWorkflow.operator_action_signal, OperatorAction(action="refund")
    )
    await order.calls_of("return_request", 2)
    await order.ipn("REFUNDED", IpnStep.RETURN)
    assert (await order.handle.result()).status is S.REFUNDED


@pytest.mark.parametrize("name", ["cancel", "cancel_signal"])
async def test_cancel_signal_same_name_as_the_update_or_alias(
    env: WorkflowEnvironment,
    name: str,
    fake: FakeCotpay,
    session: Session,
) -> None:
    order = await start(session)
    await order.until(S.AWAITING_PAYMENT)
    await order.handle.signal(name, CancelRequest(reason="by signal"))
    await order.until(S.CANCELLED)


async def test_failure_ipn_of_an_earlier_call_is_stale(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    fake.fail("payment", 10800)
    order = await delivered(session)
    await env.sleep(timedelta(days=2))
    await order.until(S.NEEDS_ATTENTION)
    first_call = fake.called("payment")[0].at
    await env.sleep(timedelta(hours=1))
    await order.handle.execute_update(
        EscrowOrderWorkflow.operator_action, OperatorAction(action="retry")
    )
    await order.until(S.PAID_OUT)
    await order.ipn("PAYOUT_FAILED", IpnStep.PAYMENT, tx="p-old", time=first_call)
    view = await order.eventually(lambda v: "ipn_stale" in kinds(v))
    assert view.status is S.PAID_OUT
    await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="p-new")
    assert (await order.handle.result()).status is S.PAID_OUT
