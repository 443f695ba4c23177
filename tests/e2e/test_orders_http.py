"""Orders through the HTTP API on a real dev server, sandbox, worker and gateway."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import pytest

from cotpay.payout_window import earliest_payout
from workflows.models import EscrowStatus

from .driver import E2EStack

pytestmark = pytest.mark.e2e


async def test_happy_path_to_paid_out_with_one_payout(stack: E2EStack) -> None:
    view = await stack.started("happy")
    ref, id_order = view["orderRef"], view["cotpayOrderId"]
    assert view["status"] == EscrowStatus.AWAITING_PAYMENT
    assert view["payment"], "verify-order data comes back in the start call"

    await stack.pay(id_order)
    await stack.wait_status(ref, EscrowStatus.HELD)
    r = await stack.http.post(f"/v1/orders/{ref}/delivered", json={})
    assert r.status_code == 200, r.text
    done = await stack.wait_status(ref, EscrowStatus.PAID_OUT)

    assert done["heldAt"] and done["deliveredAt"]
    entry = await stack.ledger(id_order)
    assert len(entry["holds"]) == 1
    assert len(entry["payouts"]) == 1
    assert entry["refunds"] == []
    again = await stack.http.post(f"/v1/orders/{ref}/delivered", json={})
    assert again.status_code == 200, "delivered is idempotent once paid out"
    assert len((await stack.ledger(id_order))["payouts"]) == 1


async def test_return_path_to_refunded(stack: E2EStack) -> None:
    view = await stack.started("return")
    ref, id_order = view["orderRef"], view["cotpayOrderId"]
    await stack.pay(id_order)
    await stack.wait_status(ref, EscrowStatus.HELD)

    r = await stack.http.post(f"/v1/orders/{ref}/dispute", json={"reason": "broken on arrival"})
    assert r.status_code == 200, r.text
    await stack.wait_status(ref, EscrowStatus.RETURN_REQUESTED)
    decided = await stack.admin.post(
        f"/sandbox/orders/{id_order}/return", json={"decision": "approve"}
    )
    assert decided.status_code < 300, decided.text
    await stack.wait_status(ref, EscrowStatus.REFUNDED)

    entry = await stack.ledger(id_order)
    assert len(entry["refunds"]) == 1
    assert entry["payouts"] == []
    late = await stack.http.post(f"/v1/orders/{ref}/delivered", json={})
    assert late.status_code == 409, late.text
    assert late.json()["error"]


async def test_start_is_idempotent_and_conflicts_are_refused(stack: E2EStack) -> None:
    body = await stack.order_body("idem")
    first = await stack.start(body)
    assert first.status_code == 201, first.text
    second = await stack.start(body)
    assert second.status_code == 200, second.text
    assert second.json()["cotpayOrderId"] == first.json()["cotpayOrderId"]

    conflicting = await stack.start({**body, "amount": body["amount"] + 1000})
    assert conflicting.status_code == 409, conflicting.text
    assert conflicting.json()["error"]
    view = await stack.view(body["orderRef"])
    assert view["amount"] == body["amount"]


async def test_t1_1600_order_waits_for_the_payout_instant(stack: E2EStack) -> None:
    view = await stack.started("t1", payoutRule="t1-1600")
    ref, id_order = view["orderRef"], view["cotpayOrderId"]
    await stack.pay(id_order)
    held = await stack.wait_status(ref, EscrowStatus.HELD)
    r = await stack.http.post(f"/v1/orders/{ref}/delivered", json={})
    assert r.status_code == 200, r.text

    waiting = await stack.wait_status(ref, EscrowStatus.DELIVERED)
    held_at = datetime.fromisoformat(held["heldAt"])
    expected = earliest_payout(held_at, rule="t1-1600")
    assert datetime.fromisoformat(waiting["payoutNotBefore"]) == expected
    await asyncio.sleep(1.0)
    assert (await stack.view(ref))["status"] == EscrowStatus.DELIVERED
    assert (await stack.ledger(id_order))["payouts"] == []


async def test_list_orders_by_status_uses_search_attributes(stack: E2EStack) -> None:
    view = await stack.started("visible")
    ref = view["orderRef"]
    deadline = time.monotonic() + 15
    while True:
        rows = await stack.escrow.list_orders(status=EscrowStatus.AWAITING_PAYMENT)
        if any(row.order_ref == ref for row in rows):
            break
        assert time.monotonic() < deadline, "order never listed as AWAITING_PAYMENT"
        await asyncio.sleep(0.2)

    r = await stack.http.post(f"/v1/orders/{ref}/cancel", json={"reason": "e2e"})
    assert r.status_code == 200, r.text
    await stack.wait_status(ref, EscrowStatus.CANCELLED)
    deadline = time.monotonic() + 15
    while True:
        cancelled = await stack.escrow.list_orders(status=EscrowStatus.CANCELLED)
        awaiting = await stack.escrow.list_orders(status=EscrowStatus.AWAITING_PAYMENT)
        if any(r.order_ref == ref for r in cancelled) and all(r.order_ref != ref for r in awaiting):
            break
        assert time.monotonic() < deadline, "EscrowStatus not updated to CANCELLED"
        await asyncio.sleep(0.2)
