from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cotpay.client import CotpayClient
from cotpay.models import CreateOrderRequest, PayMethod, VerifyOrderRequest
from sandbox.testing import RunningSandbox, running_sandbox

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


async def order_view(sb: RunningSandbox, id_order: int) -> dict[str, Any]:
    r = await sb.admin.get(f"/sandbox/orders/{id_order}")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def wait_ipns(
    sb: RunningSandbox, id_order: int, count: int, *, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Wait until ``count`` IPN records of the order are delivered (or given up)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        ipns: list[dict[str, Any]] = (await order_view(sb, id_order))["ipns"]
        done = [i for i in ipns if i["deliveredAt"] or i["gaveUp"]]
        if len(done) >= count:
            return ipns
        assert asyncio.get_running_loop().time() < deadline, ipns
        await asyncio.sleep(0.05)


async def ledger_snapshot(sb: RunningSandbox) -> Any:
    return (await sb.admin.get("/sandbox/ledger")).json()


async def created_order(sb: RunningSandbox, client: CotpayClient, ipn: str = IPN) -> int:
    """The users and a new 45,000 VND order between them (not verified, not paid)."""
    await make_users(sb)
    created = await client.create_order(
        CreateOrderRequest(partnerId=SELLER, buyerId=BUYER, amount=45_000, desc="d", ipnUrl=ipn)
    )
    assert created.order is not None
    return created.order.idOrder


async def verified_order(sb: RunningSandbox, client: CotpayClient, ipn: str = IPN) -> int:
    id_order = await created_order(sb, client, ipn)
    await client.verify_order(
        VerifyOrderRequest(
            idOrder=id_order,
            partnerId=SELLER,
            buyerId=BUYER,
            payMethod=PayMethod.PAYME,
            ipnUrl=ipn,
        )
    )
    return id_order


@asynccontextmanager
async def sandbox_and_client(
    keys_dir: Path, **kwargs: Any
) -> AsyncIterator[tuple[RunningSandbox, CotpayClient]]:
    async with running_sandbox(keys_dir, **kwargs) as sb, CotpayClient(sb.cotpay_settings()) as c:
        yield sb, c
