from __future__ import annotations

from cotpay.client import CotpayClient
from cotpay.models import PaymentRequest
from sandbox.testing import RunningSandbox
from tests.sandbox.helpers import BUYER, IPN, SELLER, held_order


async def test_order_to_payout(sandbox: RunningSandbox, client: CotpayClient) -> None:
    id_order = await held_order(sandbox, client)
    paid = await client.payment(
        PaymentRequest(idOrder=id_order, partnerId=SELLER, buyerId=BUYER, ipnUrl=IPN)
    )
    assert paid.code == 10100 and paid.data
    ledger = (await sandbox.admin.get("/sandbox/ledger")).json()
    (entry,) = [o for o in ledger["orders"] if o["idOrder"] == id_order]
    assert len(entry["holds"]) == 1 and len(entry["payouts"]) == 1 and entry["refunds"] == []
    assert entry["status"] == "PAID_OUT"
