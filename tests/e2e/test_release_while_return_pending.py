"""Money-path review on the real stack: an operator cannot release money whose return request
is still pending at Cotpay; the seller's later refund ends the order with no payout."""

from __future__ import annotations

import pytest

from workflows.models import EscrowStatus

from .driver import E2EStack

pytestmark = pytest.mark.e2e


async def test_release_refused_while_the_return_is_pending_then_refunded(stack: E2EStack) -> None:
    view = await stack.started("rv-pending", timers={"returnWindow": "PT2S"})
    ref, id_order = view["orderRef"], view["cotpayOrderId"]
    await stack.pay(id_order)
    await stack.wait_status(ref, EscrowStatus.HELD)
    r = await stack.http.post(f"/v1/orders/{ref}/dispute", json={"reason": "wrong size"})
    assert r.status_code == 200, r.text
    stuck = await stack.wait_status(ref, EscrowStatus.NEEDS_ATTENTION)
    assert stuck["attention"]["step"] == "return_window"
    assert (await stack.sandbox_order(id_order))["status"] == "RETURN_PENDING"

    r = await stack.http.post(f"/v1/orders/{ref}/operator", json={"action": "release"})
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "return_pending"
    assert (await stack.ledger(id_order))["payouts"] == []

    decided = await stack.admin.post(
        f"/sandbox/orders/{id_order}/return", json={"decision": "approve"}
    )
    assert decided.status_code < 300, decided.text
    await stack.wait_status(ref, EscrowStatus.REFUNDED)
    entry = await stack.ledger(id_order)
    assert len(entry["refunds"]) == 1
    assert entry["payouts"] == []
