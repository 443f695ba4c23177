"""Response bodies of the HTTP gateway that are not order views (docs/http-api.md).

The start request is the client's (``starter.client.requests.CreateOrderBody``), the order view
the workflow's (``workflows.models.OrderView``).
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from pydantic import Field

from workflows.models import EscrowStatus, Model, OrderView


class FieldProblem(Model):
    """One refused field or parameter of a ``422`` (the caller's value is not echoed)."""

    field: str = Field(description="where: body.amount, query.limit, cursor, ...")
    problem: str = Field(description="what is wrong, in words")
    type: str = Field(description="a stable kind: missing, int_parsing, invalid_date, ...")


class ErrorBody(Model):
    """Every error answer: ``error`` (a stable code) and ``message``. A ``422`` may add
    ``fields`` (``invalid_request`` and the store's query codes), or ``cotpayCode`` and the failed
    ``order`` (``cotpay_refused``, ``order_failed``). A ``409`` is a ``ConflictBody``."""

    error: str
    message: str
    fields: list[FieldProblem] | None = None
    cotpay_code: int | None = None
    order: OrderView | None = None


class ConflictBody(Model):
    """A ``409``: the order's state or identity refuses the request (docs/http-api.md).
    ``order_conflict`` names the differing request fields in ``fields``; ``order_closed`` gives the
    finished order's final ``status``."""

    error: str
    message: str
    fields: list[str] | None = Field(
        default=None, description="order_conflict: the fields that differ from the existing order"
    )
    status: EscrowStatus | None = Field(
        default=None, description="order_closed: the final status of the finished order"
    )


class IpnAck(Model):
    ok: bool = True
    recorded: bool = False


def view_response(view: OrderView, status: int = 200) -> JSONResponse:
    """An order view as the routes answer it (camelCase JSON)."""
    return JSONResponse(view.model_dump(mode="json"), status_code=status)
