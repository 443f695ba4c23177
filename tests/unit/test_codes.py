"""Every code of DESIGN.md 3.2 maps to its typed error and retryable flag."""

from __future__ import annotations

import pytest

from cotpay.codes import (
    CODES,
    SUCCESS,
    BankNotLinked,
    BuyerNotFound,
    CotpayCodeError,
    CotpayError,
    CotpayProtocolError,
    CotpayTransportError,
    ErrorKind,
    InformationMismatch,
    OrderBusy,
    OrderCodeExists,
    OrderNotFound,
    PayoutFailed,
    PayoutTooEarly,
    SellerNotFound,
    TokenMissing,
    UnknownCode,
    ValidationFailed,
    WalletNotLinked,
    code_info,
    error_for,
)

DESIGN_TABLE: list[tuple[int, type[CotpayCodeError], ErrorKind, bool]] = [
    (10200, SellerNotFound, ErrorKind.BUSINESS, False),
    (10300, BuyerNotFound, ErrorKind.BUSINESS, False),
    (10400, OrderCodeExists, ErrorKind.BUSINESS, False),
    (10500, ValidationFailed, ErrorKind.VALIDATION, False),
    (10700, OrderNotFound, ErrorKind.NOT_FOUND, False),
    (10800, PayoutFailed, ErrorKind.BUSINESS, False),
    (10900, WalletNotLinked, ErrorKind.BUSINESS, False),
    (11000, BankNotLinked, ErrorKind.BUSINESS, False),
    (11100, PayoutTooEarly, ErrorKind.TIMING, False),
    (11300, InformationMismatch, ErrorKind.BUSINESS, False),
    (11400, TokenMissing, ErrorKind.CONFIG, False),
    (11800, OrderBusy, ErrorKind.TRANSIENT, True),
]


@pytest.mark.parametrize(("code", "cls", "kind", "retryable"), DESIGN_TABLE)
def test_code_maps_to_class_and_retryable_flag(
    code: int, cls: type[CotpayCodeError], kind: ErrorKind, retryable: bool
) -> None:
    err = error_for(code, "Cotpay says no", endpoint="payment", data={"code": code})
    assert type(err) is cls
    assert err.code == code
    assert err.kind is kind
    assert err.retryable is retryable
    assert err.name == cls.__name__
    assert err.endpoint == "payment"
    assert err.data == {"code": code}
    assert str(err) == f"Cotpay {code} {cls.__name__} on payment: Cotpay says no"
    assert isinstance(err, CotpayError)


def test_table_covers_exactly_the_documented_codes() -> None:
    assert set(CODES) == {SUCCESS} | {code for code, *_ in DESIGN_TABLE}
    assert code_info(SUCCESS).kind is ErrorKind.SUCCESS


def test_empty_message_falls_back_to_the_table() -> None:
    err = error_for(11100, "")
    assert err.message == "Request the payout after 16:00 on T+1"
    assert str(err) == "Cotpay 11100 PayoutTooEarly: Request the payout after 16:00 on T+1"


def test_unknown_code_is_a_non_retryable_business_error() -> None:
    err = error_for(12345, "?")
    assert type(err) is UnknownCode
    assert err.kind is ErrorKind.BUSINESS
    assert not err.retryable
    assert code_info(12345).name == "UnknownCode"


def test_transport_errors_are_retryable_and_protocol_errors_not() -> None:
    transport = CotpayTransportError("HTTP 503", endpoint="payment", status=503)
    assert transport.retryable and transport.status == 503 and transport.name == "Transport"
    protocol = CotpayProtocolError("not JSON", endpoint="payment")
    assert not protocol.retryable and protocol.name == "Protocol"
