"""Exactly-once money: concurrent payouts, payout against refund, persistence across restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cotpay.client import CotpayClient
from cotpay.codes import OrderBusy
from cotpay.models import PaymentRequest, ReturnRequest
from sandbox.domain import LedgerEntry
from sandbox.store import Store
from sandbox.testing import RunningSandbox
from tests.sandbox.helpers import BUYER, IPN, SELLER, held_order, order_view, sandbox_and_client


def _pay(id_order: int) -> PaymentRequest:
    return PaymentRequest(idOrder=id_order, partnerId=SELLER, buyerId=BUYER, ipnUrl=IPN)


async def test_twenty_concurrent_payouts_pay_once(sandbox: RunningSandbox, client: CotpayClient):
    id_order = await held_order(sandbox, client)
    results = await asyncio.gather(
        *(client.payment(_pay(id_order)) for _ in range(20)), return_exceptions=True
    )
    ok = [r for r in results if not isinstance(r, BaseException)]
    busy = [r for r in results if isinstance(r, OrderBusy)]
    assert len(ok) + len(busy) == 20 and ok
    assert len({r.data for r in ok}) == 1
    view = await order_view(sandbox, id_order)
    assert len(view["ledger"]["payouts"]) == 1
    assert view["ledger"]["payouts"][0]["transactionId"] == ok[0].data
    assert [i["status"] for i in view["ipns"]].count("PAID_OUT") == 1


async def test_concurrent_payouts_with_latency_answer_11800(
    sandbox: RunningSandbox, client: CotpayClient
):
    id_order = await held_order(sandbox, client)
    await sandbox.admin.put("/sandbox/faults", json={"latencyMs": 300})
    results = await asyncio.gather(
        *(client.payment(_pay(id_order)) for _ in range(20)), return_exceptions=True
    )
    await sandbox.admin.put("/sandbox/faults", json={})
    ok = [r for r in results if not isinstance(r, BaseException)]
    busy = [r for r in results if isinstance(r, OrderBusy)]
    assert len(ok) == 1 and len(busy) == 19
    assert len((await order_view(sandbox, id_order))["ledger"]["payouts"]) == 1
    assert (await client.payment(_pay(id_order))).data == ok[0].data


async def test_refund_and_payout_race(sandbox: RunningSandbox, client: CotpayClient):
    id_order = await held_order(sandbox, client)
    await sandbox.admin.put("/sandbox/faults", json={"latencyMs": 300})
    payout = asyncio.create_task(client.payment(_pay(id_order)))
    await asyncio.sleep(0.1)
    ret = ReturnRequest(idOrder=id_order, partnerId=SELLER, buyerId=BUYER, ipnUrl=IPN)
    try:
        await client.return_request(ret)
        raise AssertionError("return-request during a payout should be 11800")
    except OrderBusy:
        pass
    decided = await sandbox.admin.post(
        f"/sandbox/orders/{id_order}/return", json={"decision": "approve"}
    )
    assert decided.status_code == 409 and decided.json()["error"] == "order_busy"
    assert (await payout).code == 10100
    await sandbox.admin.put("/sandbox/faults", json={})
    ledger = (await order_view(sandbox, id_order))["ledger"]
    assert len(ledger["payouts"]) == 1 and ledger["refunds"] == []


async def test_state_survives_restart(keys_dir: Path, tmp_path: Path):
    db = tmp_path / "sandbox.db"
    async with sandbox_and_client(keys_dir, payout_rule="immediate", db=db) as (sb, client):
        first = await held_order(sb, client, code="keep-1")
        paid = await client.payment(_pay(first))
        second = await held_order(sb, client, code="keep-2")
        ledger = (await sb.admin.get("/sandbox/ledger")).json()
    async with sandbox_and_client(keys_dir, payout_rule="immediate", db=db) as (sb, client):
        assert (await sb.admin.get("/sandbox/ledger")).json() == ledger
        assert (await sb.admin.get(f"/sandbox/users/{SELLER}")).status_code == 200
        assert (await client.payment(_pay(first))).data == paid.data
        assert (await client.payment(_pay(second))).code == 10100
        third = await held_order(sb, client, code="keep-3")
        assert third == second + 1
        view = await order_view(sb, first)
        assert view["status"] == "PAID_OUT" and len(view["ledger"]["payouts"]) == 1


def test_unique_guard_across_two_processes(tmp_path: Path):
    db = tmp_path / "shared.db"
    a, b = Store(db), Store(db)
    from datetime import UTC, datetime

    from sandbox.domain import Order

    order = Order(
        idOrder=a.next_order_id(),
        partnerId=SELLER,
        buyerId=BUYER,
        amount=30_000,
        desc="",
        createdAt=datetime.now(UTC),
    )
    assert b.next_order_id() == order.idOrder + 1
    payout = LedgerEntry(
        idOrder=order.idOrder,
        kind="payout",
        amount=30_000,
        transactionId="P1",
        at=datetime.now(UTC),
    )
    refund = payout.model_copy(update={"kind": "refund", "transactionId": "R1"})
    assert a.record(payout, order)
    assert not b.record(refund, order)
    assert not b.record(payout, order)
    a.close()
    b.close()
    reopened = Store(db)
    assert [e.transactionId for e in reopened.ledger] == ["P1"]
    reopened.close()
