from __future__ import annotations

from cotpay.client import CotpayClient
from cotpay.models import CreateOrderRequest, PayMethod, VerifyOrderRequest
from sandbox.testing import RunningSandbox

SELLER = "S0000001"
BUYER = "0912345678"
IPN = "http://127.0.0.1:9/ipn/ref/create?sig=abc"


async def make_users(sb: RunningSandbox, *, seller: str = SELLER, buyer: str = BUYER) -> None:
    for user_id in (seller, buyer):
        r = await sb.admin.put(f"/sandbox/users/{user_id}", json={"name": "T"})
        assert r.status_code in (200, 201), r.text


async def held_order(
    sb: RunningSandbox,
    client: CotpayClient,
    *,
    code: str | None = None,
    ipn: str = IPN,
    amount: int = 50_000,
) -> int:
    await make_users(sb)
    created = await client.create_order(
        CreateOrderRequest(
            partnerId=SELLER, buyerId=BUYER, amount=amount, desc="t", ipnUrl=ipn, orderCode=code
        )
    )
    assert created.order is not None
    id_order = created.order.idOrder
    await client.verify_order(
        VerifyOrderRequest(
            idOrder=id_order,
            partnerId=SELLER,
            buyerId=BUYER,
            payMethod=PayMethod.VIETQR,
            ipnUrl=ipn,
        )
    )
    r = await sb.admin.post(f"/sandbox/orders/{id_order}/pay", json={"outcome": "success"})
    assert r.status_code == 200, r.text
    return id_order
