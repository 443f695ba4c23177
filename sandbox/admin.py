"""The admin API under ``/sandbox/`` (plain JSON, no envelope; routes in docs/sandbox.md).

Errors are ``{"error": "<stable_code>", "message": ...}``: 404 ``order_not_found`` /
``user_not_found``, 409 ``invalid_state`` / ``order_busy``, 422 ``validation_error`` with
``errors: [{field, message}]``. ``PUT /sandbox/users/{id}``, ``GET /sandbox/users/{id}``,
``POST /sandbox/orders/{idOrder}/fail-next-payout``, ``GET /sandbox/faults``,
``GET /sandbox/clock``, ``GET /sandbox/health`` and the demo payment page
``GET /sandbox/pay/{idOrder}`` are additions to the fixed routes.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from fastapi.responses import HTMLResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    model_validator,
)
from pydantic.config import JsonDict

from sandbox.clock import iso
from sandbox.faults import Faults
from sandbox.json_types import JSON_NUMBER, JsonTime

if TYPE_CHECKING:
    from sandbox.state import SandboxState

UserId = Annotated[str, Path(min_length=1, max_length=10, pattern=r"^[A-Za-z0-9_-]+$")]
IdOrderPath = Annotated[int, Path(ge=1, le=9_999_999_999)]


def field_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part != "body"]
        out.append({"field": ".".join(loc), "message": str(error.get("msg", "invalid"))})
    return out


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PayBody(_Body):
    outcome: Literal["success", "failed"]


class ReturnDecision(_Body):
    decision: Literal["approve", "reject"]


class UserPut(_Body):
    name: str = Field(default="", max_length=100)
    walletLinked: StrictBool = True
    bankLinked: StrictBool = True


class UserPatch(_Body):
    walletLinked: StrictBool | None = None
    bankLinked: StrictBool | None = None


MAX_CLOCK_OFFSET_S = 10 * 365 * 86400
_OFFSET: JsonDict = {
    "type": "integer",
    "minimum": -MAX_CLOCK_OFFSET_S,
    "maximum": MAX_CLOCK_OFFSET_S,
}
_NOW: JsonDict = {"type": "string", "format": "date-time"}


class ClockBody(_Body):
    # The document says "exactly one" too, so that a client (and the fuzz tests) can see it.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": [name], "properties": {name: schema}}
                for name, schema in (("offsetSeconds", _OFFSET), ("now", _NOW))
            ]
        },
    )

    offsetSeconds: (
        Annotated[int, Field(ge=-MAX_CLOCK_OFFSET_S, le=MAX_CLOCK_OFFSET_S), JSON_NUMBER] | None
    ) = None
    now: JsonTime | None = None

    @model_validator(mode="after")
    def _one(self) -> ClockBody:
        if (self.offsetSeconds is None) == (self.now is None):
            raise ValueError("give exactly one of offsetSeconds or now")
        return self


class FailNext(_Body):
    count: Annotated[int, Field(ge=1, le=100), JSON_NUMBER] = 1


class FieldError(BaseModel):
    field: str
    message: str


class AdminErrorBody(BaseModel):
    """Every error of the admin API (``sandbox/app.py``): a stable ``error`` code, a ``message``,
    and for a 422 ``validation_error`` the refused fields."""

    model_config = ConfigDict(extra="forbid")

    error: str
    message: str
    errors: list[FieldError] | None = None


# The error answers the admin routes document (the OpenAPI document FastAPI serves).
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": AdminErrorBody, "description": "http_error: the body is not UTF-8 text"},
    404: {"model": AdminErrorBody, "description": "order_not_found, user_not_found, not_found"},
    409: {"model": AdminErrorBody, "description": "invalid_state, order_busy"},
    422: {"model": AdminErrorBody, "description": "validation_error, with errors"},
}


def admin_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix="/sandbox", tags=["sandbox admin"], responses=ADMIN_ERRORS)
    service = state.service

    def clock_view() -> dict[str, Any]:
        return {"now": iso(state.clock.now()), "offsetSeconds": state.clock.offset_seconds}

    @router.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "payoutRule": state.payout_rule.value,
            "envelope": state.envelope_mode,
            "persistent": state.store.persistent,
            "orders": len(state.store.orders),
            "ipnInFlight": state.ipn.in_flight,
            **clock_view(),
        }

    @router.post("/orders/{idOrder}/pay")
    async def pay(idOrder: IdOrderPath, body: PayBody) -> dict[str, Any]:
        return await service.admin_pay(idOrder, body.outcome == "success")

    @router.post("/orders/{idOrder}/return")
    async def decide_return(idOrder: IdOrderPath, body: ReturnDecision) -> dict[str, Any]:
        return await service.admin_return(idOrder, body.decision == "approve")

    @router.post("/orders/{idOrder}/fail-next-payout")
    async def fail_next_payout(idOrder: IdOrderPath, body: FailNext | None = None) -> Any:
        return service.fail_next_payout(idOrder, body.count if body else 1)

    @router.get("/orders/{idOrder}")
    async def get_order(idOrder: IdOrderPath) -> dict[str, Any]:
        return service.order_view(idOrder)

    @router.get("/ledger")
    async def ledger() -> dict[str, Any]:
        return service.ledger()

    @router.put("/users/{user_id}", responses={201: {"description": "a new user"}})
    async def put_user(user_id: UserId, body: UserPut, response: Response) -> dict[str, Any]:
        user, created = service.put_user(user_id, body.name, body.walletLinked, body.bankLinked)
        response.status_code = 201 if created else 200
        return user

    @router.get("/users/{user_id}")
    async def get_user(user_id: UserId) -> dict[str, Any]:
        return service.get_user(user_id)

    @router.patch("/users/{user_id}")
    async def patch_user(user_id: UserId, body: UserPatch) -> dict[str, Any]:
        return service.patch_user(user_id, body.walletLinked, body.bankLinked)

    @router.get("/clock")
    async def get_clock() -> dict[str, Any]:
        return clock_view()

    @router.put("/clock")
    async def put_clock(body: ClockBody) -> dict[str, Any]:
        if body.now is not None:
            state.clock.set_now(body.now)
        else:
            state.clock.set_offset(float(body.offsetSeconds or 0))
        return clock_view()

    @router.get("/faults")
    async def get_faults() -> Faults:
        return state.faults.faults

    @router.put("/faults")
    async def put_faults(body: Faults) -> Faults:
        state.faults.faults = body
        return body

    # Errors answer JSON like every admin route; only the page itself is HTML.
    @router.get(
        "/pay/{idOrder}",
        responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
    )
    async def pay_page(idOrder: IdOrderPath) -> HTMLResponse:
        view = service.order_view(idOrder)
        return HTMLResponse(
            _PAGE.format(id=idOrder, amount=view["amount"], status=escape(view["status"]))
        )

    return router


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Cotpay sandbox payment</title>
</head><body><h1>Cotpay sandbox: order {id}</h1><p>Amount: {amount} VND. Status: {status}.</p>
<button onclick="pay('success')">Pay (money held)</button>
<button onclick="pay('failed')">Fail the payment</button><pre id="out"></pre>
<script>async function pay(outcome) {{
const r = await fetch('/sandbox/orders/{id}/pay', {{method: 'POST',
 headers: {{'Content-Type': 'application/json'}}, body: JSON.stringify({{outcome}})}});
document.getElementById('out').textContent = JSON.stringify(await r.json(), null, 2);
}}</script></body></html>
"""
