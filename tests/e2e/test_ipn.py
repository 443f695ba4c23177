"""IPN intake on the real gateway: forged callbacks are refused, replays change nothing."""

from __future__ import annotations

import asyncio

import pytest

from cotpay.ipn import ipn_signature
from workflows.models import EscrowStatus

from .driver import IPN_SECRET, E2EStack

pytestmark = pytest.mark.e2e


async def test_forged_ipn_gets_403_and_signals_nothing(stack: E2EStack) -> None:
    view = await stack.started("forged")
    ref, id_order = view["orderRef"], view["cotpayOrderId"]
    before = await stack.view(ref)
    holding = {"idOrder": id_order, "status": "HOLDING", "amount": view["amount"]}

    bad_sig = await stack.post_ipn(ref, "payment", holding, sig="forged")
    no_sig = await stack.http.post(f"/ipn/{ref}/payment", json=holding)
    other_order = await stack.post_ipn(
        ref, "payment", holding, sig=ipn_signature(IPN_SECRET, "someone-else", "payment")
    )
    for r in (bad_sig, no_sig, other_order):
        assert r.status_code == 403, r.text
        assert r.json()["error"]

    await asyncio.sleep(0.5)
    after = await stack.view(ref)
    assert after["status"] == EscrowStatus.AWAITING_PAYMENT
    assert after["timeline"] == before["timeline"]
    assert (await stack.ledger(id_order))["holds"] == []


async def test_replayed_ipns_change_nothing(stack: E2EStack) -> None:
    view = await stack.started("replay")
    ref, id_order = view["orderRef"], view["cotpayOrderId"]
    await stack.pay(id_order)
    await stack.wait_status(ref, EscrowStatus.HELD)
    await stack.http.post(f"/v1/orders/{ref}/delivered", json={})
    done = await stack.wait_status(ref, EscrowStatus.PAID_OUT)

    sent = (await stack.sandbox_order(id_order))["ipns"]
    assert sent, "the sandbox delivered IPNs for this order"
    for record in sent:
        assert record["deliveredAt"], record
        step = record["url"].rstrip("/").rsplit("/", 1)[-1]
        for _ in range(2):
            r = await stack.post_ipn(ref, step, record["body"])
            assert r.status_code == 200, r.text

    await asyncio.sleep(0.5)
    after = await stack.view(ref)
    assert after["status"] == EscrowStatus.PAID_OUT
    assert after["paidOutAt"] == done["paidOutAt"]
    entry = await stack.ledger(id_order)
    assert len(entry["payouts"]) == 1
    assert entry["refunds"] == []
