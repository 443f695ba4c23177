"""``POST /ipn/{orderRef}/{step}?sig=...``: Cotpay's callbacks, turned into ``ipn`` signals.

The URL's HMAC signature is checked before anything else (403), then the body is read, plain or
sealed (``starter/gateway/ipn.py``, 400), then the order's workflow is signalled: 200 only once
Temporal has the signal, 404 for an unknown order, 503 while Temporal is down (Cotpay retries).
An IPN for an order whose workflow has finished is acknowledged (``recorded``) and logged; when
Cotpay says money is held, as an error an operator must act on (docs/runbook.md), and, with the
order store, also as an ``ipn_after_close`` money event and an open finding
(``starter/gateway/stranded.py``). While the store is down such an IPN gets 503, so that Cotpay
retries it rather than the only trace being a log line (docs/reconciliation.md).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import structlog
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from cotpay.ipn import IpnStatus, IpnStep, verify_ipn_signature
from cotpay.logs import bind_order
from runtime.merchants import MerchantUnavailable
from runtime.metrics import record_ipn, record_ipn_after_close, record_ipn_rejected
from starter.client import EscrowClient, EscrowClientError, OrderClosed
from starter.gateway.auth import PUBLIC
from starter.gateway.deps import Context, GatewayContext, order_context
from starter.gateway.errors import RATE_LIMITED_RESPONSE, ApiError
from starter.gateway.ipn import IpnRejected, read_ipn
from starter.gateway.models import ErrorBody, IpnAck
from starter.gateway.stranded import record_stranded_ipn
from store.api import OrderStore
from store.errors import StoreUnavailable
from workflows.models import DEFAULT_MERCHANT, MERCHANT_PATTERN, IpnSignal

log = structlog.get_logger("cotpay_escrow.gateway")

_STEPS = frozenset(s.value for s in IpnStep)
_MERCHANT = re.compile(MERCHANT_PATTERN)
_STRANDED_MONEY_STATUSES = frozenset({IpnStatus.HOLDING.value, IpnStatus.PAYOUT_FAILED.value})

router = APIRouter()


@router.post(
    "/ipn/{order_ref}/{step}",
    # No API key: Cotpay proves itself with the URL's signature, checked first below.
    dependencies=[Depends(PUBLIC)],
    response_model=IpnAck,
    responses={
        **{status: {"model": ErrorBody} for status in (400, 403, 404, 413, 503)},
        429: RATE_LIMITED_RESPONSE,
    },
)
async def ipn(
    order_ref: str, step: str, request: Request, context: Context, sig: str = "", m: str = ""
) -> JSONResponse:
    """Cotpay's callback for one order and step; 200 only once Temporal has the signal. ``m``:
    the order's merchant, when it is not the default one (covered by the signature)."""
    known_step = step if step in _STEPS else "unknown"
    record_ipn(known_step)
    merchant = m or None
    if not verify_ipn_signature(context.ipn_secret, order_ref, step, sig, merchant):
        limiter = getattr(request.app.state, "limiter", None)
        if limiter is not None:
            await limiter.forged_ipn(request.scope)  # ESCROW_RATE_LIMIT_IPN_FORGED
        record_ipn_rejected("bad_signature")
        log.warning("ipn.bad_signature", step=known_step)
        raise ApiError(403, "bad_signature", "the IPN signature does not match")
    if (
        step not in _STEPS
        or len(order_ref) > 64
        or (merchant is not None and not _MERCHANT.match(merchant))
        or merchant == DEFAULT_MERCHANT
    ):
        record_ipn_rejected("not_found")
        raise ApiError(404, "not_found", "no such IPN endpoint")
    owner = merchant or DEFAULT_MERCHANT
    with order_context(order_ref), bind_order(step=step, merchant=owner):
        try:
            key = await _ipn_key(context, owner)
            body = read_ipn(request.headers, await request.body(), key)
        except IpnRejected as exc:
            record_ipn_rejected(exc.code)
            log.warning("ipn.rejected", error=exc.code)
            raise ApiError(exc.status, exc.code, exc.message) from exc
        signal = IpnSignal(step=IpnStep(step), body=body, received_at=datetime.now(UTC))
        return await _signal(context.orders, order_ref, signal, owner, context.store)


async def _ipn_key(context: GatewayContext, merchant: str) -> rsa.RSAPrivateKey | None:
    """The private key that opens a sealed IPN of ``merchant`` (404 for one we cannot use)."""
    if merchant == DEFAULT_MERCHANT:
        return context.ipn_key
    if context.merchants is None:
        raise ApiError(404, "not_found", "no such IPN endpoint")
    try:
        return (await context.merchants.account(merchant)).private_key()
    except MerchantUnavailable as exc:
        log.warning("ipn.merchant_unavailable", error=str(exc)[:200])
        raise ApiError(404, "not_found", "no such IPN endpoint") from exc


async def _signal(
    orders: EscrowClient,
    order_ref: str,
    signal: IpnSignal,
    merchant: str,
    store: OrderStore | None = None,
) -> JSONResponse:
    body = signal.body
    fields = {
        "cotpayOrderId": body.idOrder,
        "ipn_status": body.status,
        "ipn_code": body.code,
        "amount": body.amount,
    }
    try:
        await orders.send_ipn(order_ref, signal, merchant=merchant)
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
            if store is not None:
                await _keep_stranded(store, order_ref, signal, merchant)
        else:
            log.warning("ipn.after_close", **fields, transaction_id=body.transactionId)
        return JSONResponse(IpnAck(recorded=True).model_dump(mode="json"))
    except EscrowClientError as exc:
        record_ipn_rejected(exc.code)
        log.warning("ipn.not_signalled", **fields, error=exc.code)
        raise
    log.info("ipn.signalled", **fields)
    return JSONResponse(IpnAck().model_dump(mode="json"))


async def _keep_stranded(
    store: OrderStore, order_ref: str, signal: IpnSignal, merchant: str
) -> None:
    """The money event and the open finding, on ``merchant``'s order; 503 while the store is
    down (Cotpay retries)."""
    try:
        finding = await record_stranded_ipn(store, order_ref, signal, merchant)
    except StoreUnavailable as exc:
        record_ipn_rejected("store_unavailable")
        log.error("ipn.after_close.store_unavailable", error=str(exc)[:200])
        raise ApiError(
            503, "store_unavailable", "the order store is unavailable: retry the IPN later"
        ) from exc
    log.warning("ipn.after_close.finding", finding=finding.id, kind=finding.kind.value)
