"""What the sandbox keeps: users, orders, ledger entries and the IPN delivery log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

from sandbox.clock import iso

FIRST_ORDER_ID = 1_000_001


class OrderStatus(StrEnum):
    CREATED = "CREATED"
    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    HOLDING = "HOLDING"
    RETURN_PENDING = "RETURN_PENDING"
    PAID_OUT = "PAID_OUT"
    REFUNDED = "REFUNDED"


LedgerKind = Literal["hold", "payout", "refund"]


def without_query(url: str) -> str:
    """The URL without its query string (IPN URLs carry a signature there)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class User(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str = ""
    email: str | None = None
    walletLinked: bool = True
    bankLinked: bool = True
    createdAt: datetime

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "walletLinked": self.walletLinked,
            "bankLinked": self.bankLinked,
        }


class IpnRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int
    status: str
    url: str
    body: dict[str, Any]
    createdAt: datetime
    attempts: int = 0
    duplicates: int = 0
    deliveredAt: datetime | None = None
    gaveUp: bool = False
    lastError: str | None = None

    @property
    def pending(self) -> bool:
        return self.deliveredAt is None and not self.gaveUp

    def view(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "url": without_query(self.url),
            "attempts": self.attempts,
            "duplicates": self.duplicates,
            "deliveredAt": iso(self.deliveredAt) if self.deliveredAt else None,
            "gaveUp": self.gaveUp,
            "lastError": self.lastError,
            "body": self.body,
        }


class LedgerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idOrder: int
    kind: LedgerKind
    amount: int
    transactionId: str
    at: datetime

    @property
    def guard(self) -> str:
        """At most one hold, and at most one payout-or-refund, per order."""
        return f"{self.idOrder}:{'hold' if self.kind == 'hold' else 'out'}"

    def view(self) -> dict[str, Any]:
        return {"transactionId": self.transactionId, "amount": self.amount, "at": iso(self.at)}


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idOrder: int
    partnerId: str
    buyerId: str
    amount: int
    desc: str
    agentId: str | None = None
    orderCode: str | None = None
    status: OrderStatus = OrderStatus.CREATED
    createdAt: datetime
    payMethod: str | None = None
    ipnUrls: dict[str, str] = Field(default_factory=dict)
    heldAt: datetime | None = None
    paidOutAt: datetime | None = None
    refundedAt: datetime | None = None
    holdTransactionId: str | None = None
    payoutTransactionId: str | None = None
    refundTransactionId: str | None = None
    failNextPayouts: int = 0
    failedPayouts: int = 0
    ipns: list[IpnRecord] = Field(default_factory=list)

    def wire(self) -> dict[str, Any]:
        """The ``order`` object of create-order."""
        return {
            "idOrder": self.idOrder,
            "partnerId": self.partnerId,
            "buyerId": self.buyerId,
            "amount": self.amount,
            "desc": self.desc,
            "status": self.status.value,
            "orderCode": self.orderCode,
            "createdAt": iso(self.createdAt),
        }

    def view(self, base_url: str) -> dict[str, Any]:
        """The order as ``GET /sandbox/orders/{idOrder}`` shows it."""
        return {
            **self.wire(),
            "agentId": self.agentId,
            "payMethod": self.payMethod,
            "paymentUrl": payment_url(base_url, self) if self.payMethod else None,
            "ipnUrls": {step: without_query(url) for step, url in self.ipnUrls.items()},
            "heldAt": iso(self.heldAt) if self.heldAt else None,
            "paidOutAt": iso(self.paidOutAt) if self.paidOutAt else None,
            "refundedAt": iso(self.refundedAt) if self.refundedAt else None,
            "holdTransactionId": self.holdTransactionId,
            "payoutTransactionId": self.payoutTransactionId,
            "refundTransactionId": self.refundTransactionId,
            "failNextPayouts": self.failNextPayouts,
            "failedPayouts": self.failedPayouts,
            "ipns": [record.view() for record in self.ipns],
        }


def payment_url(base_url: str, order: Order) -> str:
    return f"{base_url.rstrip('/')}/sandbox/pay/{order.idOrder}?method={order.payMethod}"
