"""Recovering a creation that went wrong: an operator retry of a create-order that got no answer
adopts the order the unanswered call made, instead of parking again on its 10400 forever; a
sign-up refused because the buyer exists by now goes on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.cotpay_activities import CotpayActivities
from activities.models import CreateOrderInput
from tests.workflow.fake_cotpay import FakeCotpay
from tests.workflow.helpers import BUYER, SELLER, Session, start
from workflows.escrow import EscrowOrderWorkflow
from workflows.models import BuyerProfile, EscrowStatus, OperatorAction

S = EscrowStatus


def _create(ref: str, *, unanswered: bool, amount: int = 60_000) -> CreateOrderInput:
    return CreateOrderInput(
        order_ref=ref,
        seller_id=SELLER,
        buyer_id=BUYER,
        amount=amount,
        description="t",
        earlier_call_unanswered=unanswered,
    )


async def test_first_attempt_adopts_when_an_earlier_call_went_unanswered(
    acts: CotpayActivities,
) -> None:
    env = ActivityEnvironment()
    first = await env.run(acts.create_order, _create("rv-1", unanswered=False))
    again = await env.run(acts.create_order, _create("rv-1", unanswered=True))
    assert again.adopted and again.id_order == first.id_order
    with pytest.raises(ApplicationError) as caught:
        await env.run(acts.create_order, _create("rv-1", unanswered=False))
    assert caught.value.type == "OrderCodeExists"
    with pytest.raises(ApplicationError) as caught:
        await env.run(acts.create_order, _create("rv-1", unanswered=True, amount=70_000))
    assert caught.value.type == "OrderCodeExists"


async def test_operator_retry_after_an_unanswered_create_says_so(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    fake.transport("create_order", 200)
    order = await start(session)
    view = await order.until(S.NEEDS_ATTENTION, skip=timedelta(minutes=1))
    assert view.attention is not None and view.attention.step == "create"
    assert "Timeout" in view.attention.reason
    assert not fake.called("create_order")[0].arg.earlier_call_unanswered
    fake.script["create_order"].clear()
    calls = len(fake.called("create_order"))
    await order.handle.execute_update(
        EscrowOrderWorkflow.operator_action, OperatorAction(action="retry")
    )
    await order.until(S.AWAITING_PAYMENT)
    assert fake.called("create_order")[calls].arg.earlier_call_unanswered


async def test_retry_after_a_definite_10400_does_not_adopt(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    fake.fail("create_order", 10400, 10400, data={"order": {"idOrder": 5}})
    order = await start(session)
    await order.until(S.NEEDS_ATTENTION)
    await order.handle.execute_update(
        EscrowOrderWorkflow.operator_action, OperatorAction(action="retry")
    )
    await order.calls_of("create_order", 2)
    assert not any(c.arg.earlier_call_unanswered for c in fake.called("create_order"))


async def test_sign_up_refused_because_the_buyer_now_exists_continues(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    """sign-up retried after an unanswered attempt (which registered the buyer), or a concurrent
    order signing the same buyer up, answers 10500 "phone registered": the buyer exists, so the
    order goes on instead of FAILED."""
    fake.fail("customer_id", 10300)
    fake.fail("sign_up", 10500)
    order = await start(session, buyer=BuyerProfile(name="Lan", email="lan@example.vn"))
    view = await order.until(S.AWAITING_PAYMENT, S.FAILED)
    assert view.status is S.AWAITING_PAYMENT
    assert len(fake.called("customer_id")) == 2


async def test_sign_up_refused_and_buyer_still_unknown_fails(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    fake.fail("customer_id", 10300, 10300)
    fake.fail("sign_up", 10500)
    order = await start(session, buyer=BuyerProfile(name="Lan", email="lan@example.vn"))
    view = await order.until(S.FAILED, S.AWAITING_PAYMENT)
    assert view.status is S.FAILED
    assert view.attention is not None and view.attention.code == 10500
