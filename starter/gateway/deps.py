"""What routes depend on (FastAPI ``Depends``): the escrow client, the settings, the IPN keys,
the webhook service and the caller's merchant.

``create_app`` stores one ``GatewayContext`` on ``app.state``; routes take what they need as
annotated parameters (``orders: Orders``), so a route module imports no app and no global.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, Path, Request

from cotpay.logs import bind_order
from runtime.settings import EscrowSettings
from starter.client import EscrowClient
from store.models import DEFAULT_MERCHANT
from webhooks.service import WebhookService
from workflows.models import workflow_id_for

ORDER_REF_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


@dataclass(frozen=True)
class GatewayContext:
    orders: EscrowClient
    escrow: EscrowSettings
    ipn_secret: str
    ipn_key: rsa.RSAPrivateKey | None


def gateway_context(request: Request) -> GatewayContext:
    context: GatewayContext = request.app.state.gateway
    return context


def escrow_client(context: Annotated[GatewayContext, Depends(gateway_context)]) -> EscrowClient:
    return context.orders


def escrow_settings(
    context: Annotated[GatewayContext, Depends(gateway_context)],
) -> EscrowSettings:
    return context.escrow


class WebhookHolder:
    """The webhook service of the app: the one given to ``create_app``, or one opened on first
    use from ``ESCROW_DATABASE_URL`` (closed with the app)."""

    def __init__(self, service: WebhookService | None = None) -> None:
        self._service = service
        self._owned = service is None

    def get(self) -> WebhookService:
        if self._service is None:
            self._service = WebhookService.open()
        return self._service

    async def close(self) -> None:
        if self._owned and self._service is not None:
            await self._service.close()
            self._service = None


def webhook_service(request: Request) -> WebhookService:
    holder: WebhookHolder = request.app.state.webhooks
    return holder.get()


def current_merchant() -> str:
    """The merchant whose resources the request may see (one merchant for now)."""
    return DEFAULT_MERCHANT


Context = Annotated[GatewayContext, Depends(gateway_context)]
Webhooks = Annotated[WebhookService, Depends(webhook_service)]
Merchant = Annotated[str, Depends(current_merchant)]
Orders = Annotated[EscrowClient, Depends(escrow_client)]
Settings = Annotated[EscrowSettings, Depends(escrow_settings)]
OrderRefPath = Annotated[str, Path(pattern=ORDER_REF_PATTERN, max_length=64)]


def order_context(order_ref: str) -> contextlib.AbstractContextManager[None]:
    """Bind the order's ref and workflow id to every log line of the block."""
    return bind_order(orderRef=order_ref, workflowId=workflow_id_for(order_ref))
