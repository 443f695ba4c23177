"""What the workflow writes to the order store, and how it calls the write (docs/store.md).

Pure, like ``state_machine.py``: no ``temporalio.workflow``, no I/O. ``StoreOutbox`` remembers
what the store has acknowledged and builds the next ``store.models.OrderWrite`` from the order
view: the timeline entries after the last acknowledged ``seq`` (entry ``i``, 0-based, is
``seq = i + 1``, as ``OrderWrite.from_view`` numbers them) and the current view. A write with no
new entry but a changed view (a new ``waitingFor``, ``payoutNotBefore``) carries a greater
``revision``, so the store replaces the row. ``money_kinds`` marks the money events.

The workflow (``workflows/escrow.py``) runs one writer: it sends one write at a time, batching
what accumulated meanwhile, with the retry policy below (unlimited, backoff capped at a minute:
``activities/store_activities.py`` says why repeating a write is safe). From the patch
``store-local-writes`` on, a write is first tried once as a *local* activity (``LOCAL_*``: one
marker event, no activity task round trip); only when that attempt fails or takes longer than
``LOCAL_TIMEOUT`` does the same write go out as the regular activity with ``RETRY``, and
the order's next writes stay regular until one succeeds. A local attempt holds the workflow task
open while it runs, so its timeout bounds how long it can delay a command issued beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.common import RetryPolicy

from activities.store_activities import StoreActivities
from store.models import MoneyKind, OrderWrite, StoreEvent
from workflows.calls import DEFINITE
from workflows.models import DEFAULT_MERCHANT, EscrowStatus, OrderView, TimelineEvent

S = EscrowStatus

RECORD = StoreActivities.record
START_TO_CLOSE = timedelta(seconds=30)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=0,
)
# Patch ``store-local-writes``: the one local attempt of a write, before the regular activity.
# Its start-to-close and schedule-to-close timeout: a wait for a local-activity slot counts too.
LOCAL_TIMEOUT = timedelta(seconds=2)
LOCAL_RETRY = RetryPolicy(maximum_attempts=1)
# Patch ``lean-history``: how long a write may wait for the next workflow task when its own task
# scheduled a Cotpay call (a local attempt there would hold the call back). Longer than a local
# attempt, so that the timer has not fired yet when a task that ends the wait (usually the
# call's completion) completes after its local attempt: cancelling a timer whose firing is
# buffered is left to the server then (the time-skipping test server refuses it).
DEFER = timedelta(seconds=5)
# Events per write: keeps one activity payload small after a long outage of a busy order.
MAX_EVENTS_PER_WRITE = 200


def money_kinds(timeline: Sequence[TimelineEvent]) -> list[MoneyKind | None]:
    """The money kind of each timeline entry (None: it moved no money), from the whole timeline
    up to it:

    * ``held``: the first ``ipn`` HOLDING the order accepted (it carries Cotpay's ``idOrder``,
      ``transactionId`` and ``amount``); an IPN that failed the checks is ``ipn_mismatch``,
      never ``held``;
    * ``paid_out`` / ``refunded``: the transition to PAID_OUT / REFUNDED;
    * ``payout_in_doubt``: a payment call without a definite answer (``activity_failed`` of step
      ``payment`` whose failure type is not definite, ``workflows/calls.py``);
    * ``payout_failed``: a definite refusal of a payment call, or a PAYOUT_FAILED IPN.
    """
    kinds: list[MoneyKind | None] = []
    held = False
    for event in timeline:
        data = event.data or {}
        kind: MoneyKind | None = None
        if event.kind == "ipn" and data.get("status") == "HOLDING" and not held:
            kind = MoneyKind.HELD
            held = True
        elif event.kind == "ipn" and data.get("status") == "PAYOUT_FAILED":
            kind = MoneyKind.PAYOUT_FAILED
        elif event.kind == "status" and event.status is S.PAID_OUT:
            kind = MoneyKind.PAID_OUT
        elif event.kind == "status" and event.status is S.REFUNDED:
            kind = MoneyKind.REFUNDED
        elif event.kind == "activity_failed" and data.get("step") == "payment":
            definite = data.get("type") in DEFINITE
            kind = MoneyKind.PAYOUT_FAILED if definite else MoneyKind.PAYOUT_IN_DOUBT
        kinds.append(kind)
    return kinds


_CONFIRMING_IPN = {MoneyKind.PAID_OUT: "PAID_OUT", MoneyKind.REFUNDED: "REFUNDED"}


def store_event(
    seq: int, event: TimelineEvent, money: MoneyKind | None, view: OrderView, earlier: str | None
) -> StoreEvent:
    """One ``order_events`` row. A money entry without Cotpay's ids in its data (a transition,
    a failed call) gets the order's ``idOrder`` and amount, and ``earlier``: the transaction id
    of the IPN that reported the same outcome before it, if any."""
    row = StoreEvent.from_timeline(seq, event, money)
    if money is None or row.cotpay_order_id is not None:
        return row
    return row.model_copy(
        update={
            "cotpay_order_id": view.cotpay_order_id,
            "amount": row.amount if row.amount is not None else view.amount,
            "transaction_id": row.transaction_id or earlier,
        }
    )


def order_write(
    view: OrderView,
    *,
    created_at: datetime,
    after_seq: int,
    revision: int,
    merchant: str = DEFAULT_MERCHANT,
    limit: int = MAX_EVENTS_PER_WRITE,
) -> OrderWrite:
    """The write of ``view`` for a store that holds entries ``1..after_seq``: the next entries
    (at most ``limit``) and the view without its timeline."""
    timeline = view.timeline
    end = min(len(timeline), after_seq + limit)
    kinds = money_kinds(timeline[:end])
    last_tx: dict[str, str] = {}
    events: list[StoreEvent] = []
    for i, event in enumerate(timeline[:end]):
        data = event.data or {}
        money = kinds[i]
        if i >= after_seq:
            confirming = _CONFIRMING_IPN.get(money) if money else None
            earlier = last_tx.get(confirming) if confirming else None
            events.append(store_event(i + 1, event, money, view, earlier))
        if event.kind == "ipn" and data.get("transactionId"):
            last_tx[str(data.get("status"))] = str(data["transactionId"])
    return OrderWrite(
        order_ref=view.order_ref,
        merchant=merchant,
        created_at=created_at,
        last_seq=end,
        revision=revision,
        view=view.model_copy(update={"timeline": []}),
        events=events,
    )


@dataclass
class StoreOutbox:
    """What the order store has acknowledged, and the next write for the current view.

    ``stored_seq``: the store holds timeline entries ``1..stored_seq``; ``stored_view``: the
    view (without timeline) of the last acknowledged write; ``writing``: a write is in flight.
    """

    created_at: datetime
    merchant: str = DEFAULT_MERCHANT
    stored_seq: int = 0
    stored_view: OrderView | None = None
    revision: int = 0
    writing: bool = False
    # A local attempt failed and no write has succeeded since (patch ``lean-history``).
    degraded: bool = False
    # A write went out as the regular activity and has not been acknowledged (``lean-history``).
    regular: bool = False

    def pending(self, view: OrderView) -> bool:
        """The view or its timeline differs from what the store acknowledged."""
        if len(view.timeline) > self.stored_seq:
            return True
        return view.model_copy(update={"timeline": []}) != self.stored_view

    def idle(self, view: OrderView) -> bool:
        """Nothing in flight, nothing to send: the store shows ``view``."""
        return not self.writing and not self.pending(view)

    def has(self, seq: int) -> bool:
        """The store holds timeline entries ``1..seq`` (read-your-writes)."""
        return self.stored_seq >= seq

    def next_write(self, view: OrderView) -> OrderWrite | None:
        """The write to send now (then in flight until ``stored``); None: nothing changed."""
        if not self.pending(view):
            return None
        self.revision += 1
        self.writing = True
        return order_write(
            view,
            created_at=self.created_at,
            after_seq=self.stored_seq,
            revision=self.revision,
            merchant=self.merchant,
        )

    def stored(self, write: OrderWrite) -> None:
        """The store acknowledged ``write``."""
        self.stored_seq = max(self.stored_seq, write.last_seq)
        self.stored_view = write.view
        self.writing = False
        self.degraded = False
        self.regular = False
