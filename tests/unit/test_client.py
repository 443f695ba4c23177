"""CotpayClient against a fake Cotpay played by ``httpx.MockTransport`` (sealed answers)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from cotpay.client import CotpayClient
from cotpay.codes import (
    CODES,
    SUCCESS,
    CotpayCodeError,
    CotpayProtocolError,
    CotpayTransportError,
    OrderBusy,
    TokenMissing,
    UnknownCode,
    error_for,
)
from cotpay.envelope import (
    EncryptedEnvelope,
    Opened,
    generate_private_key,
    private_pem,
    public_pem,
    rsa_decrypt,
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
from cotpay.settings import CotpaySettings

TOKEN = "tok-3f9a1c-very-secret"
APP_ID = "shop-app"
EMAIL = "lan.nguyen@example.vn"
PHONE = "0912345678"
IPN = "https://shop.example/ipn/o-1/payment?sig=abc"

Reply = Callable[[Opened], "dict[str, Any] | httpx.Response"]


class FakeCotpay:
    """Opens each request like Cotpay would and answers with ``reply`` (sealed by default)."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.server = EncryptedEnvelope(
            peer_public_key=keys.merchant.public_key(), own_private_key=keys.cotpay
        )
        self.seen: list[Opened] = []
        self.passphrases: list[str] = []
        self.reply: Reply = lambda opened: {"code": SUCCESS, "message": "ok", "data": "x"}

    def sealed(
        self, payload: Any, *, path: str, status: int = 200, server: EncryptedEnvelope | None = None
    ) -> httpx.Response:
        sealed = (server or self.server).seal(payload, path=path, access_token=TOKEN, app_id=APP_ID)
        return httpx.Response(status, headers=sealed.headers, content=sealed.body)

    def handler(self, request: httpx.Request) -> httpx.Response:
        opened = self.server.open(request.headers, request.content)
        self.seen.append(opened)
        self.passphrases.append(rsa_decrypt(request.headers["x-api-key"], self.keys.cotpay))
        result = self.reply(opened)
        if isinstance(result, httpx.Response):
            return result
        return self.sealed(result, path=opened.path)


class Keys:
    def __init__(self, directory: Path) -> None:
        self.cotpay = generate_private_key()
        self.merchant = generate_private_key()
        self.cotpay_public = directory / "cotpay_public.pem"
        self.merchant_private = directory / "merchant_private.pem"
        self.cotpay_public.write_bytes(public_pem(self.cotpay.public_key()))
        self.merchant_private.write_bytes(private_pem(self.merchant))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("keys"))


def settings_for(keys: Keys, **overrides: Any) -> CotpaySettings:
    values: dict[str, Any] = {
        "base_url": "http://cotpay.test",
        "app_id": APP_ID,
        "access_token": TOKEN,
        "public_key_file": keys.cotpay_public,
        "private_key_file": keys.merchant_private,
        "envelope": "encrypted",
        "connect_timeout": 1.5,
        "read_timeout": 4.0,
    }
    values.update(overrides)
    return CotpaySettings(**values)


@pytest.fixture
def fake(keys: Keys) -> FakeCotpay:
    return FakeCotpay(keys)


@pytest.fixture
async def client(keys: Keys, fake: FakeCotpay):
    async with CotpayClient(
        settings_for(keys), transport=httpx.MockTransport(fake.handler)
    ) as cotpay:
        yield cotpay


def create_request() -> CreateOrderRequest:
    return CreateOrderRequest(
        partnerId="S1234567",
        buyerId=PHONE,
        amount=150_000,
        desc="Thanh toán đơn hàng",
        ipnUrl=IPN,
        orderCode="o-1",
    )


def payment_request() -> PaymentRequest:
    return PaymentRequest(idOrder=42, partnerId="S1234567", buyerId=PHONE, ipnUrl=IPN)


async def test_create_order_success(client: CotpayClient, fake: FakeCotpay) -> None:
    fake.reply = lambda opened: {
        "code": 10100,
        "message": "Tạo đơn thành công",
        "order": {"idOrder": 42, "partnerId": "S1234567", "amount": 150_000, "status": "NEW"},
    }
    answer = await client.create_order(create_request())
    assert answer.code == SUCCESS
    assert answer.order is not None and answer.order.idOrder == 42
    (seen,) = fake.seen
    assert seen.path == "/api/web-ecommerce/create-order"
    assert seen.access_token == TOKEN
    assert seen.app_id == APP_ID
    assert seen.payload == create_request().wire()
    assert seen.payload["desc"] == "Thanh toán đơn hàng"


@pytest.mark.parametrize(
    ("method", "request_obj", "path"),
    [
        (
            "customer_id",
            CustomerIdRequest(partnerId="S1234567", buyerId=PHONE),
            "/api/web-ecommerce/customerID",
        ),
        (
            "verify_order",
            VerifyOrderRequest(
                idOrder=42,
                partnerId="S1234567",
                buyerId=PHONE,
                payMethod=PayMethod.VIETQR,
                ipnUrl=IPN,
            ),
            "/api/web-ecommerce/verify-order",
        ),
        ("payment", payment_request(), "/api/web-ecommerce/payment"),
        (
            "return_request",
            ReturnRequest(idOrder=42, partnerId="S1234567", buyerId=PHONE, ipnUrl=IPN),
            "/api/web-ecommerce/return-request",
        ),
        (
            "sign_up",
            SignUpRequest(name="Lan", email=EMAIL, phone=PHONE),
            "/api/web-ecommerce/sign-up",
        ),
    ],
)
async def test_every_endpoint_posts_to_its_path(
    client: CotpayClient, fake: FakeCotpay, method: str, request_obj: Any, path: str
) -> None:
    fake.reply = lambda opened: {"code": 10100, "message": "ok", "data": "payload"}
    answer = await getattr(client, method)(request_obj)
    assert answer.code == SUCCESS
    assert fake.seen[-1].path == path
    assert fake.seen[-1].payload == request_obj.wire()


async def test_wrong_request_type_is_refused(client: CotpayClient) -> None:
    with pytest.raises(TypeError):
        await client.payment(create_request())  # type: ignore[arg-type]


@pytest.mark.parametrize("code", [*sorted(c for c in CODES if c != SUCCESS), 12345])
async def test_each_code_raises_its_typed_error(
    client: CotpayClient, fake: FakeCotpay, code: int
) -> None:
    fake.reply = lambda opened: {"code": code, "message": f"m{code}", "data": None}
    with pytest.raises(CotpayCodeError) as caught:
        await client.payment(payment_request())
    err = caught.value
    expected = error_for(code, "")
    assert type(err) is type(expected)
    assert err.code == code
    assert err.retryable is expected.retryable
    assert err.endpoint == "payment"
    assert err.message == f"m{code}"
    assert err.data["code"] == code
    if code == 12345:
        assert isinstance(err, UnknownCode) and not err.retryable
    if code == 11800:
        assert isinstance(err, OrderBusy) and err.retryable


async def test_raw_call_returns_any_code(client: CotpayClient, fake: FakeCotpay) -> None:
    fake.reply = lambda opened: {"code": 10500, "message": "amount too small", "errors": ["amount"]}
    answer = await client.call("create-order", {"amount": 5})
    assert answer == {"code": 10500, "message": "amount too small", "errors": ["amount"]}
    assert fake.seen[-1].payload == {"amount": 5}


async def test_raw_call_unknown_endpoint(client: CotpayClient) -> None:
    with pytest.raises(ValueError, match="unknown Cotpay endpoint"):
        await client.call("refund-everything", {})


async def test_string_code_is_accepted(client: CotpayClient, fake: FakeCotpay) -> None:
    fake.reply = lambda opened: {"code": "11100", "message": "too early"}
    with pytest.raises(CotpayCodeError) as caught:
        await client.payment(payment_request())
    assert caught.value.code == 11100


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_http_5xx_is_a_retryable_transport_error(
    client: CotpayClient, fake: FakeCotpay, status: int
) -> None:
    fake.reply = lambda opened: httpx.Response(status, text="upstream down")
    with pytest.raises(CotpayTransportError) as caught:
        await client.payment(payment_request())
    assert caught.value.retryable
    assert caught.value.status == status
    assert caught.value.endpoint == "payment"


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ConnectError("connection refused"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.ReadError("connection reset"),
    ],
)
async def test_timeouts_and_resets_are_retryable(keys: Keys, exc: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    async with CotpayClient(settings_for(keys), transport=httpx.MockTransport(handler)) as cotpay:
        with pytest.raises(CotpayTransportError) as caught:
            await cotpay.create_order(create_request())
    assert caught.value.retryable
    assert caught.value.status is None


async def test_client_does_not_retry(keys: Keys) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503)

    async with CotpayClient(settings_for(keys), transport=httpx.MockTransport(handler)) as cotpay:
        with pytest.raises(CotpayTransportError):
            await cotpay.payment(payment_request())
    assert calls == 1


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>gateway</html>"),
        httpx.Response(200, json={"x-api-message": "U2FsdGVkX1-not-really"}),
        httpx.Response(200, json={"code": 10100, "message": "plain"}),
        httpx.Response(200, content=b""),
        httpx.Response(404, json={"detail": "Not Found"}),
        httpx.Response(401, text="unauthorized"),
        httpx.Response(302, headers={"location": "/login"}),
    ],
)
async def test_unreadable_answers_are_protocol_errors(
    client: CotpayClient, fake: FakeCotpay, response: httpx.Response
) -> None:
    fake.reply = lambda opened: response
    with pytest.raises(CotpayProtocolError) as caught:
        await client.payment(payment_request())
    assert not caught.value.retryable
    assert caught.value.endpoint == "payment"


async def test_answer_for_another_path_is_refused(client: CotpayClient, fake: FakeCotpay) -> None:
    fake.reply = lambda opened: fake.sealed(
        {"code": 10100, "message": "ok"}, path="/api/web-ecommerce/return-request"
    )
    with pytest.raises(CotpayProtocolError, match="another path"):
        await client.payment(payment_request())


async def test_answer_sealed_for_another_merchant_is_refused(
    client: CotpayClient, fake: FakeCotpay
) -> None:
    other = EncryptedEnvelope(
        peer_public_key=generate_private_key().public_key(), own_private_key=None
    )
    fake.reply = lambda opened: fake.sealed(
        {"code": 10100, "message": "ok"}, path=opened.path, server=other
    )
    with pytest.raises(CotpayProtocolError, match="bad_key"):
        await client.payment(payment_request())


@pytest.mark.parametrize("payload", [[1, 2], {"message": "no code"}, {"code": True}, "text"])
async def test_answer_without_numeric_code_is_refused(
    client: CotpayClient, fake: FakeCotpay, payload: Any
) -> None:
    fake.reply = lambda opened: payload
    with pytest.raises(CotpayProtocolError):
        await client.call("payment", payment_request().wire())


async def test_success_with_unexpected_shape_is_protocol_error(
    client: CotpayClient, fake: FakeCotpay
) -> None:
    fake.reply = lambda opened: {"code": 10100, "message": "ok", "order": {"amount": 1}}
    with pytest.raises(CotpayProtocolError, match=r"order\.idOrder"):
        await client.create_order(create_request())


async def test_coded_answer_under_http_4xx_keeps_its_code(
    client: CotpayClient, fake: FakeCotpay
) -> None:
    fake.reply = lambda opened: fake.sealed(
        {"code": 11400, "message": "no token"}, path=opened.path, status=401
    )
    with pytest.raises(TokenMissing):
        await client.payment(payment_request())


async def test_plain_mode(keys: Keys) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"code": 10100, "message": "ok", "data": "qr"})

    settings = settings_for(keys, envelope="plain", public_key_file=None, private_key_file=None)
    async with CotpayClient(settings, transport=httpx.MockTransport(handler)) as cotpay:
        answer = await cotpay.payment(payment_request())
    assert answer.data == "qr"
    (request,) = seen
    assert request.url == "http://cotpay.test/api/web-ecommerce/payment"
    assert request.headers["x-api-action"] == "/api/web-ecommerce/payment"
    assert request.headers["authorization"] == TOKEN
    assert request.headers["x-api-client"] == APP_ID


async def test_plain_mode_refuses_sealed_answer(keys: Keys, fake: FakeCotpay) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return fake.sealed({"code": 10100}, path="/api/web-ecommerce/payment")

    settings = settings_for(keys, envelope="plain")
    async with CotpayClient(settings, transport=httpx.MockTransport(handler)) as cotpay:
        with pytest.raises(CotpayProtocolError, match="sealed"):
            await cotpay.payment(payment_request())


async def test_plain_mode_refuses_answer_for_another_path(keys: Keys) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"code": 10100}, headers={"x-api-action": "/api/web-ecommerce/sign-up"}
        )

    settings = settings_for(keys, envelope="plain")
    async with CotpayClient(settings, transport=httpx.MockTransport(handler)) as cotpay:
        with pytest.raises(CotpayProtocolError, match="another path"):
            await cotpay.payment(payment_request())


def test_encrypted_mode_needs_both_keys(keys: Keys) -> None:
    with pytest.raises(ValueError, match="COTPAY_PUBLIC_KEY_FILE"):
        CotpayClient(settings_for(keys, public_key_file=None))


async def test_timeouts_and_pool_come_from_settings(keys: Keys) -> None:
    settings = settings_for(keys, max_connections=7)
    async with CotpayClient(settings) as cotpay:
        http = cotpay._http
        assert http.timeout.connect == 1.5
        assert http.timeout.read == 4.0
        assert str(http.base_url) == "http://cotpay.test"
        pool = http._transport._pool  # type: ignore[attr-defined]
        assert pool._max_connections == 7


def test_from_settings_reads_environment(keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COTPAY_ENVELOPE", "plain")
    monkeypatch.setenv("COTPAY_BASE_URL", "http://cotpay.env:9")
    monkeypatch.setenv("COTPAY_READ_TIMEOUT", "3")
    cotpay = CotpayClient.from_settings()
    assert cotpay.settings.base_url == "http://cotpay.env:9"
    assert cotpay.settings.read_timeout == 3.0


async def test_one_log_line_per_call_without_secrets(
    client: CotpayClient, fake: FakeCotpay
) -> None:
    fake.reply = lambda opened: {
        "code": 10100,
        "message": "ok",
        "order": {"idOrder": 77, "buyerId": PHONE},
    }
    with capture_logs() as logs:
        await client.create_order(create_request())
    calls = [entry for entry in logs if entry["event"] == "cotpay.call"]
    assert len(calls) == 1
    (line,) = calls
    assert line["endpoint"] == "create-order"
    assert line["code"] == 10100
    assert line["idOrder"] == 77
    assert isinstance(line["duration_ms"], int)
    text = repr(logs)
    for secret in (TOKEN, PHONE, "Thanh toán", IPN, *fake.passphrases):
        assert secret not in text


async def test_errors_and_their_logs_hold_no_secrets(
    client: CotpayClient, fake: FakeCotpay, keys: Keys
) -> None:
    key_pem = keys.merchant_private.read_text()
    secrets = [TOKEN, EMAIL, PHONE, key_pem[40:80]]
    texts: list[str] = []
    replies: list[Reply] = [
        lambda opened: {"code": 10300, "message": f"Không tìm thấy {PHONE} / {EMAIL}"},
        lambda opened: {"code": 10100, "message": "ok", "order": {"buyerId": PHONE}},
        lambda opened: httpx.Response(503, text=f"{TOKEN} {EMAIL}"),
        lambda opened: httpx.Response(400, text=f"bad token {TOKEN}"),
        lambda opened: fake.sealed({"code": 1}, path=f"/x/{PHONE}"),
    ]
    with capture_logs() as logs:
        for reply in replies:
            fake.reply = reply
            with pytest.raises(Exception) as caught:
                await client.create_order(
                    CreateOrderRequest(
                        partnerId="S1234567",
                        buyerId=PHONE,
                        amount=30_000,
                        desc=EMAIL,
                        ipnUrl=IPN,
                    )
                )
            texts.append(str(caught.value))
            texts.append(repr(caught.value.args))
        with pytest.raises(CotpayTransportError) as timeout:
            fake.reply = lambda opened: (_ for _ in ()).throw(httpx.ReadTimeout(TOKEN))
            await client.sign_up(SignUpRequest(name="Lan", email=EMAIL, phone=PHONE))
        texts.append(str(timeout.value))
    assert "[phone]" in texts[0] and "[email]" in texts[0]
    everything = "\n".join(texts) + repr(logs)
    for secret in [*secrets, *fake.passphrases]:
        assert secret not in everything
    assert len([e for e in logs if e["event"] == "cotpay.call"]) == len(replies) + 1


async def test_connection_pool_is_shared_across_calls(keys: Keys, fake: FakeCotpay) -> None:
    cotpay = CotpayClient(settings_for(keys), transport=httpx.MockTransport(fake.handler))
    http = cotpay._http
    await cotpay.payment(payment_request())
    await cotpay.payment(payment_request())
    assert cotpay._http is http
    await cotpay.aclose()
    assert http.is_closed
