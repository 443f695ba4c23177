"""``/v1/orders/{orderRef}/operator``: operator actions on a stuck order (docs/runbook.md)."""

from __future__ import annotations

import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from starter.gateway.deps import OrderRefPath, Orders, order_context
from starter.gateway.models import view_response
from workflows.models import OperatorAction, OrderView

log = structlog.get_logger("cotpay_escrow.gateway")

router = APIRouter(prefix="/v1")


@router.post("/orders/{order_ref}/operator", response_model=OrderView)
async def operator(order_ref: OrderRefPath, body: OperatorAction, orders: Orders) -> JSONResponse:
    """Operator actions on a stuck order: retry, release, refund, cancel."""
    with order_context(order_ref):
        log.info("order.operator_action", action=body.action)
        return view_response(await orders.operator_action(order_ref, body))
