from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from cotpay.ipn import IpnStep
from tests.workflow.fake_cotpay import PAYMENT_DATA, FakeCotpay
from tests.workflow.helpers import BUYER, SELLER, Session, start, statuses
from workflows.escrow import EscrowOrderWorkflow
from workflows.models import DeliveryConfirmation, EscrowStatus
from workflows.pseudonym import search_id_hex_salt
from workflows.search_attributes import (
    BUYER_ID,
    COTPAY_ORDER_ID,
    ESCROW_AMOUNT,
    ESCROW_STATUS,
    PAYOUT_NOT_BEFORE,
    SELLER_ID,
)

S = EscrowStatus


async def test_happy_path(env: WorkflowEnvironment, fake: FakeCotpay, session: Session) -> None:
    order = await start(session)
    info = await order.handle.execute_update(EscrowOrderWorkflow.payment_info)
    assert info.payment == PAYMENT_DATA
    assert info.status is S.AWAITING_PAYMENT
    assert info.cotpay_order_id == 1001
    assert [c.arg.pay_method.value for c in fake.called("verify_order")] == ["VIETQR"]
    assert fake.called("create_order")[0].arg.order_ref == order.inp.order_ref

    held = await order.hold()
    assert held.held_at is not None
    view = await order.handle.execute_update(
        EscrowOrderWorkflow.confirm_delivery, DeliveryConfirmation(note="signed")
    )
    assert view.status is S.DELIVERED
    view = await order.until(S.DELIVERED)
    assert view.payout_not_before is not None
    assert not fake.called("payment")

    await env.sleep(timedelta(days=2))
    view = await order.until(S.PAID_OUT)
    assert len(fake.called("payment")) == 1
    assert view.payout_not_before is not None
    assert fake.called("payment")[0].at >= view.payout_not_before
    desc = await order.handle.describe()
    attrs = desc.typed_search_attributes
    assert attrs.get(ESCROW_STATUS) == "PAID_OUT"
    assert attrs.get(COTPAY_ORDER_ID) == 1001
    assert attrs.get(PAYOUT_NOT_BEFORE) == view.payout_not_before

    await order.ipn("PAID_OUT", IpnStep.PAYMENT, tx="payout-1")
    result = await order.handle.result()
    assert result.status is S.PAID_OUT
    assert result.payment == PAYMENT_DATA
    assert statuses(result) == [
        "AWAITING_PAYMENT",
        "HELD",
        "DELIVERED",
        "PAYING_OUT",
        "PAID_OUT",
    ]
    assert result.timeline[0].kind == "started"
    assert [e.time for e in result.timeline] == sorted(e.time for e in result.timeline)


async def test_search_attributes_and_details(
    env: WorkflowEnvironment,
    fake: FakeCotpay,
    session: Session,
) -> None:
    salt = "ab" * 16
    plain = await start(session)
    hidden = await start(session, search_salt=salt)
    for order in (plain, hidden):
        await order.until(S.AWAITING_PAYMENT)
    view = await plain.view()
    assert view.waiting_for.startswith("Waiting for buyer payment since ")
    assert "ICT (until " in view.waiting_for
    plain_attrs = (await plain.handle.describe()).typed_search_attributes
    assert plain_attrs.get(SELLER_ID) == SELLER
    assert plain_attrs.get(BUYER_ID) == BUYER
    assert plain_attrs.get(ESCROW_AMOUNT) == plain.inp.amount
    assert plain_attrs.get(ESCROW_STATUS) == "AWAITING_PAYMENT"
    hidden_attrs = (await hidden.handle.describe()).typed_search_attributes
    assert hidden_attrs.get(SELLER_ID) == search_id_hex_salt(SELLER, salt)
    assert hidden_attrs.get(BUYER_ID) == search_id_hex_salt(BUYER, salt)
    assert BUYER not in str(hidden_attrs)
