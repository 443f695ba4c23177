"""``/v1/orders/{orderRef}/operator``: operator actions on a stuck order (docs/runbook.md).

Only an ``operator`` key may act. The operator recorded on the order and in the audit trail is
the key's name, whatever the body's ``operator`` says (docs/security.md).
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from starter.client import EscrowClientError
from starter.gateway.audit import audit
from starter.gateway.auth import Operator
from starter.gateway.deps import OrderRefPath, Orders, order_context
from starter.gateway.models import view_response
from workflows.models import OperatorAction, OrderView

log = structlog.get_logger("cotpay_escrow.gateway")

router = APIRouter(prefix="/v1")


@router.post("/orders/{order_ref}/operator", response_model=OrderView)
async def operator(
    order_ref: OrderRefPath, body: OperatorAction, orders: Orders, who: Operator, request: Request
) -> JSONResponse:
    """Operator actions on a stuck order: retry, release, refund, cancel."""
    action = body.model_copy(update={"operator": who.actor[:100]})
    audited = f"order.operator.{body.action}"
    data = {"note": body.note, "typedOperator": body.operator or None}
    with order_context(order_ref):
        log.info("order.operator_action", action=body.action, key_id=who.key_id)
        try:
            view = await orders.operator_action(order_ref, action, merchant=who.merchant)
        except EscrowClientError as exc:
            await audit(request, audited, target=order_ref, data={**data, "outcome": exc.code})
            raise
        await audit(request, audited, target=order_ref, data={**data, "outcome": view.status.value})
        return view_response(view)
