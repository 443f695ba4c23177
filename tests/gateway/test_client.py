"""``EscrowClient`` directly: typed errors the gateway and the CLI rely on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from cotpay.ipn import IpnBody, IpnStep
from starter.client import (
    EscrowClient,
    InvalidState,
    OrderClosed,
    OrderConflict,
    OrderNotFound,
    StartTimeout,
    VisibilityUnavailable,
)
from starter.client.escrow import refusal
from tests.gateway.conftest import Backend, new_ref
from workflows.models import EscrowStatus, IpnSignal, OrderInput
from workflows.pseudonym import search_id_hex_salt

pytestmark = pytest.mark.timeout(120)


def order(**overrides: object) -> OrderInput:
    fields: dict[str, object] = {
        "order_ref": new_ref("py"),
        "seller_id": "0911000001",
        "buyer_id": "0922000002",
        "amount": 120_000,
    }
    fields.update(overrides)
    return OrderInput.model_validate(fields)


async def test_start_is_idempotent_and_conflicts_name_the_fields(orders: EscrowClient) -> None:
    first = order()
    created = await orders.start_order(first)
    assert created.created is True
    assert created.payment is not None and created.payment.payment
    again = await orders.start_order(first.model_copy())
    assert again.created is False
    assert again.view.cotpay_order_id == created.view.cotpay_order_id
    with pytest.raises(OrderConflict) as raised:
        await orders.start_order(first.model_copy(update={"amount": 1_000_000, "buyer_id": "1"}))
    assert raised.value.fields == ["amount", "buyerId"]
    explicit = OrderInput.model_validate(first.model_dump() | {"payoutRule": "immediate"})
    assert "payout_rule" in explicit.model_fields_set
    with pytest.raises(OrderConflict) as raised:
        await orders.start_order(explicit)
    assert raised.value.fields == ["payoutRule"]


async def test_start_without_a_worker_times_out_and_repeats_cleanly(
    env: WorkflowEnvironment,
) -> None:
    idle = EscrowClient(env.client, task_queue=f"no-worker-{new_ref()}")
    pending = order()
    with pytest.raises(StartTimeout):
        await idle.start_order(pending, wait=timedelta(seconds=1))
    handle = env.client.get_workflow_handle(f"escrow-{pending.order_ref}")
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    with pytest.raises(StartTimeout):
        await idle.start_order(pending, wait=timedelta(seconds=1))
    with pytest.raises(OrderConflict):
        await idle.start_order(pending.model_copy(update={"amount": 130_000}))
    await handle.terminate("test cleanup")


async def test_signals_to_unknown_and_finished_orders(orders: EscrowClient) -> None:
    ipn = IpnSignal(step=IpnStep.VERIFY, body=IpnBody(status="HOLDING"))
    with pytest.raises(OrderNotFound):
        await orders.send_ipn(new_ref(), ipn)
    failed = await orders.start_order(order(seller_id="0005550000"))
    assert failed.view.status == "FAILED"
    assert failed.payment is not None and failed.payment.error is not None
    assert failed.payment.error.code == 10200
    with pytest.raises(OrderClosed):
        await orders.send_ipn(failed.view.order_ref, ipn)
    with pytest.raises(OrderNotFound):
        await orders.get_order(new_ref())


async def test_search_salt_goes_into_new_orders_and_filters(
    backend: Backend, orders: EscrowClient
) -> None:
    salt = "0f" * 16
    salted = EscrowClient(backend.client, task_queue=backend.task_queue, search_salt=salt)
    placed = order()
    result = await salted.start_order(placed)
    assert result.created is True
    started = await salted._started(placed.order_ref)
    assert started is not None and started[0].search_salt == salt
    assert (await salted.start_order(placed)).created is False
    assert salted._search_value("0911000001") == search_id_hex_salt("0911000001", salt)
    assert orders._search_value("0911000001") == "0911000001"
    with pytest.raises(ValueError):
        await salted.list_orders(seller_id='x" OR "1"="1')
    with pytest.raises(VisibilityUnavailable):
        await salted.list_orders(EscrowStatus.HELD, seller_id="0911000001")


async def test_a_refused_update_carries_the_workflow_s_failure_type(
    orders: EscrowClient,
) -> None:
    started = await orders.start_order(order())
    with pytest.raises(InvalidState) as raised:
        await orders.open_dispute(started.view.order_ref)
    assert raised.value.code == "not_held"
    assert not raised.value.message.startswith("not_held")
    with pytest.raises(InvalidState) as raised:
        await orders.confirm_delivery(started.view.order_ref)
    assert raised.value.code == "invalid_state"
    assert raised.value.message == "cannot confirm delivery of an order in AWAITING_PAYMENT"


def test_refusal_codes_come_from_the_failure_type_not_the_message() -> None:
    coded = refusal(ApplicationError("return_pending: a return is open", type="return_pending"))
    assert (coded.code, coded.message) == ("return_pending", "a return is open")
    untyped = refusal(ApplicationError("looks_coded: but untyped", type="ValueError"))
    assert (untyped.code, untyped.message) == ("invalid_state", "looks_coded: but untyped")
    assert refusal(None).code == "invalid_state"
