"""Answers of the gateway's reads from the order store (docs/http-api.md, docs/store.md).

The listing keeps the shape of the visibility listing (``starter.client.OrderSummary``: each row
under ``orders``) and adds the store's columns and ``nextCursor``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from cotpay.models import PayMethod
from starter.client import OrderSummary
from store.models import OrderRow, StoreEvent
from workflows.models import TERMINAL_STATUSES, Attention, Model, PayoutRule

SOURCE_HEADER = "x-escrow-source"


class Source(StrEnum):
    """Where an answer came from: the order store, or the workflow (Temporal)."""

    STORE = "store"
    WORKFLOW = "workflow"


class OrderListItem(OrderSummary):
    """One order of ``GET /v1/orders``: today's fields, then the store's columns.

    ``startedAt`` is the creation time; ``runStatus`` is derived from ``status`` (``COMPLETED``
    once the status is final, ``RUNNING`` before) and ``closedAt`` is the time of the final
    event: the store does not ask Temporal."""

    merchant: str
    seller_id: str
    buyer_id: str
    description: str = ""
    pay_method: PayMethod
    payout_rule: PayoutRule
    held_at: datetime | None = None
    delivered_at: datetime | None = None
    paid_out_at: datetime | None = None
    refunded_at: datetime | None = None
    attention: Attention | None = None
    waiting_for: str = ""
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: OrderRow) -> OrderListItem:
        final = row.status in TERMINAL_STATUSES
        return cls(
            order_ref=row.order_ref,
            workflow_id=row.workflow_id,
            status=row.status.value,
            run_status="COMPLETED" if final else "RUNNING",
            amount=row.amount,
            cotpay_order_id=row.cotpay_order_id,
            payout_not_before=row.payout_not_before,
            started_at=row.created_at,
            closed_at=row.updated_at if final else None,
            merchant=row.merchant,
            seller_id=row.seller_id,
            buyer_id=row.buyer_id,
            description=row.description,
            pay_method=row.pay_method,
            payout_rule=row.payout_rule,
            held_at=row.held_at,
            delivered_at=row.delivered_at,
            paid_out_at=row.paid_out_at,
            refunded_at=row.refunded_at,
            attention=row.attention,
            waiting_for=row.waiting_for,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class OrderList(Model):
    """A page of ``GET /v1/orders``; ``nextCursor`` is null on the last page."""

    orders: list[OrderListItem]
    next_cursor: str | None = None


class OrderEvents(Model):
    """``GET /v1/orders/{orderRef}/events``: the order's events in ``seq`` order. From the
    workflow (``source: workflow``, when the store has no row yet) the timeline is numbered the
    same way, but ``money`` is left empty."""

    order_ref: str
    source: Source
    events: list[StoreEvent]


class Health(Model):
    """``GET /healthz``: ``degraded`` while the order store is down (orders keep moving)."""

    status: Literal["ok", "degraded"]
    temporal: Literal["up"]
    store: Literal["up", "down"]


class HealthDown(Model):
    """``GET /healthz`` with Temporal unreachable (503)."""

    error: Literal["temporal_unavailable"]
    message: str
    temporal: Literal["down"]
    store: Literal["up", "down"]
