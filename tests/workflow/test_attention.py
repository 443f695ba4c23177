"""NEEDS_ATTENTION: every code that lands there, the evidence kept, and the operator's way out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from cotpay.ipn import IpnStep
from tests.workflow.fake_cotpay import FakeCotpay
from tests.workflow.helpers import Session, delivered, start
from tests.workflow.test_order_store import patches
from workflows.escrow import LEAN_PATCH, EscrowOrderWorkflow
from workflows.models import (
    BuyerProfile,
    DeliveryConfirmation,
    EscrowStatus,
    OperatorAction,
)

S = EscrowStatus


@pytest.mark.parametrize(
    ("code", "action"),
    [(10800, "retry"), (10900, "retry"), (11000, "release"), (11300, "release"), (10700, "retry")],
)
async def test_payout_code_needs_attention_then_operator(
    env: WorkflowEnvironment,
    code: int,
    action: str,
    fake: FakeCotpay,
    session: Session,
) -> None:
    fake.fail("payment", code)
    order = await delivered(session)
    await env.sleep(timedelta(days=2))
    view = await order.until(S.NEEDS_ATTENTION)
    assert view.attention is not None
    assert (view.attention.code, view.attention.step) == (code, "payment")
    assert view.waiting_for.startswith("Needs an operator")
    view = await order.handle.execute_update(
        EscrowOrderWorkflow.operator_action,
        OperatorAction.model_validate({"action": action, "operator": "ops"}),
    )
    assert view.status is S.PAYING_OUT
    assert view.attention is None
    await order.until(S.PAID_OUT)
    assert len(fake.called("payment")) == 2


async def test_transport_errors_and_11800_are_retried(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    fake.transport("payment", 2)
    fake.fail("payment", 11800)
    order = await delivered(session)
    await env.sleep(timedelta(days=2))
    await order.until(S.PAID_OUT, skip=timedelta(seconds=30))
    assert [c.attempt for c in fake.called("payment")] == [1, 2, 3, 4]


async def test_token_missing_is_loud_and_parks(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    fake.fail("customer_id", 11400)
    order = await start(session)
    info = await order.handle.execute_update(EscrowOrderWorkflow.payment_info)
    assert info.status is S.NEEDS_ATTENTION
    assert info.error is not None
    assert info.error.code == 11400
    assert len(fake.called("customer_id")) == 1
    await order.handle.execute_update(
        EscrowOrderWorkflow.operator_action, OperatorAction(action="retry")
    )
    info = await order.handle.execute_update(EscrowOrderWorkflow.payment_info)
    assert info.status is S.AWAITING_PAYMENT
    assert info.payment is not None
    assert info.error is None


@pytest.mark.parametrize(("code", "endpoint"), [(10200, "customer_id"), (10500, "create_order")])
async def test_unfixable_creation_errors_fail(
    env: WorkflowEnvironment,
    code: int,
    endpoint: str,
    fake: FakeCotpay,
    session: Session,
) -> None:
    fake.fail(endpoint, code)
    order = await start(session)
    info = await order.handle.execute_update(EscrowOrderWorkflow.payment_info)
    assert info.status is S.FAILED
    assert info.payment is None
    result = await order.handle.result()
    assert result.status is S.FAILED
    assert result.attention is not None
    assert result.attention.code == code


async def test_unknown_buyer_is_signed_up(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    fake.fail("customer_id", 10300)
    order = await start(session, buyer=BuyerProfile(name="Lan", email="lan@example.vn"))
    info = await order.handle.execute_update(EscrowOrderWorkflow.payment_info)
    assert info.status is S.AWAITING_PAYMENT
    (signed,) = fake.called("sign_up")
    assert signed.arg.phone == order.inp.buyer_id


async def test_unknown_buyer_without_profile_fails(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    fake.fail("customer_id", 10300)
    order = await start(session)
    result = await order.handle.result()
    assert result.status is S.FAILED
    assert result.attention is not None
    assert result.attention.code == 10300
    assert not fake.called("create_order")


async def test_order_code_exists_parks_with_the_evidence(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    existing = {"idOrder": 77, "partnerId": "S0000001", "orderCode": "x"}
    fake.fail("create_order", 10400, data={"code": 10400, "order": existing})
    order = await start(session)
    info = await order.handle.execute_update(EscrowOrderWorkflow.payment_info)
    assert info.status is S.NEEDS_ATTENTION
    view = await order.view()
    assert view.attention is not None
    assert (view.attention.code, view.attention.step) == (10400, "create")
    evidence = [e for e in view.timeline if e.kind == "evidence"]
    assert evidence and evidence[0].data is not None
    assert evidence[0].data["order"] == existing
    assert len(fake.called("create_order")) == 1
    await order.handle.execute_update(
        EscrowOrderWorkflow.operator_action, OperatorAction(action="cancel")
    )
    result = await order.handle.result()
    assert result.status is S.CANCELLED


async def test_payout_failed_ipn_after_payout_needs_attention(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    order = await delivered(session)
    await env.sleep(timedelta(days=2))
    await order.until(S.PAID_OUT)
    await order.ipn("PAYOUT_FAILED", IpnStep.PAYMENT, tx="p-1")
    view = await order.until(S.NEEDS_ATTENTION)
    assert view.attention is not None
    assert view.attention.step == "payment"
    await order.handle.execute_update(
        EscrowOrderWorkflow.operator_action, OperatorAction(action="retry")
    )
    await order.until(S.PAID_OUT)
    await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="p-2")
    result = await order.handle.result()
    assert result.status is S.PAID_OUT
    assert len(fake.called("payment")) == 2


@pytest.mark.parametrize("auto_release", [False, True])
async def test_delivery_deadline(
    env: WorkflowEnvironment,
    auto_release: bool,
    fake: FakeCotpay,
    session: Session,
) -> None:
    order = await start(session, auto_release=auto_release)
    await order.hold()
    await env.sleep(timedelta(days=14, minutes=1))
    if auto_release:
        await order.until(S.PAID_OUT)
        return
    view = await order.until(S.NEEDS_ATTENTION)
    assert view.attention is not None
    assert view.attention.step == "delivery"
    late = await order.handle.execute_update(
        EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation(note="late")
    )
    assert late.status is S.DELIVERED
    await order.until(S.PAID_OUT)


async def test_a_repeated_delivery_on_an_order_stopped_after_delivery_is_answered_not_refused(
    env: WorkflowEnvironment, fake: FakeCotpay, session: Session
) -> None:
    """A shop repeats ``delivered`` after a lost answer, and meanwhile the payout was refused
    (11000): the repeat answers the order as it is (patch ``repeated-delivery``, which orders
    since ``lean-history`` have without asking it), found by ``make chaos``; the order still
    waits for its operator, and no second payment is made."""
    fake.fail("payment", 11000)
    order = await delivered(session)
    await env.sleep(timedelta(days=2))
    await order.until(S.NEEDS_ATTENTION)
    view = await order.handle.execute_update(
        EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation()
    )
    assert view.status is S.NEEDS_ATTENTION
    assert view.attention is not None and view.attention.step == "payment"
    assert len(fake.called("payment")) == 1
    assert await patches(order) == [LEAN_PATCH]
