"""``GET /healthz``: liveness and Temporal reachability, without an API key."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from starter.gateway.auth import PUBLIC
from starter.gateway.deps import Orders
from starter.gateway.errors import error_response

router = APIRouter()


@router.get("/healthz", dependencies=[Depends(PUBLIC)])
async def healthz(orders: Orders) -> JSONResponse:
    """Liveness and Temporal reachability (no API key)."""
    if await orders.healthy():
        return JSONResponse({"status": "ok", "temporal": "up"})
    return error_response(503, "temporal_unavailable", "Temporal is unreachable")
