"""Every Cotpay endpoint over real loopback HTTP with the real client, happy path and codes."""

from __future__ import annotations

import pytest

from cotpay.client import CotpayClient
from cotpay.codes import (
    BankNotLinked,
    BuyerNotFound,
    InformationMismatch,
    OrderCodeExists,
    OrderNotFound,
    PayoutFailed,
    SellerNotFound,
    ValidationFailed,
    WalletNotLinked,
)
from cotpay.models import (
    CreateOrderRequest,
    CustomerIdRequest,
    PaymentRequest,
    PayMethod,
    ReturnRequest,
    SignUpRequest,
    VerifyOrderRequest,
)
from sandbox.testing import RunningSandbox
from tests.sandbox.helpers import (
    BUYER,
    IPN,
    SELLER,
    created_order,
    held_order,
    make_users,
    order_view,
)


def _pay(id_order: int, partner: str = SELLER, buyer: str = BUYER) -> PaymentRequest:
    return PaymentRequest(idOrder=id_order, partnerId=partner, buyerId=buyer, ipnUrl=IPN)


def _ret(id_order: int, partner: str = SELLER, buyer: str = BUYER) -> ReturnRequest:
    return ReturnRequest(idOrder=id_order, partnerId=partner, buyerId=buyer, ipnUrl=IPN)


async def test_sign_up_creates_linked_customer(sandbox: RunningSandbox, client: CotpayClient):
    r = await client.sign_up(
        SignUpRequest(name="Nguyễn Thị Lan", email="lan@example.vn", phone="0901234567")
    )
    assert r.code == 10100 and r.data == "0901234567"
    user = (await sandbox.admin.get("/sandbox/users/0901234567")).json()
    assert user == {
        "id": "0901234567",
        "name": "Nguyễn Thị Lan",
        "walletLinked": True,
        "bankLinked": True,
    }


async def test_sign_up_duplicate_phone_is_10500_on_phone(client: CotpayClient):
    req = SignUpRequest(name="Lan", email="lan@example.vn", phone="0901234568")
    await client.sign_up(req)
    with pytest.raises(ValidationFailed) as exc:
        await client.sign_up(req)
    assert exc.value.data["errors"] == [
        {"field": "phone", "message": "phone number already registered"}
    ]


async def test_customer_id(sandbox: RunningSandbox, client: CotpayClient):
    await make_users(sandbox)
    r = await client.customer_id(CustomerIdRequest(partnerId=SELLER, buyerId=BUYER))
    assert r.user is not None and r.user.id == BUYER and r.user.walletLinked
    with pytest.raises(SellerNotFound):
        await client.customer_id(CustomerIdRequest(partnerId="S404", buyerId=BUYER))
    with pytest.raises(BuyerNotFound):
        await client.customer_id(CustomerIdRequest(partnerId=SELLER, buyerId="0999999999"))


async def test_create_order_ids_and_duplicate_code(sandbox: RunningSandbox, client: CotpayClient):
    await make_users(sandbox)
    req = CreateOrderRequest(
        partnerId=SELLER, buyerId=BUYER, amount=30_000, desc="d", ipnUrl=IPN, orderCode="ref-1"
    )
    first = await client.create_order(req)
    assert first.order is not None and first.order.status == "CREATED"
    assert first.order.idOrder >= 1_000_001 and first.order.orderCode == "ref-1"
    with pytest.raises(OrderCodeExists) as exc:
        await client.create_order(req)
    assert exc.value.data["order"]["idOrder"] == first.order.idOrder
    other = await client.create_order(req.model_copy(update={"orderCode": "ref-2"}))
    assert other.order is not None and other.order.idOrder == first.order.idOrder + 1
    with pytest.raises(SellerNotFound):
        await client.create_order(req.model_copy(update={"partnerId": "S404"}))
    with pytest.raises(BuyerNotFound):
        await client.create_order(req.model_copy(update={"buyerId": "0999999999"}))


async def test_verify_order(sandbox: RunningSandbox, client: CotpayClient):
    id_order = await created_order(sandbox, client)
    req = VerifyOrderRequest(
        idOrder=id_order, partnerId=SELLER, buyerId=BUYER, payMethod=PayMethod.QRPAY, ipnUrl=IPN
    )
    r = await client.verify_order(req)
    assert r.data == f"{sandbox.base_url}/sandbox/pay/{id_order}?method=QRPAY"
    view = await order_view(sandbox, id_order)
    assert view["status"] == "AWAITING_PAYMENT" and view["ipnUrls"]["verify"].endswith("/create")
    assert "sig=" not in str(view["ipnUrls"])
    page = await sandbox.admin.get(f"/sandbox/pay/{id_order}")
    assert page.status_code == 200 and "45000" in page.text
    with pytest.raises(OrderNotFound):
        await client.verify_order(req.model_copy(update={"idOrder": 42}))
    await sandbox.admin.put("/sandbox/users/S2", json={})
    with pytest.raises(InformationMismatch):
        await client.verify_order(req.model_copy(update={"partnerId": "S2"}))


async def test_payment_codes(sandbox: RunningSandbox, client: CotpayClient):
    id_order = await held_order(sandbox, client)
    with pytest.raises(OrderNotFound):
        await client.payment(_pay(9_999_999))
    await sandbox.admin.put("/sandbox/users/S2", json={})
    with pytest.raises(InformationMismatch):
        await client.payment(_pay(id_order, partner="S2"))
    await sandbox.admin.patch(f"/sandbox/users/{SELLER}", json={"walletLinked": False})
    with pytest.raises(WalletNotLinked):
        await client.payment(_pay(id_order))
    await sandbox.admin.patch(
        f"/sandbox/users/{SELLER}", json={"walletLinked": True, "bankLinked": False}
    )
    with pytest.raises(BankNotLinked):
        await client.payment(_pay(id_order))
    await sandbox.admin.patch(f"/sandbox/users/{SELLER}", json={"bankLinked": True})
    r = await sandbox.admin.post(f"/sandbox/orders/{id_order}/fail-next-payout")
    assert r.json()["failNextPayouts"] == 1
    with pytest.raises(PayoutFailed):
        await client.payment(_pay(id_order))
    ok = await client.payment(_pay(id_order))
    again = await client.payment(_pay(id_order))
    assert ok.data and again.data == ok.data
    view = await order_view(sandbox, id_order)
    assert view["status"] == "PAID_OUT" and len(view["ledger"]["payouts"]) == 1
    assert [i["status"] for i in view["ipns"]] == ["HOLDING", "PAYOUT_FAILED", "PAID_OUT"]


async def test_payment_needs_held_money(sandbox: RunningSandbox, client: CotpayClient):
    id_order = await created_order(sandbox, client)
    with pytest.raises(PayoutFailed):
        await client.payment(_pay(id_order))
    ledger = (await sandbox.admin.get("/sandbox/ledger")).json()
    assert all(o["payouts"] == [] for o in ledger["orders"])


async def test_payout_fail_rate_fault(sandbox: RunningSandbox, client: CotpayClient):
    id_order = await held_order(sandbox, client)
    await sandbox.admin.put("/sandbox/faults", json={"payoutFailRate": 1.0})
    with pytest.raises(PayoutFailed):
        await client.payment(_pay(id_order))
    await sandbox.admin.put("/sandbox/faults", json={})
    assert (await client.payment(_pay(id_order))).code == 10100


async def test_return_approved_refunds_once(sandbox: RunningSandbox, client: CotpayClient):
    id_order = await held_order(sandbox, client)
    r = await client.return_request(_ret(id_order))
    assert r.data == "RETURN_PENDING"
    assert (await client.return_request(_ret(id_order))).data == "RETURN_PENDING"
    with pytest.raises(PayoutFailed):
        await client.payment(_pay(id_order))
    decided = await sandbox.admin.post(
        f"/sandbox/orders/{id_order}/return", json={"decision": "approve"}
    )
    assert decided.status_code == 200 and decided.json()["status"] == "REFUNDED"
    with pytest.raises(PayoutFailed):
        await client.payment(_pay(id_order))
    again = await sandbox.admin.post(
        f"/sandbox/orders/{id_order}/return", json={"decision": "approve"}
    )
    assert again.status_code == 409 and again.json()["error"] == "invalid_state"
    view = await order_view(sandbox, id_order)
    assert len(view["ledger"]["refunds"]) == 1 and view["ledger"]["payouts"] == []


async def test_return_rejected_goes_back_to_held(sandbox: RunningSandbox, client: CotpayClient):
    id_order = await held_order(sandbox, client)
    await client.return_request(_ret(id_order))
    r = await sandbox.admin.post(f"/sandbox/orders/{id_order}/return", json={"decision": "reject"})
    assert r.json()["status"] == "HOLDING"
    assert (await client.payment(_pay(id_order))).code == 10100
    with pytest.raises(InformationMismatch):
        await client.return_request(_ret(id_order))


async def test_return_request_needs_held_order(sandbox: RunningSandbox, client: CotpayClient):
    id_order = await created_order(sandbox, client)
    with pytest.raises(InformationMismatch):
        await client.return_request(_ret(id_order))
    with pytest.raises(OrderNotFound):
        await client.return_request(_ret(77))


async def test_payment_failed_then_verify_again(sandbox: RunningSandbox, client: CotpayClient):
    id_order = await created_order(sandbox, client)
    verify = VerifyOrderRequest(
        idOrder=id_order, partnerId=SELLER, buyerId=BUYER, payMethod=PayMethod.ATMCARD, ipnUrl=IPN
    )
    early = await sandbox.admin.post(f"/sandbox/orders/{id_order}/pay", json={"outcome": "success"})
    assert early.status_code == 409
    await client.verify_order(verify)
    r = await sandbox.admin.post(f"/sandbox/orders/{id_order}/pay", json={"outcome": "failed"})
    assert r.json()["status"] == "PAYMENT_FAILED"
    await client.verify_order(verify)
    r = await sandbox.admin.post(f"/sandbox/orders/{id_order}/pay", json={"outcome": "success"})
    assert r.json()["status"] == "HOLDING" and len(r.json()["ledger"]["holds"]) == 1
    assert (await client.verify_order(verify)).code == 10100
    assert (await order_view(sandbox, id_order))["status"] == "HOLDING"
