"""``GET /v1/orders``, ``/v1/orders/{orderRef}`` and ``/v1/orders/{orderRef}/events``: reads from
the order store, the workflow answering for orders the store does not have yet
(``starter/gateway/reads.py``; docs/http-api.md).

Parameters with their allowed values in the OpenAPI document (``status``, ``sellerId``,
``buyerId``, ``sort``, ``limit``) are checked by FastAPI (``422 invalid_request``); times, ranges
and cursors by the store (``422`` with its code: ``invalid_date``, ``invalid_range``,
``invalid_cursor``, ``cursor_mismatch``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from starter.client import COTPAY_ID_PATTERN
from starter.gateway.deps import Merchant, OrderRefPath, Orders, Store, order_context
from starter.gateway.models import view_response
from starter.gateway.read_models import (
    SOURCE_HEADER,
    OrderEvents,
    OrderList,
    OrderListItem,
)
from starter.gateway.reads import bounded, query_time, read_events, read_order
from store.models import OrderFilters, OrderSort
from store.orders import DEFAULT_LIMIT, MAX_LIMIT
from workflows.models import EscrowStatus, OrderView

router = APIRouter(prefix="/v1")


_TIME = (
    "a date (a Vietnam day: as a start its first instant, as an end the whole day) or an ISO 8601"
    " time with an offset (encode '+' as %2B); ranges are half-open, from <= t < to"
)


@router.get("/orders", response_model=OrderList)
async def list_orders(
    store: Store,
    merchant: Merchant,
    status: Annotated[
        list[EscrowStatus] | None,
        Query(description="any of these statuses (repeat the parameter for several)"),
    ] = None,
    seller_id: Annotated[str | None, Query(alias="sellerId", pattern=COTPAY_ID_PATTERN)] = None,
    buyer_id: Annotated[str | None, Query(alias="buyerId", pattern=COTPAY_ID_PATTERN)] = None,
    created_from: Annotated[str | None, Query(alias="createdFrom", description=_TIME)] = None,
    created_to: Annotated[str | None, Query(alias="createdTo", description=_TIME)] = None,
    updated_from: Annotated[str | None, Query(alias="updatedFrom", description=_TIME)] = None,
    updated_to: Annotated[str | None, Query(alias="updatedTo", description=_TIME)] = None,
    sort: OrderSort = OrderSort.CREATED_DESC,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(description="the previous page's nextCursor, with the same filters and sort"),
    ] = None,
) -> JSONResponse:
    """Orders from the order store: filters, a sort and keyset pages (``nextCursor``)."""
    filters = OrderFilters.from_query(
        status=[s.value for s in status] if status else None,
        seller_id=seller_id,
        buyer_id=buyer_id,
        merchant=merchant,
        created_from=query_time(created_from),
        created_to=query_time(created_to),
        updated_from=query_time(updated_from),
        updated_to=query_time(updated_to),
    )
    page = await bounded(store.list_orders(filters, sort, limit, cursor))
    answer = OrderList(
        orders=[OrderListItem.from_row(row) for row in page.orders],
        next_cursor=page.next_cursor,
    )
    return JSONResponse(answer.model_dump(mode="json"))


@router.get("/orders/{order_ref}", response_model=OrderView)
async def get_order(
    order_ref: OrderRefPath, orders: Orders, store: Store, merchant: Merchant
) -> JSONResponse:
    """The order with its timeline: from the order store, else from its workflow."""
    with order_context(order_ref):
        view, source = await read_order(order_ref, store, orders, merchant)
        response = view_response(view)
        response.headers[SOURCE_HEADER] = source.value
        return response


@router.get("/orders/{order_ref}/events", response_model=OrderEvents)
async def order_events(
    order_ref: OrderRefPath, orders: Orders, store: Store, merchant: Merchant
) -> JSONResponse:
    """The order's events (timeline entries and money events) in ``seq`` order."""
    with order_context(order_ref):
        answer = await read_events(order_ref, store, orders, merchant)
        response = JSONResponse(answer.model_dump(mode="json"))
        response.headers[SOURCE_HEADER] = answer.source.value
        return response
