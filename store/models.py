"""The order store's models (docs/store.md): what callers write, query and read back.

Pure data, like ``workflows.models``: no I/O, no environment, no SQLAlchemy, so workflow code may
import it under the sandbox (through ``workflow.unsafe.imports_passed_through()``). JSON is
camelCase.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, Field, StringConstraints, ValidationError, model_validator

from cotpay.models import PayMethod
from store.errors import InvalidQuery
from workflows.models import (
    Attention,
    EscrowStatus,
    Model,
    OrderRef,
    OrderView,
    PayoutRule,
    TimelineEvent,
)

VN = ZoneInfo("Asia/Ho_Chi_Minh")
DEFAULT_MERCHANT = "default"
MAX_EVENTS_PER_WRITE = 1000

MerchantId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]


class MoneyKind(StrEnum):
    """What an event did to the money (``order_events.money``); None for other entries."""

    HELD = "held"  # Cotpay holds the buyer's money (a HOLDING IPN for an open order)
    PAID_OUT = "paid_out"  # paid out to the seller
    REFUNDED = "refunded"  # refunded to the buyer
    PAYOUT_IN_DOUBT = "payout_in_doubt"  # a payout call without a definite answer
    PAYOUT_FAILED = "payout_failed"  # a definite refusal of a payout: ends a doubt
    IPN_AFTER_CLOSE = "ipn_after_close"  # money held for an order that had closed: stranded


class StoreEvent(Model):
    """One row of ``order_events``: a timeline entry numbered ``seq`` (1, 2, ... per order),
    marked with ``money`` when it moved money. Cotpay's ids and the amount are columns of their
    own; ``from_timeline`` takes them from the entry's ``data`` (``idOrder``, ``transactionId``,
    ``amount``) when the caller does not give them."""

    seq: Annotated[int, Field(ge=1)]
    time: AwareDatetime
    kind: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    status: EscrowStatus | None = None
    detail: str = ""
    data: dict[str, Any] | None = None
    money: MoneyKind | None = None
    cotpay_order_id: int | None = None
    transaction_id: Annotated[str, StringConstraints(max_length=128)] | None = None
    amount: int | None = None

    @classmethod
    def from_timeline(cls, seq: int, event: TimelineEvent, money: MoneyKind | None = None) -> Self:
        data = event.data or {}
        id_order = data.get("idOrder")
        transaction_id = data.get("transactionId")
        amount = data.get("amount")
        return cls(
            seq=seq,
            time=event.time,
            kind=event.kind,
            status=event.status,
            detail=event.detail,
            data=event.data,
            money=money,
            cotpay_order_id=id_order if isinstance(id_order, int) else None,
            transaction_id=str(transaction_id)[:128] if transaction_id else None,
            amount=amount if isinstance(amount, int) else None,
        )

    def timeline_event(self) -> TimelineEvent:
        return TimelineEvent(
            time=self.time, kind=self.kind, status=self.status, detail=self.detail, data=self.data
        )


class OrderWrite(Model):
    """One idempotent write (``store.orders.record``): the order's current view, which reflects
    timeline entries ``1..lastSeq``, and timeline entries not written before.

    Events are keyed by (merchant, orderRef, seq): one that exists is left as it is. The
    ``orders`` row (keyed by (merchant, orderRef)) is replaced only by a newer view: a greater
    ``lastSeq``, or the same ``lastSeq`` and a greater ``revision`` (for a view change without a
    new entry, e.g. a new ``waitingFor``). A retried or replayed write therefore changes
    nothing. ``view.timeline`` is ignored: send it empty
    (``from_view`` does) to keep the activity payload small."""

    order_ref: OrderRef
    merchant: MerchantId = DEFAULT_MERCHANT
    created_at: AwareDatetime
    last_seq: Annotated[int, Field(ge=0)]
    revision: Annotated[int, Field(ge=0)] = 0
    view: OrderView
    events: Annotated[list[StoreEvent], Field(max_length=MAX_EVENTS_PER_WRITE)] = Field(
        default_factory=list
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.view.order_ref != self.order_ref:
            raise ValueError("view.orderRef differs from orderRef")
        seqs = [e.seq for e in self.events]
        if len(set(seqs)) != len(seqs):
            raise ValueError("two events with the same seq")
        if seqs and max(seqs) > self.last_seq:
            raise ValueError("an event is numbered above lastSeq")
        return self

    @classmethod
    def from_view(
        cls,
        view: OrderView,
        *,
        created_at: datetime,
        after_seq: int = 0,
        merchant: str = DEFAULT_MERCHANT,
        revision: int = 0,
        money: Callable[[TimelineEvent], MoneyKind | None] | None = None,
    ) -> Self:
        """The write for a full view whose first ``after_seq`` timeline entries are stored:
        entry ``i`` (0-based) gets ``seq = i + 1``; ``money`` marks money entries."""
        events = [
            StoreEvent.from_timeline(i + 1, ev, money(ev) if money else None)
            for i, ev in enumerate(view.timeline)
            if i >= after_seq
        ]
        return cls(
            order_ref=view.order_ref,
            merchant=merchant,
            created_at=created_at,
            last_seq=len(view.timeline),
            revision=revision,
            view=view.model_copy(update={"timeline": []}),
            events=events,
        )


class WriteResult(Model):
    """What a write changed: ``orderMoved`` (the ``orders`` row was inserted or replaced) and
    how many of its events were new. Both zero/false for a retried or replayed write."""

    order_moved: bool
    events_inserted: int


class OrderRow(Model):
    """One order as ``orders`` holds it: the order view without its timeline, with the merchant,
    creation and update times (``updatedAt``: time of the latest entry) and ``lastSeq``."""

    order_ref: str
    merchant: str
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
    created_at: datetime
    updated_at: datetime
    last_seq: int

    def view(self, timeline: list[TimelineEvent]) -> OrderView:
        fields = self.model_dump(exclude={"merchant", "created_at", "updated_at", "last_seq"})
        return OrderView.model_validate({**fields, "timeline": timeline})


class OrderSort(StrEnum):
    CREATED_ASC = "created_asc"
    CREATED_DESC = "created_desc"
    UPDATED_ASC = "updated_asc"
    UPDATED_DESC = "updated_desc"


class OrderFilters(Model):
    """Filters of ``list_orders``; every given filter must hold (AND). Statuses: any of them.
    Time ranges are half-open, ``from <= t < to``, with aware datetimes."""

    status: list[EscrowStatus] | None = None
    seller_id: str | None = None
    buyer_id: str | None = None
    merchant: str | None = None
    created_from: AwareDatetime | None = None
    created_to: AwareDatetime | None = None
    updated_from: AwareDatetime | None = None
    updated_to: AwareDatetime | None = None

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        for name in ("created", "updated"):
            low, high = getattr(self, f"{name}_from"), getattr(self, f"{name}_to")
            if low is not None and high is not None and low >= high:
                raise ValueError(f"{name}From must be before {name}To")
        return self

    @classmethod
    def from_query(
        cls,
        *,
        status: str | list[str] | None = None,
        seller_id: str | None = None,
        buyer_id: str | None = None,
        merchant: str | None = None,
        created_from: str | None = None,
        created_to: str | None = None,
        updated_from: str | None = None,
        updated_to: str | None = None,
    ) -> OrderFilters:
        """Filters from query-string values, refusing bad ones with ``InvalidQuery``.

        ``status``: one status, a comma-separated list, or a list. Times: an ISO 8601 datetime
        with an offset, or a date (a day in Vietnam time: as ``from``, its first instant; as
        ``to``, the end of that day)."""
        statuses: list[EscrowStatus] | None = None
        if status is not None:
            words = status.split(",") if isinstance(status, str) else status
            try:
                statuses = [EscrowStatus(w.strip()) for w in words if w.strip()] or None
            except ValueError:
                raise InvalidQuery(
                    "invalid_filter", f"unknown status in {status!r}", "status"
                ) from None
        times = {
            "created_from": parse_instant(created_from, "createdFrom", end_of_day=False),
            "created_to": parse_instant(created_to, "createdTo", end_of_day=True),
            "updated_from": parse_instant(updated_from, "updatedFrom", end_of_day=False),
            "updated_to": parse_instant(updated_to, "updatedTo", end_of_day=True),
        }
        for name in ("created", "updated"):
            low, high = times[f"{name}_from"], times[f"{name}_to"]
            if low is not None and high is not None and low >= high:
                raise InvalidQuery(
                    "invalid_range", f"{name}From must be before {name}To", f"{name}From"
                )
        try:
            return cls(
                status=statuses,
                seller_id=seller_id,
                buyer_id=buyer_id,
                merchant=merchant,
                **times,
            )
        except ValidationError as err:
            raise InvalidQuery("invalid_filter", str(err.errors()[0]["msg"])) from None


class OrderPage(Model):
    """A page of ``list_orders``; ``nextCursor`` is None on the last page."""

    orders: list[OrderRow]
    next_cursor: str | None = None


def day_start(day: date) -> datetime:
    """The first instant of a Vietnam calendar day, in UTC."""
    return datetime.combine(day, time(0), tzinfo=VN).astimezone(UTC)


def vn_today(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(VN).date()


def parse_instant(text: str | None, field: str, *, end_of_day: bool) -> datetime | None:
    """An aware instant from ``2026-11-30T10:00:00+07:00`` (or ``...Z``) or ``2026-11-30`` (a
    Vietnam day: its start, or with ``end_of_day`` the start of the next day). Refuses naive
    datetimes and anything else with ``InvalidQuery("invalid_date")``."""
    if text is None or text == "":
        return None
    text = text.strip()
    if len(text) <= 10:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise InvalidQuery("invalid_date", f"{field}: not a date: {text!r}", field) from None
        return day_start(day + timedelta(days=1) if end_of_day else day)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidQuery("invalid_date", f"{field}: not a datetime: {text!r}", field) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidQuery("invalid_date", f"{field}: give a UTC offset: {text!r}", field)
    return moment.astimezone(UTC)


class MoneyState(StrEnum):
    """Where an order's money is (``money_report``); docs/store.md defines each from events."""

    AWAITING_PAYMENT = "awaiting_payment"
    HELD = "held"
    DELIVERED = "delivered"  # delivered, waiting for the payout window
    PAYING_OUT = "paying_out"
    IN_DOUBT = "in_doubt"
    PAID_OUT = "paid_out"
    REFUNDED = "refunded"
    STRANDED = "stranded"


class MoneyLine(Model):
    state: MoneyState
    count: int
    amount: int  # VND


class MoneyFlow(Model):
    """Money events of one kind during the reported day."""

    kind: MoneyKind
    count: int
    amount: int  # VND


class MoneyReport(Model):
    """Orders and VND totals per money state as of ``asOf`` (events strictly before it). For a
    day, ``asOf`` is the end of that Vietnam day and ``flows`` lists that day's money events."""

    as_of: datetime
    day: date | None = None
    currency: Literal["VND"] = "VND"
    states: list[MoneyLine]
    flows: list[MoneyFlow] | None = None


class FindingKind(StrEnum):
    """Reconciliation findings and stranded-money items (``findings.kind``)."""

    IPN_AFTER_CLOSE = "ipn_after_close"  # stranded: HOLDING after the order closed
    PAYOUT_IN_DOUBT = "payout_in_doubt"  # stranded: a payout with no definite answer
    STATUS_MISMATCH = "status_mismatch"  # store and workflow disagree on the status
    AMOUNT_MISMATCH = "amount_mismatch"  # store, workflow or Cotpay disagree on an amount
    IPN_MISMATCH = "ipn_mismatch"  # an IPN's amount or idOrder differs from the order's
    PAID_AND_REFUNDED = "paid_and_refunded"
    PAST_DEADLINE = "past_deadline"  # HELD, DELIVERED or PAYING_OUT past its deadline
    LEDGER_MISMATCH = "ledger_mismatch"  # Cotpay's ledger disagrees with the store
    MISSING_IN_STORE = "missing_in_store"  # a running workflow the store has no row for

    @property
    def stranded(self) -> bool:
        return self in (FindingKind.IPN_AFTER_CLOSE, FindingKind.PAYOUT_IN_DOUBT)


class Finding(Model):
    """One finding. Open while ``closedAt`` is None; at most one open finding per (kind, key):
    opening it again returns the open one."""

    id: int
    kind: FindingKind
    key: str
    merchant: str = DEFAULT_MERCHANT
    order_ref: str | None = None
    detail: str = ""
    data: dict[str, Any] | None = None
    opened_at: datetime
    closed_at: datetime | None = None
    closed_by: str | None = None
    close_note: str = ""


class FindingFilter(Model):
    kind: FindingKind | None = None
    merchant: str | None = None
    order_ref: str | None = None
    open_only: bool = True
