"""The webhook events a shop receives (docs/webhooks.md): types, ids and the body.

One event per status change of an order, taken from the store's ``order_events`` (an entry of
kind ``status``): its type is ``order.<status in lower case>``. The body is
``{"id", "type", "created", "data"}`` with ``data`` the order view as ``GET /v1/orders/{ref}``
returns it. Pure: no I/O, no environment.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime

from workflows.models import DEFAULT_MERCHANT, EscrowStatus, Model, OrderView

ALL_EVENTS = "*"
EVENT_ID_PREFIX = "evt_"


class EventType(StrEnum):
    """Every event type, one per status an order can move to (``CREATING`` is never sent)."""

    AWAITING_PAYMENT = "order.awaiting_payment"
    HELD = "order.held"
    DELIVERED = "order.delivered"
    PAYING_OUT = "order.paying_out"
    PAID_OUT = "order.paid_out"
    RETURN_REQUESTED = "order.return_requested"
    REFUNDED = "order.refunded"
    EXPIRED = "order.expired"
    CANCELLED = "order.cancelled"
    NEEDS_ATTENTION = "order.needs_attention"
    FAILED = "order.failed"

    @property
    def status(self) -> EscrowStatus:
        return EscrowStatus(self.value.removeprefix("order.").upper())


EVENT_DESCRIPTIONS: dict[EventType, str] = {
    EventType.AWAITING_PAYMENT: "The order exists on Cotpay and waits for the buyer's payment;"
    " `data.payment` holds Cotpay's payment data (verify-order) to show the buyer.",
    EventType.HELD: "Cotpay holds the buyer's money: ship the goods.",
    EventType.DELIVERED: "The delivery was confirmed; the payout waits for Cotpay's payout"
    " window (`data.payoutNotBefore`).",
    EventType.PAYING_OUT: "The payout to the seller was requested from Cotpay.",
    EventType.PAID_OUT: "The seller was paid (`data.paidOutAt`). Final.",
    EventType.RETURN_REQUESTED: "A return (dispute) was accepted by Cotpay; the money stays held"
    " until the seller decides.",
    EventType.REFUNDED: "The buyer was refunded (`data.refundedAt`). Final.",
    EventType.EXPIRED: "The buyer did not pay within the payment window. Final.",
    EventType.CANCELLED: "The order was cancelled before payment. Final.",
    EventType.NEEDS_ATTENTION: "The order waits for an operator; `data.attention.reason` says why.",
    EventType.FAILED: "The order could not be carried out (for example an unknown seller). Final.",
}


def type_for_status(status: EscrowStatus | str | None) -> EventType | None:
    """The event type of a status entry; None for a status that sends nothing (``CREATING``)."""
    if status is None:
        return None
    try:
        return EventType(f"order.{EscrowStatus(status).value.lower()}")
    except ValueError:
        return None


SENT_STATUSES: tuple[str, ...] = tuple(t.status.value for t in EventType)


def event_id(order_ref: str, seq: int, merchant: str = DEFAULT_MERCHANT) -> str:
    """The event's id, derived from its store entry (merchant, orderRef, seq): the same for
    every attempt and resend, and for any dispatcher that takes the entry (``webhook-id``
    header). The default merchant's ids are what they always were; another merchant's name is
    part of its ids, so two merchants' orders with the same orderRef never share an id."""
    name = f"{order_ref}/{seq}" if merchant == DEFAULT_MERCHANT else f"{merchant}/{order_ref}/{seq}"
    digest = hashlib.sha256(f"cotpay-escrow/event/{name}".encode()).hexdigest()
    return EVENT_ID_PREFIX + digest[:32]


def parse_event_types(values: list[str] | None) -> list[str]:
    """The subscription as stored: ``["*"]`` (every type) or the given types, sorted, each once.
    ``ValueError`` names the unknown ones."""
    if not values:
        return [ALL_EVENTS]
    unknown = sorted(
        {v for v in values if v != ALL_EVENTS and v not in EventType._value2member_map_}
    )
    if unknown:
        raise ValueError(", ".join(unknown))
    if ALL_EVENTS in values:
        return [ALL_EVENTS]
    return sorted(set(values))


def subscribed(event_types: list[str], event_type: str) -> bool:
    return ALL_EVENTS in event_types or event_type in event_types


class WebhookEvent(Model):
    """The body of every webhook request."""

    id: str
    type: EventType
    created: AwareDatetime
    data: OrderView


def event_body(
    order_ref: str,
    seq: int,
    event_type: EventType,
    created: datetime,
    view: OrderView,
    merchant: str = DEFAULT_MERCHANT,
) -> str:
    """The JSON text sent (and signed) for an event: compact, UTF-8, keys in a fixed order."""
    body: dict[str, Any] = {
        "id": event_id(order_ref, seq, merchant),
        "type": event_type.value,
        "created": created.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": view.model_dump(mode="json"),
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
