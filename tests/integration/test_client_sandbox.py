"""CotpayClient against the real sandbox over loopback: every endpoint, every reachable code.

Each code is produced by a realistic situation (unknown users, a repeated order code, a payout
before 16:00 on T+1, an unlinked wallet, ...), and the retryable flag of every error is checked
against docs/cotpay-protocol.md. IPNs go to a tiny loopback receiver that answers 200.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from cotpay.client import CotpayClient
from cotpay.codes import (
    BankNotLinked,
    BuyerNotFound,
    CotpayCodeError,
    CotpayProtocolError,
    CotpayTransportError,
    InformationMismatch,
    OrderBusy,
    OrderCodeExists,
    OrderNotFound,
    PayoutFailed,
    PayoutTooEarly,
    SellerNotFound,
    TokenMissing,
    ValidationFailed,
    WalletNotLinked,
    error_for,
)
from cotpay.envelope import generate_private_key, public_pem
from cotpay.models import (
    CreateOrderRequest,
    CustomerIdRequest,
    PaymentRequest,
    PayMethod,
    ReturnRequest,
    SignUpRequest,
    VerifyOrderRequest,
)
from sandbox.testing import RunningSandbox, running_sandbox

_ids = itertools.count(1)
BOUND = 5.0


class IpnReceiver:
    """Answers every HTTP request with 200 and keeps the request lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
            self.lines.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await asyncio.wait_for(reader.readexactly(length), BOUND)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture(scope="module")
async def ipn() -> AsyncIterator[IpnReceiver]:
    receiver = IpnReceiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    receiver.url = f"http://127.0.0.1:{port}/ipn"
    async with server:
        yield receiver


@pytest.fixture(scope="module")
async def sandbox(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningSandbox]:
    async with running_sandbox(tmp_path_factory.mktemp("keys"), payout_rule="t1-1600") as sb:
        yield sb


@pytest.fixture(scope="module")
async def cotpay(sandbox: RunningSandbox) -> AsyncIterator[CotpayClient]:
    async with CotpayClient(sandbox.cotpay_settings()) as client:
        yield client


@pytest.fixture(autouse=True)
async def clean_sandbox(sandbox: RunningSandbox) -> AsyncIterator[None]:
    yield
    (await sandbox.admin.put("/sandbox/faults", json={})).raise_for_status()
    (await sandbox.admin.put("/sandbox/clock", json={"offsetSeconds": 0})).raise_for_status()


def new_seller() -> str:
    return f"S{next(_ids):07d}"


def new_phone() -> str:
    return f"09{next(_ids):08d}"


async def seller(sandbox: RunningSandbox, **links: bool) -> str:
    partner = new_seller()
    body = {"name": "Cửa hàng", "walletLinked": True, "bankLinked": True, **links}
    (await sandbox.admin.put(f"/sandbox/users/{partner}", json=body)).raise_for_status()
    return partner


async def buyer(cotpay: CotpayClient) -> str:
    phone = new_phone()
    answer = await cotpay.sign_up(
        SignUpRequest(name="Nguyễn Thị Lan", email=f"lan{phone}@example.vn", phone=phone)
    )
    assert answer.code == 10100
    return phone


class Order:
    def __init__(self, id_order: int, partner: str, buyer: str, ipn_url: str) -> None:
        self.id = id_order
        self.partner = partner
        self.buyer = buyer
        self.ipn_url = ipn_url

    def payment(self, **changes: Any) -> PaymentRequest:
        data = {
            "idOrder": self.id,
            "partnerId": self.partner,
            "buyerId": self.buyer,
            "ipnUrl": f"{self.ipn_url}/payment",
            **changes,
        }
        return PaymentRequest.model_validate(data)

    def verify(self) -> VerifyOrderRequest:
        return VerifyOrderRequest(
            idOrder=self.id,
            partnerId=self.partner,
            buyerId=self.buyer,
            payMethod=PayMethod.VIETQR,
            ipnUrl=f"{self.ipn_url}/verify",
        )

    def return_request(self) -> ReturnRequest:
        return ReturnRequest(
            idOrder=self.id,
            partnerId=self.partner,
            buyerId=self.buyer,
            ipnUrl=f"{self.ipn_url}/return",
        )


async def new_order(
    sandbox: RunningSandbox,
    cotpay: CotpayClient,
    ipn: IpnReceiver,
    *,
    held: bool = False,
    order_code: str | None = None,
) -> Order:
    partner = await seller(sandbox)
    phone = await buyer(cotpay)
    created = await cotpay.create_order(
        CreateOrderRequest(
            partnerId=partner,
            buyerId=phone,
            amount=150_000,
            desc="Thanh toán đơn hàng",
            ipnUrl=f"{ipn.url}/create",
            orderCode=order_code,
        )
    )
    assert created.code == 10100 and created.order is not None
    order = Order(created.order.idOrder, partner, phone, ipn.url)
    if held:
        await cotpay.verify_order(order.verify())
        paid = await sandbox.admin.post(
            f"/sandbox/orders/{order.id}/pay", json={"outcome": "success"}
        )
        paid.raise_for_status()
    return order


def assert_classified(err: CotpayCodeError, cls: type[CotpayCodeError], code: int) -> None:
    assert type(err) is cls
    assert err.code == code
    assert err.retryable is error_for(code, "").retryable
    assert err.retryable is (code == 11800)


# --- every endpoint, the success path ---------------------------------------------------------


async def test_sign_up_and_customer_id(sandbox: RunningSandbox, cotpay: CotpayClient) -> None:
    partner = await seller(sandbox)
    phone = new_phone()
    signed = await cotpay.sign_up(SignUpRequest(name="Lan", email="lan@example.vn", phone=phone))
    assert signed.code == 10100 and signed.data == phone
    answer = await cotpay.customer_id(CustomerIdRequest(partnerId=partner, buyerId=phone))
    assert answer.code == 10100
    assert answer.user is not None and answer.user.id == phone


async def test_order_life_create_verify_hold_payout(
    sandbox: RunningSandbox, cotpay: CotpayClient, ipn: IpnReceiver
) -> None:
    order = await new_order(sandbox, cotpay, ipn, order_code=f"ref-{next(_ids)}")
    verified = await cotpay.verify_order(order.verify())
    assert verified.code == 10100 and verified.data
    paid = await sandbox.admin.post(f"/sandbox/orders/{order.id}/pay", json={"outcome": "success"})
    assert paid.status_code == 200

    with pytest.raises(PayoutTooEarly) as early:
        await cotpay.payment(order.payment())
    assert_classified(early.value, PayoutTooEarly, 11100)

    two_days = 2 * 86400
    await sandbox.admin.put("/sandbox/clock", json={"offsetSeconds": two_days})
    done = await cotpay.payment(order.payment())
    assert done.code == 10100 and done.data
    again = await cotpay.payment(order.payment())
    assert again.data == done.data
    ledger = (await sandbox.admin.get(f"/sandbox/orders/{order.id}")).json()["ledger"]
    assert len(ledger["holds"]) == 1 and len(ledger["payouts"]) == 1

    async with asyncio.timeout(BOUND):
        while not any("/ipn/payment" in line for line in ipn.lines):
            await asyncio.sleep(0.05)
    assert any("/ipn/verify" in line for line in ipn.lines)


async def test_return_request_and_refund(
    sandbox: RunningSandbox, cotpay: CotpayClient, ipn: IpnReceiver
) -> None:
    order = await new_order(sandbox, cotpay, ipn, held=True)
    answer = await cotpay.return_request(order.return_request())
    assert answer.code == 10100
    decided = await sandbox.admin.post(
        f"/sandbox/orders/{order.id}/return", json={"decision": "approve"}
    )
    assert decided.json()["status"] == "REFUNDED"
    again = await cotpay.return_request(order.return_request())
    assert again.code == 10100


# --- business codes ---------------------------------------------------------------------------


async def test_unknown_seller_10200_and_buyer_10300(
    sandbox: RunningSandbox, cotpay: CotpayClient, ipn: IpnReceiver
) -> None:
    partner = await seller(sandbox)
    phone = await buyer(cotpay)
    with pytest.raises(SellerNotFound) as no_seller:
        await cotpay.customer_id(CustomerIdRequest(partnerId=new_seller(), buyerId=phone))
    assert_classified(no_seller.value, SellerNotFound, 10200)
    with pytest.raises(BuyerNotFound) as no_buyer:
        await cotpay.create_order(
            CreateOrderRequest(
                partnerId=partner,
                buyerId=new_phone(),
                amount=30_000,
                desc="x",
                ipnUrl=ipn.url,
            )
        )
    assert_classified(no_buyer.value, BuyerNotFound, 10300)
    order = await new_order(sandbox, cotpay, ipn)
    with pytest.raises(SellerNotFound):
        await cotpay.payment(order.payment(partnerId=new_seller()))
    with pytest.raises(BuyerNotFound):
        await cotpay.verify_order(
            order.verify().model_copy(update={"buyerId": new_phone()}, deep=True)
        )


async def test_repeated_order_code_10400_carries_the_existing_order(
    sandbox: RunningSandbox, cotpay: CotpayClient, ipn: IpnReceiver
) -> None:
    code = f"ref-{next(_ids)}"
    first = await new_order(sandbox, cotpay, ipn, order_code=code)
    with pytest.raises(OrderCodeExists) as dup:
        await cotpay.create_order(
            CreateOrderRequest(
                partnerId=first.partner,
                buyerId=first.buyer,
                amount=150_000,
                desc="Thanh toán đơn hàng",
                ipnUrl=f"{ipn.url}/create",
                orderCode=code,
            )
        )
    assert_classified(dup.value, OrderCodeExists, 10400)
    assert dup.value.data["order"]["idOrder"] == first.id
    ledger = (await sandbox.admin.get("/sandbox/ledger")).json()["orders"]
    assert sum(1 for o in ledger if o["idOrder"] == first.id) == 1


async def test_validation_10500_through_the_raw_call(
    sandbox: RunningSandbox, cotpay: CotpayClient, ipn: IpnReceiver
) -> None:
    partner = await seller(sandbox)
    phone = await buyer(cotpay)
    answer = await cotpay.call(
        "create-order",
        {"partnerId": partner, "buyerId": phone, "amount": 29_999, "desc": "x", "ipnUrl": ipn.url},
    )
    assert answer["code"] == 10500
    assert [e["field"] for e in answer["errors"]] == ["amount"]
    answer = await cotpay.call("verify-order", {"idOrder": "12", "payMethod": "MOMO"})
    assert answer["code"] == 10500
    assert {"idOrder", "payMethod", "partnerId"} <= {e["field"] for e in answer["errors"]}
    with pytest.raises(ValidationFailed) as taken:
        await cotpay.sign_up(SignUpRequest(name="Lan", email="lan@example.vn", phone=phone))
    assert_classified(taken.value, ValidationFailed, 10500)


async def test_order_not_found_10700(
    sandbox: RunningSandbox, cotpay: CotpayClient, ipn: IpnReceiver
) -> None:
    order = await new_order(sandbox, cotpay, ipn)
    missing = order.payment(idOrder=9_999_999_999)
    with pytest.raises(OrderNotFound) as not_found:
        await cotpay.payment(missing)
    assert_classified(not_found.value, OrderNotFound, 10700)
    with pytest.raises(OrderNotFound):
        await cotpay.verify_order(
            order.verify().model_copy(update={"idOrder": 9_999_999_999}, deep=True)
        )
    with pytest.raises(OrderNotFound):
        await cotpay.return_request(
            order.return_request().model_copy(update={"idOrder": 9_999_999_999}, deep=True)
        )


async def test_payout_failed_10800(
    sandbox: RunningSandbox, cotpay: CotpayClient, ipn: IpnReceiver
) -> None:
    unpaid = await new_order(sandbox, cotpay, ipn)
    with pytest.raises(PayoutFailed) as not_held:
        await cotpay.payment(unpaid.payment())
    assert_classified(not_held.value, PayoutFailed, 10800)

    order = await new_order(sandbox, cotpay, ipn, held=True)
    await sandbox.admin.put("/sandbox/clock", json={"offsetSeconds": 2 * 86400})
    (await sandbox.admin.post(f"/sandbox/orders/{order.id}/fail-next-payout")).raise_for_status()
    with pytest.raises(PayoutFailed):
        await cotpay.payment(order.payment())
    assert (await cotpay.payment(order.payment())).code == 10100


async def test_wallet_10900_and_bank_11000_not_linked(
    sandbox: RunningSandbox, cotpay: CotpayClient, ipn: IpnReceiver
) -> None:
    order = await new_order(sandbox, cotpay, ipn, held=True)
    await sandbox.admin.put("/sandbox/clock", json={"offsetSeconds": 2 * 86400})
    users = f"/sandbox/users/{order.partner}"
    await sandbox.admin.patch(users, json={"walletLinked": False})
    with pytest.raises(WalletNotLinked) as wallet:
        await cotpay.payment(order.payment())
    assert_classified(wallet.value, WalletNotLinked, 10900)
    await sandbox.admin.patch(users, json={"walletLinked": True, "bankLinked": False})
    with pytest.raises(BankNotLinked) as bank:
        await cotpay.payment(order.payment())
    assert_classified(bank.value, BankNotLinked, 11000)
    await sandbox.admin.patch(users, json={"bankLinked": True})
    assert (await cotpay.payment(order.payment())).code == 10100


async def test_information_mismatch_11300(
    sandbox: RunningSandbox, cotpay: CotpayClient, ipn: IpnReceiver
) -> None:
    order = await new_order(sandbox, cotpay, ipn, held=True)
    other_buyer = await buyer(cotpay)
    with pytest.raises(InformationMismatch) as mismatch:
        await cotpay.payment(order.payment(buyerId=other_buyer))
    assert_classified(mismatch.value, InformationMismatch, 11300)
    with pytest.raises(InformationMismatch):
        await cotpay.return_request(
            order.return_request().model_copy(update={"partnerId": await seller(sandbox)})
        )


async def test_bad_token_or_app_id_11400(sandbox: RunningSandbox, ipn: IpnReceiver) -> None:
    good = sandbox.cotpay_settings()
    for bad in (
        good.model_copy(update={"access_token": SecretStr("not-the-token")}),
        good.model_copy(update={"access_token": SecretStr("")}),
        good.model_copy(update={"app_id": "someone-else"}),
    ):
        async with CotpayClient(bad) as client:
            with pytest.raises(TokenMissing) as token:
                await client.customer_id(CustomerIdRequest(partnerId="S1", buyerId="B1"))
        assert_classified(token.value, TokenMissing, 11400)
        assert "not-the-token" not in str(token.value)


async def test_order_busy_11800_is_retryable(
    sandbox: RunningSandbox, cotpay: CotpayClient, ipn: IpnReceiver
) -> None:
    order = await new_order(sandbox, cotpay, ipn, held=True)
    await sandbox.admin.put("/sandbox/clock", json={"offsetSeconds": 2 * 86400})
    await sandbox.admin.put("/sandbox/faults", json={"latencyMs": 400})
    results = await asyncio.gather(
        cotpay.payment(order.payment()),
        cotpay.payment(order.payment()),
        return_exceptions=True,
    )
    busy = [r for r in results if isinstance(r, OrderBusy)]
    done = [r for r in results if not isinstance(r, BaseException)]
    assert len(busy) == 1 and len(done) == 1, results
    assert_classified(busy[0], OrderBusy, 11800)
    await sandbox.admin.put("/sandbox/faults", json={})
    assert (await cotpay.payment(order.payment())).data == done[0].data


# --- transport and protocol failures ----------------------------------------------------------


async def test_injected_503_is_a_retryable_transport_error(
    sandbox: RunningSandbox, cotpay: CotpayClient
) -> None:
    await sandbox.admin.put("/sandbox/faults", json={"errorRate": 1.0})
    with pytest.raises(CotpayTransportError) as down:
        await cotpay.customer_id(CustomerIdRequest(partnerId="S1", buyerId="B1"))
    assert down.value.retryable and down.value.status == 503


async def test_slow_answer_is_a_retryable_timeout(sandbox: RunningSandbox) -> None:
    await sandbox.admin.put("/sandbox/faults", json={"latencyMs": 1500})
    settings = sandbox.cotpay_settings().model_copy(update={"read_timeout": 0.3})
    async with CotpayClient(settings) as client:
        with pytest.raises(CotpayTransportError, match="timed out") as slow:
            await client.customer_id(CustomerIdRequest(partnerId="S1", buyerId="B1"))
    assert slow.value.retryable and slow.value.status is None


async def test_nothing_listening_is_a_retryable_transport_error(sandbox: RunningSandbox) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = sandbox.cotpay_settings().model_copy(update={"base_url": f"http://127.0.0.1:{port}"})
    async with CotpayClient(settings) as client:
        with pytest.raises(CotpayTransportError) as refused:
            await client.customer_id(CustomerIdRequest(partnerId="S1", buyerId="B1"))
    assert refused.value.retryable


async def test_wrong_cotpay_key_is_a_protocol_error(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    wrong = tmp_path / "not_cotpay_public.pem"
    wrong.write_bytes(public_pem(generate_private_key().public_key()))
    settings = sandbox.cotpay_settings().model_copy(update={"public_key_file": wrong})
    async with CotpayClient(settings) as client:
        with pytest.raises(CotpayProtocolError, match="HTTP 400") as refused:
            await client.customer_id(CustomerIdRequest(partnerId="S1", buyerId="B1"))
    assert not refused.value.retryable


async def test_plain_client_against_sealed_sandbox_is_a_protocol_error(
    sandbox: RunningSandbox,
) -> None:
    settings = sandbox.cotpay_settings().model_copy(update={"envelope": "plain"})
    async with CotpayClient(settings) as client:
        with pytest.raises(CotpayProtocolError) as refused:
            await client.customer_id(CustomerIdRequest(partnerId="S1", buyerId="B1"))
    assert not refused.value.retryable


async def test_plain_mode_end_to_end(tmp_path_factory: pytest.TempPathFactory) -> None:
    keys = tmp_path_factory.mktemp("plain-keys")
    async with running_sandbox(keys, envelope="plain") as sb:
        assert sb.cotpay_settings().envelope == "plain"
        async with CotpayClient(sb.cotpay_settings()) as client:
            phone = new_phone()
            signed = await client.sign_up(
                SignUpRequest(name="Lan", email="lan@example.vn", phone=phone)
            )
            assert signed.data == phone
            with pytest.raises(SellerNotFound):
                await client.customer_id(CustomerIdRequest(partnerId="S9", buyerId=phone))


# --- the api command against the sandbox ------------------------------------------------------


async def run_cli(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "starter.cli",
        "api",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8"), err.decode("utf-8")


async def test_api_command_with_credentials_env(
    sandbox: RunningSandbox, cotpay: CotpayClient
) -> None:
    env = str(sandbox.credentials_file)
    partner = await seller(sandbox)
    phone = await buyer(cotpay)
    code, out, err = await run_cli(
        "customerID", "--env-file", env, "--partner-id", partner, "--buyer-id", phone
    )
    assert code == 0, err
    assert f'"id": "{phone}"' in out
    code, out, _ = await run_cli(
        "create-order",
        "--env-file",
        env,
        "--skip-validation",
        "--partner-id",
        partner,
        "--buyer-id",
        phone,
        "--amount",
        "100",
    )
    assert code == 1
    assert '"code": 10500' in out
    code, _, err = await run_cli("create-order", "--env-file", env, "--amount", "100")
    assert code == 2 and "--amount" in err
