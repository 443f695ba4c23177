"""IPN delivery to a real local receiver: retries with backoff, sealing, URLs, faults."""

from __future__ import annotations

from datetime import datetime

from cotpay.client import CotpayClient
from cotpay.ipn import parse_ipn
from cotpay.models import PaymentRequest, ReturnRequest
from sandbox.faults import IpnPolicy
from sandbox.testing import RunningSandbox
from tests.sandbox.helpers import (
    BUYER,
    SELLER,
    held_order,
    order_view,
    sandbox_and_client,
    verified_order,
    wait_ipns,
)
from tests.sandbox.receiver import ipn_receiver


async def test_retried_until_2xx_then_sealed_body(sandbox: RunningSandbox, client: CotpayClient):
    async with ipn_receiver(sandbox.keys, script=[500, 500, 200]) as rx:
        id_order = await held_order(sandbox, client, ipn=rx.url("ref1", "verify"))
        ipns = await wait_ipns(sandbox, id_order, 1)
        assert rx.answers == [500, 500, 200]
        assert ipns[0]["attempts"] == 3 and ipns[0]["deliveredAt"]
        assert ipns[0]["url"] == f"{rx.base_url}/ipn/ref1/verify"
        got = rx.received[-1]
        assert got.sealed and got.action == "/ipn/ref1/verify" and got.query == "sig=test-sig"
        body = parse_ipn(got.payload)
        assert body.idOrder == id_order and body.status == "HOLDING" and body.code == 10100
        assert body.amount == 50_000 and body.transactionId and isinstance(body.time, datetime)
        offset = body.time.utcoffset()
        assert offset is not None and offset.total_seconds() == 0


async def test_each_status_goes_to_its_step_url(sandbox: RunningSandbox, client: CotpayClient):
    async with ipn_receiver(sandbox.keys) as rx:
        id_order = await held_order(sandbox, client, ipn=rx.url("r", "verify"))
        await client.return_request(
            ReturnRequest(
                idOrder=id_order, partnerId=SELLER, buyerId=BUYER, ipnUrl=rx.url("r", "return")
            )
        )
        await sandbox.admin.post(f"/sandbox/orders/{id_order}/return", json={"decision": "reject"})
        await sandbox.admin.post(f"/sandbox/orders/{id_order}/fail-next-payout")
        pay = PaymentRequest(
            idOrder=id_order, partnerId=SELLER, buyerId=BUYER, ipnUrl=rx.url("r", "payment")
        )
        try:
            await client.payment(pay)
        except Exception as exc:
            assert getattr(exc, "code", None) == 10800
        await client.payment(pay)
        await wait_ipns(sandbox, id_order, 4)
        by_status = {r.payload["status"]: r.path for r in rx.received}
        assert by_status == {
            "HOLDING": "/ipn/r/verify",
            "RETURN_REJECTED": "/ipn/r/return",
            "PAYOUT_FAILED": "/ipn/r/payment",
            "PAID_OUT": "/ipn/r/payment",
        }
        failed = next(r.payload for r in rx.received if r.payload["status"] == "PAYOUT_FAILED")
        assert failed["code"] == 10800


async def test_refund_ipn(sandbox: RunningSandbox, client: CotpayClient):
    async with ipn_receiver(sandbox.keys) as rx:
        id_order = await held_order(sandbox, client, ipn=rx.url("r", "verify"))
        await client.return_request(
            ReturnRequest(
                idOrder=id_order, partnerId=SELLER, buyerId=BUYER, ipnUrl=rx.url("r", "return")
            )
        )
        await sandbox.admin.post(f"/sandbox/orders/{id_order}/return", json={"decision": "approve"})
        await wait_ipns(sandbox, id_order, 2)
        refund = next(r for r in rx.received if r.payload["status"] == "REFUNDED")
        assert refund.path == "/ipn/r/return"
        view = await order_view(sandbox, id_order)
        assert refund.payload["transactionId"] == view["refundTransactionId"]


async def test_payment_failed_ipn(sandbox: RunningSandbox, client: CotpayClient):
    async with ipn_receiver(sandbox.keys) as rx:
        id_order = await verified_order(sandbox, client, rx.url("x", "verify"))
        await sandbox.admin.post(f"/sandbox/orders/{id_order}/pay", json={"outcome": "failed"})
        await wait_ipns(sandbox, id_order, 1)
        assert rx.statuses() == ["PAYMENT_FAILED"] and rx.received[0].path == "/ipn/x/verify"


async def test_drop_fault_counts_failed_attempts(sandbox: RunningSandbox, client: CotpayClient):
    async with ipn_receiver(sandbox.keys) as rx:
        await sandbox.admin.put("/sandbox/faults", json={"ipnDropRate": 1.0})
        id_order = await held_order(sandbox, client, ipn=rx.url("d", "verify"))
        for _ in range(100):
            view = await order_view(sandbox, id_order)
            if view["ipns"][0]["attempts"] >= 2:
                break
            await sandbox.admin.get("/sandbox/health")
        assert view["ipns"][0]["lastError"] == "dropped (fault)"
        assert rx.received == [] and view["ipns"][0]["deliveredAt"] is None
        await sandbox.admin.put("/sandbox/faults", json={})
        ipns = await wait_ipns(sandbox, id_order, 1)
        assert ipns[0]["attempts"] >= 3 and len(rx.received) == 1


async def test_duplicate_fault_delivers_twice(sandbox: RunningSandbox, client: CotpayClient):
    async with ipn_receiver(sandbox.keys) as rx:
        await sandbox.admin.put("/sandbox/faults", json={"ipnDuplicateRate": 1.0})
        id_order = await held_order(sandbox, client, ipn=rx.url("d", "verify"))
        ipns = await wait_ipns(sandbox, id_order, 1)
        assert ipns[0]["duplicates"] == 1
        for _ in range(100):
            if len(rx.received) == 2:
                break
            await sandbox.admin.get("/sandbox/health")
        assert rx.statuses() == ["HOLDING", "HOLDING"]
        assert rx.received[0].payload == rx.received[1].payload


async def test_reorder_fault_lets_later_ipns_overtake(keys_dir):
    policy = IpnPolicy(base_delay=0.05, max_delay=0.2, reorder_window=0.5)
    async with (
        sandbox_and_client(keys_dir, payout_rule="immediate", ipn_policy=policy, seed=7) as (
            sb,
            client,
        ),
        ipn_receiver(sb.keys) as rx,
    ):
        await sb.admin.put("/sandbox/faults", json={"ipnReorder": True})
        orders = [
            await held_order(sb, client, ipn=rx.url(f"o{i}", "verify"), code=f"o{i}")
            for i in range(8)
        ]
        for id_order in orders:
            await wait_ipns(sb, id_order, 1)
        arrived = [r.payload["idOrder"] for r in rx.received]
        assert sorted(arrived) == orders and arrived != orders


async def test_gives_up_after_max_attempts(keys_dir):
    policy = IpnPolicy(base_delay=0.01, max_delay=0.02, max_attempts=3)
    async with (
        sandbox_and_client(keys_dir, payout_rule="immediate", ipn_policy=policy) as (sb, client),
        ipn_receiver(sb.keys, [503] * 9) as rx,
    ):
        id_order = await held_order(sb, client, ipn=rx.url("g", "verify"))
        ipns = await wait_ipns(sb, id_order, 1)
        assert ipns[0]["gaveUp"] and ipns[0]["attempts"] == 3 and rx.answers == [503] * 3
        assert ipns[0]["lastError"] == "HTTP 503"
