"""Typed models shared by the workflow, the activities, the gateway, the client and the CLI.

Pure data: importing this module performs no I/O and reads no environment, so workflow code may
import it under the sandbox. JSON is camelCase (``orderRef``); Python names are snake_case and
both are accepted on input.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from cotpay.ipn import IpnBody, IpnStep
from cotpay.models import Amount, CotpayId, Description, PayMethod
from cotpay.payout_window import PayoutRule as PayoutRule  # re-exported: the order input's rule

TASK_QUEUE = "cotpay-escrow"
WORKFLOW_TYPE = "EscrowOrderWorkflow"
# The merchant of a single-merchant deployment: today's COTPAY_* (docs/security.md, Merchants).
DEFAULT_MERCHANT = "default"
MERCHANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"

OrderRef = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]
MerchantName = Annotated[str, StringConstraints(pattern=MERCHANT_PATTERN)]


def workflow_id_for(order_ref: str, merchant: str = DEFAULT_MERCHANT) -> str:
    """``escrow-<orderRef>`` for the default merchant (as always), ``escrow:<merchant>:<ref>``
    for the others: two merchants may use the same orderRef, and no id of one can be another's
    (``:`` is in neither an orderRef nor a merchant name)."""
    if merchant == DEFAULT_MERCHANT:
        return f"escrow-{order_ref}"
    return f"escrow:{merchant}:{order_ref}"


def merchant_of_workflow_id(workflow_id: str) -> str:
    """The merchant of a workflow id made by ``workflow_id_for``."""
    if workflow_id.startswith("escrow:"):
        merchant, sep, _ = workflow_id.removeprefix("escrow:").partition(":")
        if sep and merchant:
            return merchant
    return DEFAULT_MERCHANT


def workflow_id_prefix(merchant: str = DEFAULT_MERCHANT) -> str:
    """What every workflow id of ``merchant`` starts with (visibility: ``STARTS_WITH``)."""
    return workflow_id_for("", merchant)


def _is_default(merchant: str) -> bool:
    return merchant == DEFAULT_MERCHANT


def merchant_field() -> Any:
    """An optional ``merchant`` that is left out of the payload for the default merchant, so
    inputs of the default merchant are byte for byte what they were (replay, older workers)."""
    return Field(default=DEFAULT_MERCHANT, exclude_if=_is_default)


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, extra="forbid"
    )


class EscrowStatus(StrEnum):
    CREATING = "CREATING"
    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    HELD = "HELD"
    DELIVERED = "DELIVERED"
    PAYING_OUT = "PAYING_OUT"
    PAID_OUT = "PAID_OUT"
    RETURN_REQUESTED = "RETURN_REQUESTED"
    REFUNDED = "REFUNDED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"


TERMINAL_STATUSES = frozenset(
    {
        EscrowStatus.PAID_OUT,
        EscrowStatus.REFUNDED,
        EscrowStatus.EXPIRED,
        EscrowStatus.CANCELLED,
        EscrowStatus.FAILED,
    }
)


class BuyerProfile(Model):
    """Only used to sign the buyer up on Cotpay when the buyer id is unknown."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    email: Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class OrderTimers(Model):
    """Per-order timer overrides; unset fields take the service defaults."""

    payment_window: timedelta = timedelta(hours=24)
    grace_period: timedelta = timedelta(days=7)
    delivery_deadline: timedelta = timedelta(days=14)
    return_window: timedelta = timedelta(days=7)
    inspection_period: timedelta = timedelta(0)


class OrderInput(Model):
    """The workflow input. Rule and timers are fixed here at start, never re-read later."""

    order_ref: OrderRef
    seller_id: CotpayId
    buyer_id: CotpayId
    amount: Amount
    description: Description = ""
    pay_method: PayMethod = PayMethod.VIETQR
    agent_id: CotpayId | None = None
    buyer: BuyerProfile | None = None
    payout_rule: PayoutRule = PayoutRule.T1_1600
    timers: OrderTimers = Field(default_factory=OrderTimers)
    auto_release: bool = False
    # Hex salt of workflows.pseudonym (CodecSettings.search_salt_hex()); None: ids in clear.
    search_salt: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16,128}$")] | None = None
    # The Cotpay account the order belongs to; its activities call Cotpay with its credentials.
    merchant: MerchantName = merchant_field()


class Attention(Model):
    reason: str
    code: int | None = None
    since: datetime
    step: str | None = None


class TimelineEvent(Model):
    time: datetime
    kind: str
    status: EscrowStatus | None = None
    detail: str = ""
    data: dict[str, Any] | None = None


class OrderView(Model):
    """What the ``status`` query, ``GET /v1/orders/{orderRef}`` and the CLI show."""

    order_ref: str
    workflow_id: str
    status: EscrowStatus
    cotpay_order_id: int | None = None
    seller_id: str
    buyer_id: str
    amount: int
    description: str = ""
    pay_method: PayMethod
    payout_rule: PayoutRule
    payment: str | None = None
    held_at: datetime | None = None
    delivered_at: datetime | None = None
    payout_not_before: datetime | None = None
    paid_out_at: datetime | None = None
    refunded_at: datetime | None = None
    attention: Attention | None = None
    waiting_for: str = ""
    timeline: list[TimelineEvent] = Field(default_factory=list)


class IpnSignal(Model):
    """An IPN as the gateway forwards it: the step of the URL it arrived on and its body."""

    model_config = ConfigDict(extra="allow")

    step: IpnStep
    body: IpnBody
    received_at: datetime | None = None


class DeliveryConfirmation(Model):
    delivered_at: datetime | None = None
    note: Annotated[str, StringConstraints(max_length=500)] = ""


class DisputeRequest(Model):
    reason: Annotated[str, StringConstraints(max_length=500)] = ""


class CancelRequest(Model):
    reason: Annotated[str, StringConstraints(max_length=500)] = ""


OperatorActionKind = Literal["retry", "release", "refund", "cancel"]


class OperatorAction(Model):
    action: OperatorActionKind
    operator: Annotated[str, StringConstraints(max_length=100)] = ""
    note: Annotated[str, StringConstraints(max_length=500)] = ""


class PaymentInfo(Model):
    """The answer of the ``payment_info`` update: Cotpay's ``verify-order`` data."""

    order_ref: str
    status: EscrowStatus
    cotpay_order_id: int | None = None
    payment: str | None = None
    error: Attention | None = None
