"""``GET /healthz``: liveness, Temporal reachability and the order store, without an API key.

Temporal down is ``503``: nothing can move. The order store down is ``200`` with
``"status": "degraded"``: orders, IPNs and payouts keep moving without it, only the store's reads
answer ``503`` (docs/http-api.md).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from starter.gateway.deps import Orders, Store
from starter.gateway.errors import error_response
from starter.gateway.read_models import Health, HealthDown
from store.api import OrderStore
from store.errors import StoreUnavailable

router = APIRouter()

STORE_PING_S = 3.0


async def _store_up(store: OrderStore) -> bool:
    try:
        await asyncio.wait_for(store.ping(), STORE_PING_S)
    except (StoreUnavailable, TimeoutError):
        return False
    return True


@router.get("/healthz", response_model=Health, responses={503: {"model": HealthDown}})
async def healthz(orders: Orders, store: Store) -> JSONResponse:
    """Liveness, Temporal and the order store (no API key)."""
    temporal_up, store_up = await asyncio.gather(orders.healthy(), _store_up(store))
    state = "up" if store_up else "down"
    if not temporal_up:
        return error_response(
            503, "temporal_unavailable", "Temporal is unreachable", temporal="down", store=state
        )
    health = Health(status="ok" if store_up else "degraded", temporal="up", store=state)
    return JSONResponse(health.model_dump(mode="json"))
