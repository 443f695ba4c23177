"""Request models of Cotpay's endpoints: documented lengths, amounts, strict integers, enums."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from cotpay import models
from cotpay.models import (
    ENDPOINTS,
    ENDPOINTS_BY_PATH,
    MIN_AMOUNT,
    CotpayRequest,
    CreateOrderRequest,
    CreateOrderResponse,
    CustomerIdRequest,
    CustomerIdResponse,
    PaymentRequest,
    PayMethod,
    ReturnRequest,
    SignUpRequest,
    VerifyOrderRequest,
)

IPN = "https://shop.example/ipn/o-1/create?sig=abc"


def order(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "partnerId": "S1234567",
        "buyerId": "0912345678",
        "amount": 30_000,
        "desc": "Thanh toán đơn hàng",
        "ipnUrl": IPN,
    }
    base.update(changes)
    return base


def verify(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "idOrder": 12,
        "partnerId": "S1234567",
        "buyerId": "0912345678",
        "payMethod": "VIETQR",
        "ipnUrl": IPN,
    }
    base.update(changes)
    return base


def field_errors(model: type[CotpayRequest], data: dict[str, Any]) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return {".".join(str(p) for p in e["loc"]) for e in caught.value.errors()}


def test_valid_create_order_and_wire_form() -> None:
    request = CreateOrderRequest.model_validate(order(orderCode="o-1"))
    assert request.wire() == {**order(), "orderCode": "o-1"}
    assert "agentId" not in request.wire()


def test_wire_drops_order_code_when_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "SEND_ORDER_CODE", False)
    assert "orderCode" not in CreateOrderRequest.model_validate(order(orderCode="o-1")).wire()


@pytest.mark.parametrize("amount", [MIN_AMOUNT, 30_001, 10**9])
def test_amount_at_or_above_minimum(amount: int) -> None:
    assert CreateOrderRequest.model_validate(order(amount=amount)).amount == amount


@pytest.mark.parametrize("amount", [29_999, 0, -30_000])
def test_amount_below_minimum(amount: int) -> None:
    assert field_errors(CreateOrderRequest, order(amount=amount)) == {"amount"}


@pytest.mark.parametrize("amount", [30_000.0, 45_000.5, True, "30000", None])
def test_amount_is_a_strict_integer(amount: Any) -> None:
    assert field_errors(CreateOrderRequest, order(amount=amount)) == {"amount"}


@pytest.mark.parametrize("id_order", [12.0, True, False, "12", 0, -1, 10_000_000_000])
def test_id_order_is_a_strict_ten_digit_integer(id_order: Any) -> None:
    for model in (VerifyOrderRequest, PaymentRequest, ReturnRequest):
        data = verify(idOrder=id_order)
        if model is not VerifyOrderRequest:
            data.pop("payMethod")
        assert field_errors(model, data) == {"idOrder"}


def test_id_order_upper_bound() -> None:
    assert VerifyOrderRequest.model_validate(verify(idOrder=9_999_999_999)).idOrder == 9_999_999_999


@pytest.mark.parametrize("field", ["partnerId", "buyerId", "agentId"])
def test_ids_are_at_most_ten_characters(field: str) -> None:
    assert CreateOrderRequest.model_validate(order(**{field: "A" * 10}))
    assert field_errors(CreateOrderRequest, order(**{field: "A" * 11})) == {field}
    assert field_errors(CreateOrderRequest, order(**{field: ""})) == {field}


def test_desc_is_at_most_255_characters() -> None:
    assert CreateOrderRequest.model_validate(order(desc="đ" * 255))
    assert field_errors(CreateOrderRequest, order(desc="đ" * 256)) == {"desc"}


def test_ipn_url_is_at_most_255_characters() -> None:
    url = "https://shop.example/" + "a" * (255 - len("https://shop.example/"))
    assert len(url) == 255
    assert CreateOrderRequest.model_validate(order(ipnUrl=url))
    assert field_errors(CreateOrderRequest, order(ipnUrl=url + "a")) == {"ipnUrl"}
    payment = {k: v for k, v in verify(ipnUrl=url + "a").items() if k != "payMethod"}
    assert field_errors(PaymentRequest, payment) == {"ipnUrl"}


@pytest.mark.parametrize("method", [m.value for m in PayMethod])
def test_pay_method_accepts_the_documented_methods(method: str) -> None:
    assert VerifyOrderRequest.model_validate(verify(payMethod=method)).payMethod == method


@pytest.mark.parametrize("method", ["vietqr", "MOMO", "", 1])
def test_pay_method_refuses_others(method: Any) -> None:
    assert field_errors(VerifyOrderRequest, verify(payMethod=method)) == {"payMethod"}


def test_pay_methods_are_the_six_documented() -> None:
    assert {m.value for m in PayMethod} == {
        "PAYME",
        "ATMCARD",
        "QRPAY",
        "BANKTRANSFER",
        "VIETQR",
        "CREDITCARD",
    }


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (CreateOrderRequest, order()),
        (CustomerIdRequest, {"partnerId": "S1", "buyerId": "0912345678"}),
        (VerifyOrderRequest, verify()),
        (SignUpRequest, {"name": "Lan", "email": "lan@example.vn", "phone": "0912345678"}),
    ],
)
def test_extra_fields_are_forbidden(model: type[CotpayRequest], data: dict[str, Any]) -> None:
    assert field_errors(model, {**data, "surprise": 1}) == {"surprise"}


def test_missing_fields_are_reported() -> None:
    assert field_errors(CreateOrderRequest, {}) == {
        "partnerId",
        "buyerId",
        "amount",
        "desc",
        "ipnUrl",
    }


@pytest.mark.parametrize("code", ["o 1", "o/1", "", "x" * 65, "đơn"])
def test_order_code_pattern(code: str) -> None:
    assert field_errors(CreateOrderRequest, order(orderCode=code)) == {"orderCode"}


@pytest.mark.parametrize("phone", ["912345678", "09123456789", "1912345678", "09123a5678"])
def test_sign_up_phone_is_ten_digits_starting_with_zero(phone: str) -> None:
    data = {"name": "Lan", "email": "lan@example.vn", "phone": phone}
    assert field_errors(SignUpRequest, data) == {"phone"}


def test_sign_up_email_and_name() -> None:
    data = {"name": "Nguyễn Thị Lan", "email": "lan@example.vn", "phone": "0912345678"}
    assert SignUpRequest.model_validate(data)
    assert field_errors(SignUpRequest, {**data, "email": "not-an-email"}) == {"email"}
    assert field_errors(SignUpRequest, {**data, "name": ""}) == {"name"}
    assert field_errors(SignUpRequest, {**data, "name": "n" * 101}) == {"name"}


def test_requests_are_frozen() -> None:
    request = CustomerIdRequest(partnerId="S1", buyerId="B1")
    with pytest.raises(ValidationError):
        request.partnerId = "S2"  # type: ignore[misc]


def test_responses_keep_unknown_fields() -> None:
    answer = CreateOrderResponse.model_validate(
        {"code": 10100, "message": "ok", "order": {"idOrder": 3, "qr": "x"}, "extra": 1}
    )
    assert answer.order is not None and answer.order.model_extra == {"qr": "x"}
    assert answer.model_extra == {"extra": 1}
    user = CustomerIdResponse.model_validate({"code": 10100, "user": {"id": "0912345678"}})
    assert user.user is not None and user.user.id == "0912345678"


def test_endpoint_registry() -> None:
    assert set(ENDPOINTS) == {
        "create-order",
        "customerID",
        "verify-order",
        "payment",
        "return-request",
        "sign-up",
    }
    for name, endpoint in ENDPOINTS.items():
        assert endpoint.path == f"/api/web-ecommerce/{name}"
        assert ENDPOINTS_BY_PATH[endpoint.path] is endpoint
        assert 10100 in endpoint.codes and 11400 in endpoint.codes
    assert 11100 in ENDPOINTS["payment"].codes
    assert 10400 in ENDPOINTS["create-order"].codes
