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
from runtime.merchants import MerchantDirectory
from runtime.settings import EscrowSettings
from starter.client import EscrowClient
from starter.gateway.auth import Principal
from starter.gateway.errors import ApiError
from store.access import AccessStore
from store.api import OrderStore
from store.db import Database
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
    # Keys, merchants and the audit trail (store/access.py); None: ESCROW_API_KEYS only.
    access: AccessStore | None = None
    # The merchants' accounts (runtime/merchants.py): their keys open their sealed IPNs.
    merchants: MerchantDirectory | None = None


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
    """The webhook service of the app: the one given to ``create_app``, else one over the app's
    own database (``db``, made on first use; the app closes that database), else one opened on
    first use from ``ESCROW_DATABASE_URL`` (closed with the app)."""

    def __init__(self, service: WebhookService | None = None, db: Database | None = None) -> None:
        self._service = service
        self._db = db
        self._owned = service is None and db is None

    def get(self) -> WebhookService:
        if self._service is None:
            self._service = (
                WebhookService.over(self._db) if self._db is not None else WebhookService.open()
            )
        return self._service

    async def close(self) -> None:
        if self._owned and self._service is not None:
            await self._service.close()
            self._service = None


def webhook_service(request: Request) -> WebhookService:
    holder: WebhookHolder = request.app.state.webhooks
    return holder.get()


def caller_merchant(request: Request) -> str:
    """The merchant of the caller's API key (``auth.AccessControl`` put the caller on the
    request): every order, report, export and webhook endpoint a route touches is this
    merchant's; another merchant's answers 404 like one that does not exist (docs/security.md).
    A route declares its role with ``auth.require``/``Viewer``/``Shop``/``Operator``; this only
    reads the merchant, and fails closed when no caller was authenticated."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise ApiError(401, "unauthorized", "missing or wrong API key")
    return principal.merchant


Context = Annotated[GatewayContext, Depends(gateway_context)]
Webhooks = Annotated[WebhookService, Depends(webhook_service)]
Orders = Annotated[EscrowClient, Depends(escrow_client)]
Store = Annotated[OrderStore, Depends(order_store)]
# The caller's merchant (never None: a key is always scoped to one merchant).
Merchant = Annotated[str, Depends(caller_merchant)]
Owner = Merchant
Settings = Annotated[EscrowSettings, Depends(escrow_settings)]
OrderRefPath = Annotated[str, Path(pattern=ORDER_REF_PATTERN, max_length=64)]


def order_context(order_ref: str) -> contextlib.AbstractContextManager[None]:
    """Bind the order's ref and workflow id to every log line of the block."""
    return bind_order(orderRef=order_ref, workflowId=workflow_id_for(order_ref))
