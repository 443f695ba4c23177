"""Response bodies of the HTTP gateway that are not order views (docs/http-api.md).

The start request is the client's (``starter.client.requests.CreateOrderBody``), the order view
the workflow's (``workflows.models.OrderView``).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from workflows.models import Model, OrderView


class ErrorBody(Model):
    error: str
    message: str
    fields: list[dict[str, Any]] | None = None
    cotpay_code: int | None = None
    order: OrderView | None = None


class IpnAck(Model):
    ok: bool = True
    recorded: bool = False


def view_response(view: OrderView, status: int = 200) -> JSONResponse:
    """An order view as the routes answer it (camelCase JSON)."""
    return JSONResponse(view.model_dump(mode="json"), status_code=status)
