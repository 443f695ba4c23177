"""Typed requests and responses of Cotpay's six endpoints (reference/cotpay-api.md).

Lengths are the documented ``String(n)``; amounts are strict integers (no floats, no booleans)
of at least 30,000 VND; ``ipnUrl`` is at most 255 characters.

ASSUMPTIONS kept here:
* ``create-order`` takes an optional ``orderCode`` (the merchant's own order reference). Cotpay
  documents code 10400 "order code already exists" but no field carrying an order code; we send
  the shop's ``orderRef`` there so that a repeated create is refused instead of creating a
  second order. ``SEND_ORDER_CODE`` turns it off for a Cotpay that rejects unknown fields.
* sign-up's ``name`` and ``email`` are printed as ``String(10)``, which looks like a copy error;
  we allow 100 and 254 characters. ``phone`` (the customer id) is 10 digits starting with 0.
* The ``order`` object of create-order and the ``user`` object of customerID are undocumented;
  we model the fields our sandbox returns and keep any others.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

SEND_ORDER_CODE = True
MIN_AMOUNT = 30_000
MAX_ID_ORDER = 9_999_999_999  # Integer(10)

CotpayId = Annotated[str, StringConstraints(min_length=1, max_length=10, strip_whitespace=False)]
IpnUrl = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Amount = Annotated[StrictInt, Field(ge=MIN_AMOUNT)]
IdOrder = Annotated[StrictInt, Field(ge=1, le=MAX_ID_ORDER)]
Description = Annotated[str, StringConstraints(max_length=255)]
OrderCode = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]
Phone = Annotated[str, StringConstraints(pattern=r"^0[0-9]{9}$")]


class PayMethod(StrEnum):
    PAYME = "PAYME"
    ATMCARD = "ATMCARD"
    QRPAY = "QRPAY"
    BANKTRANSFER = "BANKTRANSFER"
    VIETQR = "VIETQR"
    CREDITCARD = "CREDITCARD"


class CotpayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class CreateOrderRequest(CotpayRequest):
    partnerId: CotpayId
    buyerId: CotpayId
    amount: Amount
    desc: Description
    agentId: CotpayId | None = None
    ipnUrl: IpnUrl
    orderCode: OrderCode | None = None

    def wire(self) -> dict[str, Any]:
        data = super().wire()
        if not SEND_ORDER_CODE:
            data.pop("orderCode", None)
        return data


class CustomerIdRequest(CotpayRequest):
    partnerId: CotpayId
    buyerId: CotpayId


class VerifyOrderRequest(CotpayRequest):
    idOrder: IdOrder
    partnerId: CotpayId
    buyerId: CotpayId
    payMethod: PayMethod
    ipnUrl: IpnUrl


class PaymentRequest(CotpayRequest):
    idOrder: IdOrder
    partnerId: CotpayId
    buyerId: CotpayId
    ipnUrl: IpnUrl


class ReturnRequest(CotpayRequest):
    idOrder: IdOrder
    partnerId: CotpayId
    buyerId: CotpayId
    ipnUrl: IpnUrl


class SignUpRequest(CotpayRequest):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    email: Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
    phone: Phone
    agentId: CotpayId | None = None


class CotpayOrder(BaseModel):
    model_config = ConfigDict(extra="allow")

    idOrder: int
    partnerId: str = ""
    buyerId: str = ""
    amount: int = 0
    desc: str = ""
    status: str = ""
    orderCode: str | None = None
    createdAt: str | None = None


class CotpayUser(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    name: str | None = None
    walletLinked: bool | None = None
    bankLinked: bool | None = None


class CotpayResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: int
    message: str = ""


class CreateOrderResponse(CotpayResponse):
    order: CotpayOrder | None = None


class CustomerIdResponse(CotpayResponse):
    seller: CotpayUser | None = None
    user: CotpayUser | None = None


class DataResponse(CotpayResponse):
    data: str | None = None


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    request: type[CotpayRequest]
    response: type[CotpayResponse]
    codes: tuple[int, ...]
    summary: str


BASE_PATH = "/api/web-ecommerce"

ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint(
            "create-order",
            f"{BASE_PATH}/create-order",
            CreateOrderRequest,
            CreateOrderResponse,
            (10100, 10200, 10300, 10400, 10500, 11400),
            "Create an escrow order",
        ),
        Endpoint(
            "customerID",
            f"{BASE_PATH}/customerID",
            CustomerIdRequest,
            CustomerIdResponse,
            (10100, 10200, 10300, 10500, 11400),
            "Check seller and buyer ids",
        ),
        Endpoint(
            "verify-order",
            f"{BASE_PATH}/verify-order",
            VerifyOrderRequest,
            DataResponse,
            (10100, 10200, 10300, 10500, 10700, 11400),
            "Start the held payment; returns the payment data",
        ),
        Endpoint(
            "payment",
            f"{BASE_PATH}/payment",
            PaymentRequest,
            DataResponse,
            (10100, 10200, 10300, 10500, 10700, 10800, 10900, 11000, 11100, 11300, 11400, 11800),
            "Pay the held money out to the seller",
        ),
        Endpoint(
            "return-request",
            f"{BASE_PATH}/return-request",
            ReturnRequest,
            DataResponse,
            (10100, 10200, 10300, 10500, 10700, 11300, 11400),
            "Ask for a return; the seller then approves or rejects the refund",
        ),
        Endpoint(
            "sign-up",
            f"{BASE_PATH}/sign-up",
            SignUpRequest,
            DataResponse,
            (10100, 10200, 10300, 10500, 10700, 11300, 11400),
            "Sign up a Cotpay customer (phone = id)",
        ),
    )
}

ENDPOINTS_BY_PATH: dict[str, Endpoint] = {e.path: e for e in ENDPOINTS.values()}
