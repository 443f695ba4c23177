"""What routes depend on (FastAPI ``Depends``): the escrow client, the order store, the settings,
the IPN keys, the webhook service and the caller's merchant.

``create_app`` stores one ``GatewayContext`` on ``app.state``; routes take what they need as
annotated parameters (``orders: Orders``, ``store: Store``), so a route module imports no app and
no global. The order store is opened once per app (docs/store.md).
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
from store.api import OrderStore
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
    store: OrderStore


def gateway_context(request: Request) -> GatewayContext:
    context: GatewayContext = request.app.state.gateway
    return context


def escrow_client(context: Annotated[GatewayContext, Depends(gateway_context)]) -> EscrowClient:
    return context.orders


def escrow_settings(
    context: Annotated[GatewayContext, Depends(gateway_context)],
) -> EscrowSettings:
    return context.escrow


def order_store(context: Annotated[GatewayContext, Depends(gateway_context)]) -> OrderStore:
    return context.store


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


def request_merchant() -> str | None:
    """The merchant whose orders the caller may read; None: every merchant's (today's API keys
    are not scoped to a merchant). Reads pass it to the store, which answers another merchant's
    order exactly as an unknown one (docs/store.md)."""
    return None


Context = Annotated[GatewayContext, Depends(gateway_context)]
Webhooks = Annotated[WebhookService, Depends(webhook_service)]
Orders = Annotated[EscrowClient, Depends(escrow_client)]
Store = Annotated[OrderStore, Depends(order_store)]
Merchant = Annotated[str | None, Depends(request_merchant)]
Owner = Annotated[str, Depends(current_merchant)]
Settings = Annotated[EscrowSettings, Depends(escrow_settings)]
OrderRefPath = Annotated[str, Path(pattern=ORDER_REF_PATTERN, max_length=64)]


def order_context(order_ref: str) -> contextlib.AbstractContextManager[None]:
    """Bind the order's ref and workflow id to every log line of the block."""
    return bind_order(orderRef=order_ref, workflowId=workflow_id_for(order_ref))
