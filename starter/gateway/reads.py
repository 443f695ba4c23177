"""Reading an order: the order store first, the workflow when the store has no row
(docs/http-api.md, "Reads and the order store").

- The store keeps an order for years, long after Temporal's retention deleted its workflow, so
  it answers first.
- No row (an order started before the store existed, or whose first write is still in flight):
  the workflow's ``status`` query answers, as before.
- The store down: the workflow answers if it can; if it cannot (the order is unknown to
  Temporal, or Temporal is down too) the answer is ``503 store_unavailable``, never a 404 that
  the store might contradict a moment later.

Starting an order checks the store too (``check_ref_unused``), but never waits on it: a store
that is down or slow lets the start go ahead, so money keeps moving.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from typing import TypeVar

import structlog

from starter.client import EscrowClient, OrderNotFound, TemporalUnavailable
from starter.gateway.errors import ApiError
from starter.gateway.read_models import OrderEvents, Source
from store.api import OrderStore
from store.errors import StoreUnavailable
from store.models import StoreEvent
from workflows.models import OrderView

log = structlog.get_logger("cotpay_escrow.gateway")

# A read waits this long for the store before treating it as down.
STORE_READ_S = 10.0
# A start waits this long for the store's "was this orderRef used?" before going ahead.
STORE_CHECK_S = 2.0

_T = TypeVar("_T")
# "2026-11-30T10:00:00 07:00": a "+" sent unencoded in a query string arrives as a space.
_SPACED_OFFSET = re.compile(r"^(\S+T[\d:.]+) (\d{2}:?\d{2})$")


def query_time(text: str | None) -> str | None:
    """A time from a query string, its offset's ``+`` restored if it arrived as a space."""
    if text is None:
        return None
    text = text.strip()
    spaced = _SPACED_OFFSET.match(text)
    return f"{spaced[1]}+{spaced[2]}" if spaced else text


async def bounded(call: Awaitable[_T], seconds: float = STORE_READ_S) -> _T:
    """``call`` on the store, a timeout counting as the store being down."""
    try:
        return await asyncio.wait_for(call, seconds)
    except TimeoutError as err:
        raise StoreUnavailable(f"the order store did not answer within {seconds:g}s") from err


def store_down(message: str) -> ApiError:
    return ApiError(503, "store_unavailable", message)


async def read_order(
    order_ref: str, store: OrderStore, orders: EscrowClient, merchant: str | None
) -> tuple[OrderView, Source]:
    """The order view and where it came from; ``OrderNotFound`` when neither has it."""
    down: StoreUnavailable | None = None
    try:
        view = await bounded(store.get_order(order_ref, merchant))
    except StoreUnavailable as err:
        down = err
        log.warning("order.read_store_unavailable", error=str(err)[:300])
    else:
        if view is not None:
            return view, Source.STORE
    return await _from_workflow(order_ref, orders, down), Source.WORKFLOW


async def read_events(
    order_ref: str, store: OrderStore, orders: EscrowClient, merchant: str | None
) -> OrderEvents:
    """The order's events from ``order_events``, else its workflow timeline numbered 1, 2, ..."""
    down: StoreUnavailable | None = None
    try:
        events = await bounded(store.events(order_ref, merchant))
    except StoreUnavailable as err:
        down = err
        log.warning("order.read_store_unavailable", error=str(err)[:300])
    else:
        if events is not None:
            return OrderEvents(order_ref=order_ref, source=Source.STORE, events=events)
    view = await _from_workflow(order_ref, orders, down)
    # Numbered as the store numbers them; ``money`` stays None: the store's writer classifies it.
    timeline = [StoreEvent.from_timeline(i + 1, e) for i, e in enumerate(view.timeline)]
    return OrderEvents(order_ref=order_ref, source=Source.WORKFLOW, events=timeline)


async def _from_workflow(
    order_ref: str, orders: EscrowClient, down: StoreUnavailable | None
) -> OrderView:
    """The workflow's view; without it, a 503 when the store could not say either."""
    try:
        return await orders.get_order(order_ref)
    except OrderNotFound:
        if down is None:
            raise
        raise store_down(
            f"the order store is unavailable and Temporal has no order {order_ref!r}: "
            "it may be an order Temporal no longer keeps; retry later"
        ) from down
    except TemporalUnavailable:
        if down is None:
            raise
        raise store_down("the order store and Temporal are both unavailable; retry later") from down


async def check_ref_unused(order_ref: str, store: OrderStore, orders: EscrowClient) -> None:
    """Refuse (409 ``order_ref_used``) an ``orderRef`` the store has for an order whose workflow
    Temporal no longer keeps (deleted after the namespace retention), so it is never started a
    second time. A store that is down or slow does not stop the start."""
    try:
        row = await bounded(store.get_row(order_ref), STORE_CHECK_S)
    except StoreUnavailable as err:
        log.warning("order.start_unchecked", reason="order store unavailable", error=str(err)[:300])
        return
    if row is None or await orders.exists(order_ref):
        return
    log.warning("order.ref_used", status=row.status.value, created_at=row.created_at.isoformat())
    raise ApiError(
        409,
        "order_ref_used",
        f"orderRef {order_ref!r} belongs to an order created {row.created_at.date().isoformat()}"
        f" (now {row.status.value}) that Temporal no longer keeps: use a new orderRef",
    )
