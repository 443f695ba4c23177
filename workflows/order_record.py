"""The state of one escrow order inside its workflow: facts, timeline and IPN bookkeeping.

Plain deterministic code: every method takes the current time from the caller
(``workflow.now()``). IPNs are deduplicated by (step, status, transactionId, time): a resent
IPN repeats its body, while Cotpay's failure IPNs carry no transaction id, so only their time
tells a second PAYOUT_FAILED (of a retried payout) from a resent first one. A duplicate or a
stale IPN changes nothing. An IPN that arrives before this order knows its Cotpay order id
belongs to another order (an earlier use of the same orderRef: no payment precedes our
verify-order), and is ignored. Stale: a PAYOUT_FAILED or RETURN_REJECTED dated more than
``STALE_MARGIN`` before the latest call of its step answers an earlier call (the margin absorbs
clock skew between Cotpay and us, erring towards an operator check, never a missed failure).
Money outcomes are sticky: PAID_OUT beats a PAYOUT_FAILED that arrives later (or earlier,
reordered), REFUNDED beats RETURN_REJECTED.

``payout_live`` / ``return_live``: a payment / return-request call was made and Cotpay may have
acted on it (it answered 10100, or gave no definite answer); cleared by a definite refusal. A
payout is *in doubt* while live without a PAYOUT_FAILED; a return is *pending* while live without
a RETURN_REJECTED. The operator rules refuse the opposite money call meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cotpay.ipn import KNOWN_STATUSES, IpnStatus
from workflows.models import (
    Attention,
    EscrowStatus,
    IpnSignal,
    OrderInput,
    OrderView,
    TimelineEvent,
    workflow_id_for,
)
from workflows.rules import Facts

STALE_MARGIN = timedelta(minutes=10)


@dataclass
class OrderRecord:
    inp: OrderInput
    status: EscrowStatus
    status_since: datetime
    cotpay_order_id: int | None = None
    payment: str | None = None
    held_at: datetime | None = None
    delivered_at: datetime | None = None
    payout_not_before: datetime | None = None
    paid_out_at: datetime | None = None
    refunded_at: datetime | None = None
    attention: Attention | None = None
    attention_from: EscrowStatus | None = None
    waiting_for: str = ""
    timeline: list[TimelineEvent] = field(default_factory=list)
    holding_at: datetime | None = None
    payout_outcome: str | None = None
    return_outcome: str | None = None
    payout_started: bool = False
    payout_called_at: datetime | None = None
    return_called_at: datetime | None = None
    return_called: bool = False
    return_requested_at: datetime | None = None
    create_unanswered: bool = False
    payout_live: bool = False
    return_live: bool = False
    finish_note: str = ""
    creation_settled: bool = False
    cancel_requested: bool = False
    deadline_override: datetime | None = None
    seen_ipns: set[tuple[str, str, str, str]] = field(default_factory=set)

    def event(
        self,
        now: datetime,
        kind: str,
        detail: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        self.timeline.append(
            TimelineEvent(time=now, kind=kind, status=self.status, detail=detail, data=data)
        )

    def facts(self) -> Facts:
        return Facts(
            status=self.status,
            money_held=self.money_held,
            delivered=self.delivered_at is not None,
            payout_started=self.payout_started,
            attention_step=self.attention.step if self.attention else None,
            payout_in_doubt=self.payout_live and self.payout_outcome is None,
            return_pending=self.return_live and self.return_outcome is None,
        )

    @property
    def money_held(self) -> bool:
        """Cotpay holds the money: a HOLDING, and neither our status nor an IPN says it moved."""
        return (
            self.holding_at is not None
            and self.paid_out_at is None
            and not self.refunded
            and self.return_outcome != IpnStatus.REFUNDED
            and self.payout_outcome != IpnStatus.PAID_OUT
        )

    @property
    def refunded(self) -> bool:
        return self.refunded_at is not None

    def late_outcome(self) -> EscrowStatus | None:
        """A money outcome that arrived while the order waits for an operator (after a call of
        that step, answered or not: an unanswered call may still have been carried out)."""
        if self.return_called_at is not None and self.return_outcome == IpnStatus.REFUNDED:
            return EscrowStatus.REFUNDED
        if self.payout_called_at is not None and self.payout_outcome == IpnStatus.PAID_OUT:
            return EscrowStatus.PAID_OUT
        return None

    def record_ipn(self, sig: IpnSignal, now: datetime) -> bool:
        """Record one IPN; False when it was a duplicate (then nothing changed)."""
        body = sig.body
        told = body.time.isoformat() if body.time is not None else ""
        key = (sig.step.value, body.status, body.transactionId or "", told)
        if key in self.seen_ipns:
            return False
        self.seen_ipns.add(key)
        data: dict[str, Any] = {
            "step": sig.step.value,
            "status": body.status,
            "idOrder": body.idOrder,
            "code": body.code,
            "transactionId": body.transactionId,
            "amount": body.amount,
        }
        if body.message:
            data["message"] = body.message
        if self.cotpay_order_id is None:
            self.event(now, "ipn_ignored", "IPN before this order's Cotpay order exists", data)
            return True
        if body.idOrder is not None and body.idOrder != self.cotpay_order_id:
            self.event(now, "ipn_ignored", f"IPN for another Cotpay order {body.idOrder}", data)
            return True
        if body.status not in KNOWN_STATUSES:
            self.event(now, "ipn_unknown", f"{sig.step.value} {body.status} (unknown)", data)
            return True
        status = IpnStatus(body.status)
        if self._stale(status, body.time):
            self.event(now, "ipn_stale", f"{sig.step.value} {body.status} (earlier call)", data)
            return True
        self.event(now, "ipn", f"{sig.step.value} {body.status}", data)
        if status is IpnStatus.HOLDING:
            if self.holding_at is None:
                self.holding_at = _hold_time(sig, now)
        elif status in (IpnStatus.PAID_OUT, IpnStatus.PAYOUT_FAILED):
            self.payout_outcome = _sticky(self.payout_outcome, status, IpnStatus.PAID_OUT)
        elif status in (IpnStatus.REFUNDED, IpnStatus.RETURN_REJECTED):
            self.return_outcome = _sticky(self.return_outcome, status, IpnStatus.REFUNDED)
        return True

    def _stale(self, status: IpnStatus, told: datetime | None) -> bool:
        """A failure IPN dated before our latest call answers an earlier call: no effect."""
        if told is None or told.tzinfo is None:
            return False
        if status is IpnStatus.PAYOUT_FAILED and self.payout_called_at is not None:
            return told < self.payout_called_at - STALE_MARGIN
        if status is IpnStatus.RETURN_REJECTED and self.return_called_at is not None:
            return told < self.return_called_at - STALE_MARGIN
        return False

    def view(self) -> OrderView:
        inp = self.inp
        return OrderView(
            order_ref=inp.order_ref,
            workflow_id=workflow_id_for(inp.order_ref),
            status=self.status,
            cotpay_order_id=self.cotpay_order_id,
            seller_id=inp.seller_id,
            buyer_id=inp.buyer_id,
            amount=inp.amount,
            description=inp.description,
            pay_method=inp.pay_method,
            payout_rule=inp.payout_rule,
            payment=self.payment,
            held_at=self.held_at,
            delivered_at=self.delivered_at,
            payout_not_before=self.payout_not_before,
            paid_out_at=self.paid_out_at,
            refunded_at=self.refunded_at,
            attention=self.attention,
            waiting_for=self.waiting_for,
            timeline=list(self.timeline),
        )


def _sticky(current: str | None, new: IpnStatus, final: IpnStatus) -> str | None:
    return new.value if new is final or current is None else current


def _hold_time(sig: IpnSignal, now: datetime) -> datetime:
    """When the money was held: Cotpay's ``time`` when it is aware and not in the future of our
    receipt (the payout rule counts from Cotpay's hold), else when the IPN reached us (later,
    hence never an early payout)."""
    received = sig.received_at if sig.received_at and sig.received_at.tzinfo else now
    received = min(received, now)
    told = sig.body.time
    if told is not None and told.tzinfo is not None and told <= received:
        return told.astimezone(UTC)
    return received.astimezone(UTC)
