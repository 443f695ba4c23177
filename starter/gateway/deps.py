"""What routes depend on (FastAPI ``Depends``): the escrow client, the settings, the IPN keys.

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
from runtime.merchants import MerchantDirectory
from runtime.settings import EscrowSettings
from starter.client import EscrowClient
from store.access import AccessStore
from workflows.models import workflow_id_for

ORDER_REF_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


@dataclass(frozen=True)
class GatewayContext:
    orders: EscrowClient
    escrow: EscrowSettings
    ipn_secret: str
    ipn_key: rsa.RSAPrivateKey | None
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


Context = Annotated[GatewayContext, Depends(gateway_context)]
Orders = Annotated[EscrowClient, Depends(escrow_client)]
Settings = Annotated[EscrowSettings, Depends(escrow_settings)]
OrderRefPath = Annotated[str, Path(pattern=ORDER_REF_PATTERN, max_length=64)]


def order_context(order_ref: str) -> contextlib.AbstractContextManager[None]:
    """Bind the order's ref and workflow id to every log line of the block."""
    return bind_order(orderRef=order_ref, workflowId=workflow_id_for(order_ref))
