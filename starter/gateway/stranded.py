"""Stranded money at the gateway: an IPN that says money is held for an order whose workflow
has closed (docs/reconciliation.md, docs/runbook.md).

Nothing watches that order any more, so the IPN is kept where an operator will see it: a money
event ``ipn_after_close`` on the order in the store (``OrderStore.append_event``) and an open
finding of kind ``ipn_after_close`` (``OrderStore.open_finding``), with the same key the daily
reconciliation gives it (``stranded_key``). Both are idempotent, so Cotpay's retries of the
same IPN add nothing. The store raises ``StoreUnavailable`` when it is down: the route then
answers 503, and Cotpay retries the IPN later.
"""

from __future__ import annotations

from datetime import UTC, datetime

from store.api import OrderStore
from store.models import Finding, FindingKind, MoneyKind
from workflows.models import DEFAULT_MERCHANT, IpnSignal
from workflows.reconcile_checks import stranded_key

EVENT_KIND = "ipn_after_close"


async def record_stranded_ipn(
    store: OrderStore, order_ref: str, signal: IpnSignal, merchant: str = DEFAULT_MERCHANT
) -> Finding:
    """Append the money event (when the store has ``merchant``'s order) and open its finding
    (the merchant's)."""
    body = signal.body
    # Cotpay's own time when it has an offset (a retried IPN then matches its first delivery),
    # else our receipt.
    told = body.time if body.time is not None and body.time.tzinfo is not None else None
    time = told or signal.received_at or datetime.now(UTC)
    amount = f"{body.amount:,} VND" if body.amount is not None else "an unknown amount"
    detail = (
        f"{signal.step.value} IPN {body.status} with {amount} after the order's workflow closed"
    )
    data = {
        "step": signal.step.value,
        "status": body.status,
        "code": body.code,
        "idOrder": body.idOrder,
        "amount": body.amount,
        "transactionId": body.transactionId,
    }
    event = await store.append_event(
        order_ref,
        merchant=merchant,
        time=time,
        kind=EVENT_KIND,
        detail=detail,
        data=data,
        money=MoneyKind.IPN_AFTER_CLOSE,
        cotpay_order_id=body.idOrder,
        transaction_id=body.transactionId[:128] if body.transactionId else None,
        amount=body.amount,
    )
    return await store.open_finding(
        FindingKind.IPN_AFTER_CLOSE,
        merchant=merchant,
        order_ref=order_ref,
        key=stranded_key(order_ref, body.transactionId, time),
        detail=detail,
        data={
            **data,
            "ipnStatus": body.status,
            "time": time.astimezone(UTC).isoformat(),
            "seq": event.seq if event is not None else None,
            "inStore": event is not None,
        },
    )
