"""The HTTP gateway (DESIGN.md 6): REST for shop backends and operators, IPN intake for Cotpay.

Stateless: every request goes to Temporal through ``EscrowClient``. Errors are JSON
``{"error": "<stable code>", "message": "..."}``; the codes are listed in ``docs/http-api.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import Client

from cotpay.ipn import IpnStatus, IpnStep, verify_ipn_signature
from cotpay.logs import bind_order
from cotpay.settings import CotpaySettings
from runtime.metrics import (
    MetricsSettings,
    attention_gauge_loop,
    mount_metrics,
    record_ipn,
    record_ipn_after_close,
    record_ipn_rejected,
    record_order_started,
)
from runtime.settings import EscrowSettings
from runtime.tracing import instrument_app
from starter.client import COTPAY_ID_PATTERN, EscrowClient, OrderSummary, StartResult
from starter.errors import (
    EscrowClientError,
    InvalidState,
    OrderClosed,
    OrderConflict,
    OrderNotFound,
    StartTimeout,
    TemporalUnavailable,
    VisibilityUnavailable,
)
from starter.gateway_ipn import IpnRejected, merchant_key, read_ipn
from starter.gateway_middleware import AccessLog, ApiKeyAuth, BodyLimit
from starter.gateway_models import CreateOrderBody, ErrorBody, IpnAck
from workflows.models import (
    CancelRequest,
    DeliveryConfirmation,
    DisputeRequest,
    EscrowStatus,
    IpnSignal,
    OperatorAction,
    OrderView,
    workflow_id_for,
)

log = structlog.get_logger("cotpay_escrow.gateway")

ORDER_REF_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_STEPS = frozenset(s.value for s in IpnStep)
_STRANDED_MONEY_STATUSES = frozenset({IpnStatus.HOLDING.value, IpnStatus.PAYOUT_FAILED.value})
OrderRefPath = Annotated[str, Path(pattern=ORDER_REF_PATTERN, max_length=64)]

_STATUS_FOR: dict[type[EscrowClientError], int] = {
    OrderNotFound: 404,
    OrderConflict: 409,
    InvalidState: 409,
    OrderClosed: 409,
    TemporalUnavailable: 503,
    StartTimeout: 504,
    VisibilityUnavailable: 501,
}
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (401, 404, 409, 413, 422, 503)
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def error_response(http_status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"error": code, "message": message}
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=http_status)


def _view(view: OrderView, status: int = 200) -> JSONResponse:
    return JSONResponse(view.model_dump(mode="json"), status_code=status)


def _refusal(result: StartResult) -> ApiError | None:
    """A start whose order failed at once (Cotpay refused it) becomes a 422."""
    view = result.view
    if view.status != EscrowStatus.FAILED:
        return None
    reason = (result.payment.error if result.payment else None) or view.attention
    code = reason.code if reason else None
    return ApiError(
        422,
        "cotpay_refused" if code is not None else "order_failed",
        reason.reason if reason else "the order could not be created",
        cotpayCode=code,
        order=view.model_dump(mode="json"),
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, **exc.extra)

    @app.exception_handler(EscrowClientError)
    async def _client_error(_request: Request, exc: EscrowClientError) -> JSONResponse:
        extra: dict[str, Any] = {}
        if isinstance(exc, OrderConflict):
            extra["fields"] = exc.fields
        if isinstance(exc, InvalidState) and exc.view is not None:
            extra["status"] = exc.view.status.value
        return error_response(_STATUS_FOR.get(type(exc), 500), exc.code, exc.message, **extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {
                "field": ".".join(str(part) for part in err.get("loc", ())),
                "problem": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
            for err in exc.errors()
        ]
        return error_response(
            422,
            "invalid_request",
            f"the request is not valid ({len(fields)} problem(s))",
            fields=fields,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(_request: Request, exc: Exception) -> JSONResponse:
        log.error("gateway.internal_error", error_type=type(exc).__name__)
        return error_response(500, "internal_error", "internal error")


def _order(order_ref: str) -> contextlib.AbstractContextManager[None]:
    return bind_order(orderRef=order_ref, workflowId=workflow_id_for(order_ref))


def _lifespan(client: Client, interval: float) -> Any:
    """Refresh the NEEDS_ATTENTION gauge in the background while the app serves."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(_gauge(client, stop, interval)) if interval > 0 else None
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task

    return lifespan


async def _gauge(client: Client, stop: asyncio.Event, interval: float) -> None:
    try:
        await attention_gauge_loop(client, stop, interval=interval)
    except Exception as exc:  # the gauge must never take the gateway down
        log.warning("gateway.attention_gauge_stopped", error_type=type(exc).__name__)


def create_app(
    client: Client,
    escrow: EscrowSettings,
    cotpay: CotpaySettings,
    *,
    orders: EscrowClient | None = None,
) -> FastAPI:
    """The gateway app over a connected Temporal client (pydantic data converter)."""
    orders = orders or EscrowClient(client)
    ipn_key = merchant_key(cotpay)
    ipn_secret = escrow.ipn_secret.get_secret_value()
    api_keys = escrow.api_key_list()
    if not api_keys:
        log.warning("gateway.no_api_keys", detail="ESCROW_API_KEYS is empty: /v1 refuses all")

    app = FastAPI(
        title="cotpay-escrow gateway",
        version="1",
        description="Escrow orders on Cotpay, orchestrated by Temporal. See docs/http-api.md.",
        lifespan=_lifespan(client, MetricsSettings().attention_interval),
    )
    instrument_app(app)
    app.add_middleware(ApiKeyAuth, keys=api_keys)
    app.add_middleware(BodyLimit, max_bytes=escrow.max_body_bytes)
    app.add_middleware(AccessLog)
    _install_error_handlers(app)

    v1 = APIRouter(
        prefix="/v1",
        dependencies=[Security(HTTPBearer(auto_error=False, description="an ESCROW_API_KEYS key"))],
        responses=_ERRORS,
    )

    @v1.post(
        "/orders",
        status_code=201,
        response_model=OrderView,
        responses={200: {"model": OrderView, "description": "the order already existed"}},
    )
    async def create_order(body: CreateOrderBody) -> JSONResponse:
        """Start an escrow order (update-with-start) and return it with Cotpay's payment data."""
        with _order(body.order_ref):
            result = await orders.start_order(body.to_input(escrow), compare=body.compared_fields())
            if result.created:
                record_order_started()
            log.info(
                "order.start",
                cotpayOrderId=result.view.cotpay_order_id,
                created=result.created,
                status=result.view.status.value,
            )
        refusal = _refusal(result)
        if refusal is not None:
            raise refusal
        response = _view(result.view, 201 if result.created else 200)
        response.headers["location"] = f"/v1/orders/{body.order_ref}"
        return response

    @v1.get("/orders", response_model=dict[str, list[OrderSummary]])
    async def list_orders(
        status: EscrowStatus | None = None,
        seller_id: Annotated[str | None, Query(alias="sellerId", pattern=COTPAY_ID_PATTERN)] = None,
        buyer_id: Annotated[str | None, Query(alias="buyerId", pattern=COTPAY_ID_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> JSONResponse:
        """Orders by ``EscrowStatus``, seller or buyer, from Temporal visibility."""
        rows = await orders.list_orders(status, seller_id=seller_id, buyer_id=buyer_id, limit=limit)
        return JSONResponse({"orders": [row.model_dump(mode="json") for row in rows]})

    @v1.get("/orders/{order_ref}", response_model=OrderView)
    async def get_order(order_ref: OrderRefPath) -> JSONResponse:
        with _order(order_ref):
            return _view(await orders.get_order(order_ref))

    @v1.post("/orders/{order_ref}/delivered", response_model=OrderView)
    async def delivered(
        order_ref: OrderRefPath, body: DeliveryConfirmation | None = None
    ) -> JSONResponse:
        with _order(order_ref):
            return _view(await orders.confirm_delivery(order_ref, body))

    @v1.post("/orders/{order_ref}/dispute", response_model=OrderView)
    async def dispute(order_ref: OrderRefPath, body: DisputeRequest | None = None) -> JSONResponse:
        with _order(order_ref):
            return _view(await orders.open_dispute(order_ref, body))

    @v1.post("/orders/{order_ref}/cancel", response_model=OrderView)
    async def cancel(order_ref: OrderRefPath, body: CancelRequest | None = None) -> JSONResponse:
        with _order(order_ref):
            return _view(await orders.cancel(order_ref, body))

    @v1.post("/orders/{order_ref}/operator", response_model=OrderView)
    async def operator(order_ref: OrderRefPath, body: OperatorAction) -> JSONResponse:
        """Operator actions on a stuck order: retry, release, refund, cancel."""
        with _order(order_ref):
            log.info("order.operator_action", action=body.action)
            return _view(await orders.operator_action(order_ref, body))

    app.include_router(v1)

    @app.post(
        "/ipn/{order_ref}/{step}",
        response_model=IpnAck,
        responses={status: {"model": ErrorBody} for status in (400, 403, 404, 413, 503)},
    )
    async def ipn(order_ref: str, step: str, request: Request, sig: str = "") -> JSONResponse:
        """Cotpay's callback for one order and step; 200 only once Temporal has the signal."""
        known_step = step if step in _STEPS else "unknown"
        record_ipn(known_step)
        if not verify_ipn_signature(ipn_secret, order_ref, step, sig):
            record_ipn_rejected("bad_signature")
            log.warning("ipn.bad_signature", step=known_step)
            raise ApiError(403, "bad_signature", "the IPN signature does not match")
        if step not in _STEPS or len(order_ref) > 64:
            record_ipn_rejected("not_found")
            raise ApiError(404, "not_found", "no such IPN endpoint")
        with _order(order_ref), bind_order(step=step):
            return await _ipn_signal(order_ref, step, request)

    async def _ipn_signal(order_ref: str, step: str, request: Request) -> JSONResponse:
        try:
            body = read_ipn(request.headers, await request.body(), ipn_key)
        except IpnRejected as exc:
            record_ipn_rejected(exc.code)
            log.warning("ipn.rejected", error=exc.code)
            raise ApiError(exc.status, exc.code, exc.message) from exc
        signal = IpnSignal(step=IpnStep(step), body=body, received_at=datetime.now(UTC))
        fields = {
            "cotpayOrderId": body.idOrder,
            "ipn_status": body.status,
            "ipn_code": body.code,
            "amount": body.amount,
        }
        try:
            await orders.send_ipn(order_ref, signal)
        except OrderClosed:
            record_ipn_after_close(body.status if body.known else "unknown")
            if body.status in _STRANDED_MONEY_STATUSES:
                # The order's workflow is gone but Cotpay says money is (still) held: the only
                # trace is this line and its metric, so it is an error an operator must act on.
                log.error(
                    "ipn.after_close.money_held",
                    **fields,
                    transaction_id=body.transactionId,
                    action="reconcile with Cotpay: request a return or pay out by hand",
                )
            else:
                log.warning("ipn.after_close", **fields, transaction_id=body.transactionId)
            return JSONResponse(IpnAck(recorded=True).model_dump(mode="json"))
        except EscrowClientError as exc:
            record_ipn_rejected(exc.code)
            log.warning("ipn.not_signalled", **fields, error=exc.code)
            raise
        log.info("ipn.signalled", **fields)
        return JSONResponse(IpnAck().model_dump(mode="json"))

    mount_metrics(app)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Liveness and Temporal reachability (no API key)."""
        if await orders.healthy():
            return JSONResponse({"status": "ok", "temporal": "up"})
        return error_response(503, "temporal_unavailable", "Temporal is unreachable")

    return app
