"""``/v1/orders``: start orders; the shop's messages (delivered, dispute, cancel).

Every route acts on the orders of the caller's merchant (``who.merchant``): another merchant's
order is not found, exactly like one that does not exist (docs/security.md).

Each route calls one ``EscrowClient`` method; its typed errors become JSON errors in
``starter/gateway/errors.py`` (docs/http-api.md). Reads are in ``routes/reads.py``.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from runtime.metrics import record_order_started
from starter.client import CreateOrderBody, StartResult
from starter.gateway.auth import Shop
from starter.gateway.deps import OrderRefPath, Orders, Settings, Store, order_context
from starter.gateway.errors import ApiError
from starter.gateway.models import ErrorBody, view_response
from starter.gateway.reads import check_ref_unused
from workflows.models import (
    CancelRequest,
    DeliveryConfirmation,
    DisputeRequest,
    EscrowStatus,
    OrderView,
)

log = structlog.get_logger("cotpay_escrow.gateway")

router = APIRouter(prefix="/v1")


def _refusal(result: StartResult) -> ApiError | None:
    """A start whose order failed at once (Cotpay refused it) becomes a 422."""
    view = result.view
    if view.status != EscrowStatus.FAILED:
        return None
    reason = (result.payment.error if result.payment else None) or view.attention
    code = reason.code if reason else None
    return ApiError(
        422,
        "cotpay_refused" if code is not None else "order_failed",
        reason.reason if reason else "the order could not be created",
        cotpayCode=code,
        order=view.model_dump(mode="json"),
    )


def _order_links() -> dict[str, Any]:
    """OpenAPI links of a start's answer: its ``orderRef`` is the ``{order_ref}`` of the order's
    routes (clients and the stateful fuzz run follow them, docs/reliability-fuzzing.md)."""
    targets = {
        "GetOrder": ("/v1/orders/{order_ref}", "get"),
        "GetOrderEvents": ("/v1/orders/{order_ref}/events", "get"),
        "ConfirmDelivery": ("/v1/orders/{order_ref}/delivered", "post"),
        "OpenDispute": ("/v1/orders/{order_ref}/dispute", "post"),
        "CancelOrder": ("/v1/orders/{order_ref}/cancel", "post"),
        "OperatorAction": ("/v1/orders/{order_ref}/operator", "post"),
    }
    return {
        name: {
            "operationRef": "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method,
            "parameters": {"order_ref": "$response.body#/orderRef"},
        }
        for name, (path, method) in targets.items()
    }


@router.post(
    "/orders",
    status_code=201,
    response_model=OrderView,
    responses={
        201: {"links": _order_links()},
        200: {
            "model": OrderView,
            "description": "the order already existed",
            "links": _order_links(),
        },
        504: {"model": ErrorBody, "description": "start_timeout: repeat the same request"},
    },
)
async def create_order(
    body: CreateOrderBody, orders: Orders, escrow: Settings, store: Store, who: Shop
) -> JSONResponse:
    """Start an escrow order (update-with-start) and return it with Cotpay's payment data."""
    with order_context(body.order_ref):
        await check_ref_unused(body.order_ref, store, orders, who.merchant)
        # The order belongs to the key's merchant: its workflow id, its Cotpay account.
        order = body.to_input(escrow).model_copy(update={"merchant": who.merchant})
        result = await orders.start_order(order, compare=body.compared_fields())
        if result.created:
            record_order_started()
        log.info(
            "order.start",
            cotpayOrderId=result.view.cotpay_order_id,
            created=result.created,
            status=result.view.status.value,
        )
    refusal = _refusal(result)
    if refusal is not None:
        raise refusal
    response = view_response(result.view, 201 if result.created else 200)
    response.headers["location"] = f"/v1/orders/{body.order_ref}"
    return response


@router.post("/orders/{order_ref}/delivered", response_model=OrderView)
async def delivered(
    order_ref: OrderRefPath, orders: Orders, who: Shop, body: DeliveryConfirmation | None = None
) -> JSONResponse:
    with order_context(order_ref):
        return view_response(await orders.confirm_delivery(order_ref, body, merchant=who.merchant))


@router.post("/orders/{order_ref}/dispute", response_model=OrderView)
async def dispute(
    order_ref: OrderRefPath, orders: Orders, who: Shop, body: DisputeRequest | None = None
) -> JSONResponse:
    with order_context(order_ref):
        return view_response(await orders.open_dispute(order_ref, body, merchant=who.merchant))


@router.post("/orders/{order_ref}/cancel", response_model=OrderView)
async def cancel(
    order_ref: OrderRefPath, orders: Orders, who: Shop, body: CancelRequest | None = None
) -> JSONResponse:
    with order_context(order_ref):
        return view_response(await orders.cancel(order_ref, body, merchant=who.merchant))
