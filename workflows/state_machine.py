"""The escrow state machine: the order record and every state change, as plain code.

One file answers "what happens in state X" and "what does message M do" (docs/workflow.md):

* **Messages.** ``receive`` / ``receive_signal`` check a shop or operator message against its
  rule (``workflows/rules.py``) and, when accepted, apply it: ``confirm_delivery``,
  ``open_dispute``, ``cancel``, ``operator_action`` (``operator_retry``, ``operator_release``,
  ``operator_refund``, ``operator_cancel``). ``record_ipn`` records an IPN as a fact; the step
  waiting in the current status notices it.
* **Steps.** For each status, what the run loop waits for (a ``Wait``: a condition and a
  deadline) and what each outcome does: ``*_wait_over`` after a wait (message or timer),
  ``*_succeeded`` / ``*_failed`` and friends after a Cotpay call, ``attention_wait_over`` for a
  late IPN outcome.

Pure and deterministic: nothing here calls ``temporalio.workflow``; every method that changes
state takes ``now`` from the caller. The workflow (``workflows/escrow.py``) runs the Cotpay calls
and waits this module asks for and carries out each ``Effect`` (search-attribute upsert, current
details, attention log line) at the moment it is emitted, so the commands keep their order.

IPNs are deduplicated by (step, status, transactionId, time): a resent IPN repeats its body,
while Cotpay's failure IPNs carry no transaction id, so only their time tells a second
PAYOUT_FAILED (of a retried payout) from a resent first one. A duplicate or a stale IPN changes
nothing. An IPN that arrives before this order knows its Cotpay order id belongs to another
order (an earlier use of the same orderRef: no payment precedes our verify-order), and is
ignored. Stale: a PAYOUT_FAILED or RETURN_REJECTED dated more than ``STALE_MARGIN`` before the
latest call of its step answers an earlier call (the margin absorbs clock skew between Cotpay and
us, erring towards an operator check, never a missed failure). Money outcomes are sticky:
PAID_OUT beats a PAYOUT_FAILED that arrives later (or earlier, reordered), REFUNDED beats
RETURN_REJECTED.

IPN checks (``ipn_mismatch``): a HOLDING or REFUNDED IPN whose ``amount`` or ``idOrder`` differs
from the order's is recorded as ``ipn_mismatch`` with both values and is not trusted: it never
moves the order to HELD or REFUNDED. The step it would have moved (waiting for the payment, for
a late payment, or for the return's outcome) sends the order to NEEDS_ATTENTION (step
``ipn_check``) with the evidence. A value the IPN does not carry is not compared. ``ipn_checks``
says whether the checks apply (the workflow's patch: orders that replay an older history keep
the older behaviour).

Early outcomes (``ipn_early``, patch ``early-outcome-ipn``): a PAID_OUT recorded before any
payout call, or a REFUNDED before any return request, answers no call of ours: Cotpay does not
send it, a forged-yet-signed, replayed or misrouted one could. It is recorded with its evidence
and changes nothing: it never becomes the outcome of a later call of its kind (which keeps
Cotpay's own answer), nor money moved (``money_held`` stays as it was). A PAYOUT_FAILED or
RETURN_REJECTED before any call needs no such rule: each call clears the failure outcome of its
kind (``payout_call``, ``return_call``). ``early_guard`` says whether the rule applies (the
workflow's patch, asked only when such an IPN arrives).

``payout_live`` / ``return_live``: a payment / return-request call was made and Cotpay may have
acted on it (it answered 10100, or gave no definite answer); cleared by a definite refusal. A
payout is *in doubt* while live without a PAYOUT_FAILED; a return is *pending* while live without
a RETURN_REJECTED. The operator rules refuse the opposite money call meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from activities.models import (
    CallResult,
    CreateOrderInput,
    CreateOrderResult,
    CustomerCheckInput,
    OrderCallInput,
    SignUpInput,
    VerifyOrderInput,
)
from cotpay.ipn import KNOWN_STATUSES, IpnBody, IpnStatus
from cotpay.payout_window import earliest_payout, next_payout_slot
from workflows import rules
from workflows.calls import CREATION_STEPS, FATAL_AT_CREATE, Failure
from workflows.models import (
    TERMINAL_STATUSES,
    Attention,
    CancelRequest,
    DeliveryConfirmation,
    DisputeRequest,
    EscrowStatus,
    IpnSignal,
    OperatorAction,
    OrderInput,
    OrderView,
    PaymentInfo,
    TimelineEvent,
    workflow_id_for,
)
from workflows.summary import details_line, summary_for

S = EscrowStatus
STALE_MARGIN = timedelta(minutes=10)
TOO_EARLY_MIN_WAIT = timedelta(minutes=5)
MAX_TOO_EARLY = 10
AFTER_CLOSE = (
    "a HOLDING IPN after this reaches only the gateway log (ipn.after_close): check Cotpay"
)
# What each step says it waits for (``waitingFor``, the current details); the gateway and the
# CLI translate these texts (starter/i18n.py), so change them together.
CREATING_LINE = "Creating the order on Cotpay"
PAYMENT_LINE = "Waiting for buyer payment"
LINGER_LINE = "{status}; watching for a late payment"
HELD_LINE = "Money held; waiting for delivery confirmation"
DELIVERED_LINE = "Delivered; waiting for the payout slot"
SLOT_LINE = "Waiting for the payout slot"
PAYING_LINE = "Paying out to the seller"
PAID_LINE = "Paid out; waiting for Cotpay's confirmation"
RETURN_CALL_LINE = "Requesting a return"
RETURN_WAIT_LINE = "Waiting for the seller to decide the return"
ATTENTION_LINE = "Needs an operator: {reason}"
FINISHED_LINE = "Finished: {status}{note}"
IPN_CHECK_STEP = "ipn_check"
# An outcome IPN before any call of its kind (patch ``early-outcome-ipn``), by the call's step.
EARLY_PAYOUT = "payment"
EARLY_RETURN = "return"
EARLY_LINES = {
    EARLY_PAYOUT: "{step} {status} IPN before any payout call: not taken as a payout's outcome",
    EARLY_RETURN: "{step} {status} IPN before any return request: not taken as a return's outcome",
}
CHECKED_IPNS = frozenset({IpnStatus.HOLDING.value, IpnStatus.REFUNDED.value})

ShopMessage = DeliveryConfirmation | DisputeRequest | CancelRequest | OperatorAction

MESSAGE_NAMES: dict[type[Any], str] = {
    DeliveryConfirmation: "confirm_delivery",
    DisputeRequest: "open_dispute",
    CancelRequest: "cancel",
    OperatorAction: "operator_action",
}


# --- what the workflow must do for the record ------------------------------------------------


@dataclass(frozen=True)
class SearchUpdate:
    """Upsert the order's search attributes with these values (as they were when emitted)."""

    status: EscrowStatus
    cotpay_order_id: int | None
    payout_not_before: datetime | None


@dataclass(frozen=True)
class Details:
    """The current-details line changed (also ``OrderView.waiting_for``)."""

    line: str


@dataclass(frozen=True)
class AttentionRaised:
    """The order needs an operator: the workflow logs a warning."""

    reason: str
    step: str


Effect = SearchUpdate | Details | AttentionRaised


@dataclass(frozen=True)
class Wait:
    """What a step waits for: ``done`` ends the wait early; ``until`` is the deadline (None:
    wait for ``done`` only). After the wait, ``done()`` says which of the two happened."""

    done: Callable[[], bool]
    until: datetime | None


class Reply(StrEnum):
    """What a message did: it acted, it was already done, or (a signal) its rule refused it."""

    ACCEPTED = "accepted"
    NO_OP = "no_op"
    REFUSED = "refused"


def failure_data(failure: Failure) -> dict[str, Any]:
    return {"step": failure.step, "type": failure.type, "code": failure.code, **failure.data}


def ipn_mismatch(body: IpnBody, amount: int, id_order: int) -> dict[str, Any] | None:
    """How a HOLDING or REFUNDED IPN disagrees with the order (expected and received values);
    None when it agrees, or for another status. A missing ``amount`` or ``idOrder`` is not
    compared: Cotpay's IPN format is an assumption (``cotpay/ipn.py``)."""
    if body.status not in CHECKED_IPNS:
        return None
    wrong = []
    if body.amount is not None and body.amount != amount:
        wrong.append("amount")
    if body.idOrder is not None and body.idOrder != id_order:
        wrong.append("idOrder")
    if not wrong:
        return None
    parts = []
    if "amount" in wrong:
        parts.append(f"amount {body.amount} VND where the order is for {amount} VND")
    if "idOrder" in wrong:
        parts.append(f"Cotpay order {body.idOrder} where the order is {id_order}")
    return {
        "check": wrong,
        "reason": f"{body.status} IPN with {' and '.join(parts)}",
        "ipnStatus": body.status,
        "expectedAmount": amount,
        "receivedAmount": body.amount,
        "expectedIdOrder": id_order,
        "receivedIdOrder": body.idOrder,
        "transactionId": body.transactionId,
    }


@dataclass
class OrderRecord:
    inp: OrderInput
    status: EscrowStatus
    status_since: datetime
    # What the order view shows.
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
    # What the IPNs told (see the module docstring).
    holding_at: datetime | None = None
    payout_outcome: str | None = None
    return_outcome: str | None = None
    seen_ipns: set[tuple[str, str, str, str]] = field(default_factory=set)
    # A HOLDING / REFUNDED IPN that failed the checks, until the step it would move notices it.
    holding_problem: dict[str, Any] | None = None
    refund_problem: dict[str, Any] | None = None
    # The money calls: when they were made, whether Cotpay may have acted on them.
    payout_started: bool = False
    payout_called_at: datetime | None = None
    payout_live: bool = False
    too_early_answers: int = 0
    return_called: bool = False
    return_called_at: datetime | None = None
    return_requested_at: datetime | None = None
    return_live: bool = False
    # A return-request call is in flight; a RETURN_REJECTED was recorded meanwhile.
    return_in_flight: bool = False
    rejected_in_flight: bool = False
    # Creation, deadlines and the end.
    create_unanswered: bool = False
    creation_settled: bool = False
    cancel_requested: bool = False
    deadline_override: datetime | None = None
    finish_note: str = ""
    # The payout instant the DELIVERED step is about to set, shown by ``view`` meanwhile (an
    # update's answer); kept apart from ``payout_not_before`` so no upsert carries it early.
    announced_payout: datetime | None = None
    # Where effects go: the workflow's handler, or ``effects`` when None (unit tests).
    on_effect: Callable[[Effect], None] | None = field(default=None, repr=False, compare=False)
    effects: list[Effect] = field(default_factory=list, repr=False, compare=False)
    # Whether HOLDING and REFUNDED IPNs are checked (the workflow asks its patch, lazily).
    ipn_checks: Callable[[], bool] = field(default=lambda: True, repr=False, compare=False)
    # Whether a recorded PAID_OUT / REFUNDED stops further money calls and operator actions
    # (patch ``money-moved-guard``), and whether a RETURN_REJECTED that arrived while a return
    # request was in flight leaves it open (patch ``return-rejection-in-flight``); asked lazily,
    # only when the answer changes what happens.
    money_guard: Callable[[], bool] = field(default=lambda: True, repr=False, compare=False)
    return_guard: Callable[[], bool] = field(default=lambda: True, repr=False, compare=False)
    # Whether a PAID_OUT / REFUNDED recorded before any call of its kind is kept apart as
    # ``ipn_early`` (patch ``early-outcome-ipn``); asked only when such an IPN arrives.
    early_guard: Callable[[], bool] = field(default=lambda: True, repr=False, compare=False)
    # Whether a repeated delivery confirmation on a delivered order that now needs an operator
    # is answered as done rather than refused (patch ``repeated-delivery``; asked only then).
    repeat_guard: Callable[[], bool] = field(default=lambda: True, repr=False, compare=False)

    # --- facts -------------------------------------------------------------------------------

    def facts(self) -> rules.Facts:
        return rules.Facts(
            status=self.status,
            money_held=self.money_held,
            delivered=self.delivered_at is not None,
            payout_started=self.payout_started,
            attention_step=self.attention.step if self.attention else None,
            payout_in_doubt=self.payout_live and self.payout_outcome is None,
            return_pending=self.return_live and self.return_outcome is None,
            holding_recorded=self.holding_at is not None,
            money_moved=outcome.value if (outcome := self.late_outcome()) else None,
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

    def view(self) -> OrderView:
        inp = self.inp
        return OrderView(
            order_ref=inp.order_ref,
            workflow_id=workflow_id_for(inp.order_ref, inp.merchant),
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
            payout_not_before=self.announced_payout or self.payout_not_before,
            paid_out_at=self.paid_out_at,
            refunded_at=self.refunded_at,
            attention=self.attention,
            waiting_for=self.waiting_for,
            timeline=list(self.timeline),
        )

    def payment_info(self) -> PaymentInfo:
        return PaymentInfo(
            order_ref=self.inp.order_ref,
            status=self.status,
            cotpay_order_id=self.cotpay_order_id,
            payment=self.payment,
            error=self.attention,
        )

    # --- the state changes every path shares ----------------------------------------------

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

    def _emit(self, effect: Effect) -> None:
        if self.on_effect is None:
            self.effects.append(effect)
        else:
            self.on_effect(effect)

    def _search_update(self) -> None:
        self._emit(SearchUpdate(self.status, self.cotpay_order_id, self.payout_not_before))

    def _show(
        self, text: str, since: datetime | None = None, until: datetime | None = None
    ) -> None:
        line = details_line(text, since, until) if since is not None else text
        self.waiting_for = line
        self._emit(Details(line))

    def _transition(self, now: datetime, status: EscrowStatus, detail: str) -> None:
        if status not in (S.NEEDS_ATTENTION, S.FAILED):
            self.attention = None
        self.status = status
        self.status_since = now
        self.announced_payout = None
        self.event(now, "status", detail)
        self._search_update()

    def _set_payout_not_before(self, moment: datetime) -> None:
        self.payout_not_before = moment
        self.announced_payout = None
        self._search_update()

    def _needs_attention(
        self,
        now: datetime,
        reason: str,
        code: int | None,
        step: str,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.attention = Attention(reason=reason, code=code, since=now, step=step)
        self.attention_from = self.status
        if data:
            self.event(now, "evidence", reason, data)
        self._emit(AttentionRaised(reason, step))
        self._transition(now, S.NEEDS_ATTENTION, reason)

    def _stuck(self, now: datetime, failure: Failure) -> None:
        self._needs_attention(
            now, failure.reason, failure.code, failure.step, failure_data(failure)
        )

    def _left(self, status: EscrowStatus) -> Callable[[], bool]:
        return lambda: self.status is not status

    def started(self, now: datetime) -> None:
        self.event(now, "started", summary_for(self.inp))
        self._search_update()

    def call_failed(self, now: datetime, failure: Failure) -> None:
        """Any Cotpay call that did not succeed is recorded first, whatever follows."""
        self.event(now, "activity_failed", failure.reason, failure_data(failure))

    def finished(self) -> None:
        self._show(self._finished_line())

    def _finished_line(self) -> str:
        return FINISHED_LINE.format(status=self.status.value, note=self.finish_note)

    # --- the Cotpay calls' arguments ----------------------------------------------------------

    def customer_check(self) -> CustomerCheckInput:
        inp = self.inp
        return CustomerCheckInput(
            order_ref=inp.order_ref,
            seller_id=inp.seller_id,
            buyer_id=inp.buyer_id,
            merchant=inp.merchant,
        )

    def sign_up_input(self) -> SignUpInput:
        inp = self.inp
        assert inp.buyer is not None
        return SignUpInput(
            order_ref=inp.order_ref,
            name=inp.buyer.name,
            email=inp.buyer.email,
            phone=inp.buyer_id,
            agent_id=inp.agent_id,
            merchant=inp.merchant,
        )

    def create_order_input(self) -> CreateOrderInput:
        inp = self.inp
        return CreateOrderInput(
            order_ref=inp.order_ref,
            seller_id=inp.seller_id,
            buyer_id=inp.buyer_id,
            amount=inp.amount,
            description=inp.description,
            agent_id=inp.agent_id,
            earlier_call_unanswered=self.create_unanswered,
            merchant=inp.merchant,
        )

    def order_call(self) -> OrderCallInput:
        assert self.cotpay_order_id is not None
        inp = self.inp
        return OrderCallInput(
            order_ref=inp.order_ref,
            id_order=self.cotpay_order_id,
            seller_id=inp.seller_id,
            buyer_id=inp.buyer_id,
            merchant=inp.merchant,
        )

    def verify_order_input(self) -> VerifyOrderInput:
        call = self.order_call()
        return VerifyOrderInput(
            **call.model_dump(exclude={"merchant"}),
            merchant=call.merchant,
            pay_method=self.inp.pay_method,
        )

    # --- CREATING ----------------------------------------------------------------------------
    # customerID; sign-up when the buyer is unknown and a profile was given (a sign-up refused
    # with 10500 may mean the buyer exists by now: check once more); create-order; verify-order.

    def creating(self) -> None:
        self._show(CREATING_LINE, self.status_since)

    @property
    def needs_cotpay_order(self) -> bool:
        return self.cotpay_order_id is None

    def should_sign_up(self, checked: Failure) -> bool:
        return checked.type == "BuyerNotFound" and self.inp.buyer is not None

    def buyer_signed_up(self, now: datetime) -> None:
        self.event(now, "buyer_signed_up", "buyer signed up on Cotpay")

    def should_check_buyer_again(self, signed: Failure) -> bool:
        return signed.type == "ValidationFailed"

    def buyer_exists(self, now: datetime) -> None:
        self.event(now, "buyer_exists", "sign-up refused, but the buyer exists on Cotpay")

    def order_created(self, now: datetime, created: CreateOrderResult) -> None:
        self.cotpay_order_id = created.id_order
        how = "adopted the order created by an earlier attempt" if created.adopted else ""
        self.event(now, "order_created", how or "order created", {"idOrder": created.id_order})
        self._search_update()

    def create_failed(self, now: datetime, failure: Failure) -> None:
        self.create_unanswered = self.create_unanswered or not failure.definite
        self.creation_failed(now, failure)

    @property
    def needs_verify(self) -> bool:
        return self.payment is None and not self.cancel_requested

    def order_verified(self, now: datetime, verified: CallResult) -> None:
        self.payment = verified.data or ""
        self.event(now, "order_verified", f"payment data ready ({self.inp.pay_method.value})")

    def creation_failed(self, now: datetime, failure: Failure) -> None:
        """Seller/buyer unknown or invalid: FAILED; cancelled meanwhile: CANCELLED; otherwise
        an operator decides (``retry`` resumes at the failed step)."""
        if failure.type in FATAL_AT_CREATE:
            self.attention = Attention(
                reason=failure.reason, code=failure.code, since=now, step=failure.step
            )
            self._transition(now, S.FAILED, failure.reason)
        elif self.cancel_requested:
            self._transition(now, S.CANCELLED, f"cancelled; creation had failed: {failure.reason}")
        else:
            self._stuck(now, failure)
        self.creation_settled = True

    def creation_done(self, now: datetime) -> None:
        if self.cancel_requested:
            self._transition(now, S.CANCELLED, "cancelled while the order was being created")
        else:
            self._transition(now, S.AWAITING_PAYMENT, "waiting for the buyer to pay")
        self.creation_settled = True

    # --- AWAITING_PAYMENT --------------------------------------------------------------------

    def payment_wait(self) -> Wait:
        until = self._payment_until()
        self.deadline_override = None
        self._show(PAYMENT_LINE, self.status_since, until)
        return Wait(
            lambda: (
                self.holding_at is not None
                or self.holding_problem is not None
                or self.status is not S.AWAITING_PAYMENT
            ),
            until,
        )

    def _payment_until(self) -> datetime:
        return self.deadline_override or self.status_since + self.inp.timers.payment_window

    def payment_wait_over(self, now: datetime) -> None:
        if self.status is not S.AWAITING_PAYMENT:
            return
        if self.holding_at is not None:
            self.held_at = self.holding_at
            self._transition(now, S.HELD, "the buyer paid; Cotpay holds the money")
        elif self.holding_problem is not None:
            problem, self.holding_problem = self.holding_problem, None
            self._untrusted_ipn(now, problem)
        else:
            self._transition(now, S.EXPIRED, "no payment within the payment window")

    # --- EXPIRED, CANCELLED: money that still arrives is returned, never forgotten ---------

    def linger_wait(self) -> Wait | None:
        """None: no Cotpay order exists, so no money can arrive; the order is finished."""
        if self.cotpay_order_id is None:
            return None
        until = self.status_since + self.inp.timers.grace_period
        self._show(LINGER_LINE.format(status=self.status.value), self.status_since, until)
        return Wait(lambda: self.holding_at is not None or self.holding_problem is not None, until)

    def linger_over(self, now: datetime) -> bool:
        """True: the order is finished (no HOLDING within the grace period, or a PAID_OUT or
        REFUNDED already recorded: ``ends_by_ipn``)."""
        if self.ends_by_ipn(now):
            return True
        if self.holding_at is None and self.holding_problem is not None:
            problem, self.holding_problem = self.holding_problem, None
            self._untrusted_ipn(now, problem)
            return False
        if self.holding_at is None:
            self.event(now, "watch_ended", f"no HOLDING IPN within the grace period; {AFTER_CLOSE}")
            self.finish_note = f" ({AFTER_CLOSE})"
            return True
        self.held_at = self.holding_at
        self.event(now, "late_payment", f"money held after the order was {self.status.value}")
        self.return_called = False
        self._transition(now, S.RETURN_REQUESTED, "returning a late payment")
        return False

    # --- HELD ----------------------------------------------------------------------------------

    def held_wait(self) -> Wait:
        assert self.held_at is not None
        until = self._held_until()
        self.deadline_override = None
        self._show(HELD_LINE, self.status_since, until)
        return Wait(self._left(S.HELD), until)

    def _held_until(self) -> datetime:
        assert self.held_at is not None
        return self.deadline_override or self.held_at + self.inp.timers.delivery_deadline

    def held_wait_over(self, now: datetime) -> None:
        """The delivery deadline passed: release automatically, or ask an operator."""
        if self.status is not S.HELD:
            return
        assert self.held_at is not None
        if self.inp.auto_release:
            self.event(now, "auto_release", "delivery deadline passed; releasing automatically")
            self._set_payout_not_before(earliest_payout(self.held_at, rule=self.inp.payout_rule))
            self._transition(now, S.PAYING_OUT, "automatic release")
        else:
            self._needs_attention(
                now, "no delivery confirmation within the delivery deadline", None, "delivery"
            )

    # --- DELIVERED -----------------------------------------------------------------------------

    def delivered_wait(self) -> Wait:
        not_before = self._delivered_payout()
        self._set_payout_not_before(not_before)
        self._show(DELIVERED_LINE, self.status_since, not_before)
        return Wait(self._left(S.DELIVERED), not_before)

    def _delivered_payout(self) -> datetime:
        assert self.held_at is not None
        return earliest_payout(
            self.held_at,
            rule=self.inp.payout_rule,
            delivered_at=self.delivered_at,
            inspection_period=self.inp.timers.inspection_period,
        )

    def delivered_wait_over(self, now: datetime) -> None:
        if self.status is S.DELIVERED:
            self._transition(now, S.PAYING_OUT, "payout slot reached")

    # --- PAYING_OUT ----------------------------------------------------------------------------
    # Wait for payoutNotBefore (when an operator released early), call payment; 11100: wait for
    # the next payout slot and call again, at most MAX_TOO_EARLY times in a row.

    def paying_out(self) -> None:
        self.too_early_answers = 0

    def payout_slot_wait(self, now: datetime) -> Wait | None:
        """None: the slot is reached, call payment now."""
        self.payout_started = False
        not_before = self.payout_not_before
        if not_before is None or now >= not_before:
            return None
        self._show(SLOT_LINE, now, not_before)
        return Wait(self._left(S.PAYING_OUT), not_before)

    def payout_call(self, now: datetime) -> OrderCallInput:
        """The payout starts: from here until its outcome, no dispute, cancel or operator
        action (``rules.py``); no await between this and the call."""
        self.payout_started = True
        self.payout_live = True
        self.payout_called_at = now
        if self.payout_outcome != "PAID_OUT":
            self.payout_outcome = None
        self._show(PAYING_LINE, now)
        return self.order_call()

    def payout_succeeded(self, now: datetime) -> None:
        self.paid_out_at = now
        self._transition(now, S.PAID_OUT, "Cotpay paid the seller (10100)")

    def payout_failed(self, now: datetime, failure: Failure) -> bool:
        """True: 11100, call again once ``payout_slot_wait`` says so. Otherwise an operator
        decides; the payout stays in doubt unless the failure was definite."""
        self.payout_live = not failure.definite
        self.too_early_answers += 1
        if failure.type != "PayoutTooEarly" or self.too_early_answers >= MAX_TOO_EARLY:
            self._stuck(now, failure)
            return False
        rule = self.inp.payout_rule
        slot = max(next_payout_slot(now, rule=rule), now + TOO_EARLY_MIN_WAIT)
        self._set_payout_not_before(slot)
        self.event(now, "payout_too_early", f"11100: trying again at {slot.isoformat()}")
        return True

    # --- PAID_OUT: linger for the payout IPN ---------------------------------------------------

    def paid_out_wait(self) -> Wait:
        until = self.status_since + self.inp.timers.grace_period
        self._show(PAID_LINE, self.status_since, until)
        return Wait(lambda: self.payout_outcome is not None, until)

    def paid_out_wait_over(self, now: datetime) -> bool:
        """True: finished. A PAYOUT_FAILED after the 10100 answer needs an operator."""
        if self.payout_outcome == "PAYOUT_FAILED":
            self.paid_out_at = None
            self._needs_attention(
                now, "Cotpay reported PAYOUT_FAILED after paying out", None, "payment"
            )
            return False
        return True

    # --- RETURN_REQUESTED ----------------------------------------------------------------------

    @property
    def needs_return_call(self) -> bool:
        return not self.return_called

    def return_call(self, now: datetime) -> OrderCallInput:
        self.return_called_at = now
        self.return_live = True
        self.return_in_flight = True
        self.rejected_in_flight = False
        self.refund_problem = None
        if self.return_outcome != "REFUNDED":
            self.return_outcome = None
        self._show(RETURN_CALL_LINE, now)
        return self.order_call()

    def return_call_failed(self, now: datetime, failure: Failure) -> None:
        self.return_live = not failure.definite
        self.return_in_flight = False
        if not failure.definite:
            self._rejection_in_flight(now)
        self.rejected_in_flight = False
        self._stuck(now, failure)

    def return_requested(self, now: datetime) -> None:
        self.return_in_flight = False
        self._rejection_in_flight(now)
        self.return_called = True
        self.return_requested_at = now
        self.event(now, "return_requested", "Cotpay accepted the return request")

    def _rejection_in_flight(self, now: datetime) -> None:
        """Patch ``return-rejection-in-flight``: a RETURN_REJECTED that arrived while the return
        request was in flight may answer an earlier attempt of the same call whose answer was
        lost; the attempt that answered (or any attempt of a call left in doubt) may have opened
        a second return at Cotpay. The rejection then settles nothing: the return stays pending
        (``release`` refused) until the seller decides again."""
        if not self.rejected_in_flight:
            return
        self.rejected_in_flight = False
        if self.return_outcome != IpnStatus.RETURN_REJECTED or not self.return_guard():
            return
        self.return_outcome = None
        self.event(
            now,
            "rejection_in_flight",
            "RETURN_REJECTED arrived while the return request was in flight: it may answer an"
            " earlier attempt, and the request may be open at Cotpay again",
        )

    def return_wait(self) -> Wait:
        assert self.return_requested_at is not None
        until = self._return_until()
        self.deadline_override = None
        self._show(RETURN_WAIT_LINE, self.return_requested_at, until)
        return Wait(
            lambda: self.return_outcome is not None or self.refund_problem is not None, until
        )

    def _return_until(self) -> datetime:
        assert self.return_requested_at is not None
        return self.deadline_override or self.return_requested_at + self.inp.timers.return_window

    def return_wait_over(self, now: datetime) -> None:
        if self.return_outcome == "REFUNDED":
            self.refunded_at = now
            self._transition(now, S.REFUNDED, "the buyer was refunded")
        elif self.return_outcome == "RETURN_REJECTED":
            self._needs_attention(now, "the seller rejected the return", None, "return_rejected")
        elif self.refund_problem is not None:
            problem, self.refund_problem = self.refund_problem, None
            self._untrusted_ipn(now, problem)
        else:
            self._needs_attention(
                now, "no seller decision within the return window", None, "return_window"
            )

    # --- NEEDS_ATTENTION -----------------------------------------------------------------------

    def attention_wait(self) -> Wait:
        self._show(self._attention_line(), self.status_since)
        return Wait(
            lambda: self.status is not S.NEEDS_ATTENTION or self.late_outcome() is not None, None
        )

    def _attention_line(self) -> str:
        return ATTENTION_LINE.format(reason=self.attention.reason if self.attention else "unknown")

    def attention_wait_over(self, now: datetime) -> bool:
        """True: finished, a REFUNDED or PAID_OUT IPN arrived while waiting for an operator."""
        outcome = self.late_outcome()
        if self.status is not S.NEEDS_ATTENTION or outcome is None:
            return False
        if outcome is S.REFUNDED:
            self.refunded_at = now
        else:
            self.paid_out_at = now
        self._transition(now, outcome, f"{outcome.value} IPN while waiting for an operator")
        return True

    # --- before a money call, at the end of a linger (patch ``money-moved-guard``) -----------

    def ends_by_ipn(self, now: datetime) -> bool:
        """True: Cotpay already reported PAID_OUT or REFUNDED after a call of that step, so the
        order ends so instead of calling Cotpay again (asked just before a payout or return
        request and when a linger ends; an operator action and the IPN in one activation could
        otherwise lead to a second money call: finding F1, docs/reliability.md)."""
        outcome = self.late_outcome()
        if outcome is None or not self.money_guard():
            return False
        if outcome is S.REFUNDED:
            self.refunded_at = now
        else:
            self.paid_out_at = now
        self._transition(now, outcome, f"{outcome.value} IPN already recorded: no money call")
        return True

    # --- messages ------------------------------------------------------------------------------

    def check(self, msg: ShopMessage) -> bool:
        """The rule of ``msg`` (``workflows/rules.py``): raises ``rules.Refused`` when it is not
        allowed now, True when its effect already happened, False when it should act."""
        facts = self.facts()
        if isinstance(msg, DeliveryConfirmation):
            return rules.confirm_delivery(facts, self.repeat_guard)
        if isinstance(msg, DisputeRequest):
            return rules.open_dispute(facts)
        if isinstance(msg, CancelRequest):
            return rules.cancel(facts)
        return rules.operator_action(facts, msg.action, self.money_guard)

    def receive(self, now: datetime, msg: ShopMessage) -> Reply:
        """An update: raises ``rules.Refused`` (the update fails), or acts."""
        if self.check(msg):
            return Reply.NO_OP
        self._apply(now, msg)
        return Reply.ACCEPTED

    def receive_signal(self, now: datetime, msg: ShopMessage) -> Reply:
        """A signal cannot be refused: one its rule refuses is recorded as ``signal_rejected``
        and changes nothing else."""
        try:
            if self.check(msg):
                return Reply.NO_OP
        except ValueError as err:
            self.event(now, "signal_rejected", f"{MESSAGE_NAMES[type(msg)]}: {err}")
            return Reply.REFUSED
        self._apply(now, msg)
        return Reply.ACCEPTED

    def _apply(self, now: datetime, msg: ShopMessage) -> None:
        if isinstance(msg, DeliveryConfirmation):
            self.confirm_delivery(now, msg)
        elif isinstance(msg, DisputeRequest):
            self.open_dispute(now, msg)
        elif isinstance(msg, CancelRequest):
            self.cancel(now, msg)
        else:
            self.operator_action(now, msg)
        self.announce(now)

    def announce(self, now: datetime) -> None:
        """Show what the step of the current status will show first, before it runs.

        A message changes the status inside its handler; the run loop's step for the new status
        runs after the handler returned. So that an update's answer already says what a status
        read says a moment later (``waitingFor`` and its deadline, and entering DELIVERED the
        payout instant), this computes the step's first line with the step's own functions. It
        emits nothing: the step still upserts the search attributes and sets the current
        details when it runs, so the workflow's commands do not change."""
        s = self.status
        since: datetime | None = self.status_since
        until: datetime | None = None
        if s is S.CREATING:
            line = CREATING_LINE
        elif s is S.AWAITING_PAYMENT:
            line, until = PAYMENT_LINE, self._payment_until()
        elif s is S.HELD and self.held_at is not None:
            line, until = HELD_LINE, self._held_until()
        elif s is S.DELIVERED and self.held_at is not None:
            line, until = DELIVERED_LINE, self._delivered_payout()
            self.announced_payout = until
        elif s is S.PAYING_OUT:
            not_before = self.payout_not_before
            waits = not_before is not None and now < not_before
            line, since, until = (SLOT_LINE, now, not_before) if waits else (PAYING_LINE, now, None)
        elif s is S.PAID_OUT:
            line, until = PAID_LINE, self.status_since + self.inp.timers.grace_period
        elif s is S.RETURN_REQUESTED and self.needs_return_call:
            line, since = RETURN_CALL_LINE, now
        elif s is S.RETURN_REQUESTED and self.return_requested_at is not None:
            line, since, until = RETURN_WAIT_LINE, self.return_requested_at, self._return_until()
        elif s is S.NEEDS_ATTENTION:
            line = self._attention_line()
        elif s in (S.EXPIRED, S.CANCELLED) and self.cotpay_order_id is not None:
            line = LINGER_LINE.format(status=s.value)
            until = self.status_since + self.inp.timers.grace_period
        elif s in TERMINAL_STATUSES:
            line, since = self._finished_line(), None
        else:  # a state the record cannot reach from a message: keep the line as it is
            return
        self.waiting_for = details_line(line, since, until) if since is not None else line

    def confirm_delivery(self, now: datetime, msg: DeliveryConfirmation) -> None:
        """Accepted in HELD (or NEEDS_ATTENTION after the delivery deadline): DELIVERED. The
        shop's ``deliveredAt`` counts when it is aware and not in the future."""
        told = msg.delivered_at
        aware = told is not None and told.tzinfo is not None
        self.delivered_at = told if told is not None and aware and told <= now else now
        self.event(now, "delivery_confirmed", msg.note)
        self._transition(now, S.DELIVERED, "delivery confirmed")

    def open_dispute(self, now: datetime, msg: DisputeRequest) -> None:
        """Accepted in HELD, DELIVERED, PAYING_OUT before the payout call, NEEDS_ATTENTION after
        the delivery deadline: a (new) return request."""
        self.event(now, "dispute_opened", msg.reason)
        self.return_called = False
        self._transition(now, S.RETURN_REQUESTED, "dispute opened: requesting a return")

    def cancel(self, now: datetime, msg: CancelRequest) -> None:
        """While CREATING the cancel waits for the creation step to end (``creation_done``)."""
        self.event(now, "cancel_requested", msg.reason)
        if self.status is S.CREATING:
            self.cancel_requested = True
        else:
            self._transition(now, S.CANCELLED, "cancelled by the shop")

    def operator_action(self, now: datetime, msg: OperatorAction) -> None:
        self.event(now, "operator_action", f"{msg.action} by {msg.operator or '?'}: {msg.note}")
        if msg.action == "retry":
            self.operator_retry(now)
        elif msg.action == "release":
            self.operator_release(now)
        elif msg.action == "refund":
            self.operator_refund(now)
        else:
            self.operator_cancel(now)

    def operator_retry(self, now: datetime) -> None:
        """Resume at the step that needed the operator, skipping what already succeeded."""
        step = self.attention.step if self.attention else None
        if step in CREATION_STEPS:
            self.creation_settled = False
            self._transition(now, S.CREATING, "operator retry")
        elif step == "payment":
            self._transition(now, S.PAYING_OUT, "operator retry")
        elif step in ("return", "return_rejected", "return_window"):
            self.return_called = False
            self._transition(now, S.RETURN_REQUESTED, "operator retry")
        elif step == "delivery":
            self.deadline_override = now + self.inp.timers.delivery_deadline
            self._transition(now, S.HELD, "operator retry: waiting for delivery again")
        else:
            self._transition(now, self.attention_from or S.CREATING, "operator retry")

    def operator_release(self, now: datetime) -> None:
        """Pay out, no earlier than the payout window of the hold allows."""
        self.held_at = self.held_at or self.holding_at
        assert self.held_at is not None
        self._set_payout_not_before(earliest_payout(self.held_at, rule=self.inp.payout_rule))
        self._transition(now, S.PAYING_OUT, "operator release")

    def operator_refund(self, now: datetime) -> None:
        self.return_called = False
        self._transition(now, S.RETURN_REQUESTED, "operator refund: requesting a return")

    def operator_cancel(self, now: datetime) -> None:
        self._transition(now, S.CANCELLED, "cancelled by an operator")

    # --- IPNs ----------------------------------------------------------------------------------

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
        mismatch = ipn_mismatch(body, self.inp.amount, self.cotpay_order_id)
        if mismatch is not None and self.ipn_checks():
            self._record_mismatch(now, sig, data, mismatch)
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
        early = self._early(status)
        if early is not None and self.early_guard():
            self._record_early(now, sig, data, early)
            return True
        self.event(now, "ipn", f"{sig.step.value} {body.status}", data)
        if status is IpnStatus.HOLDING:
            if self.holding_at is None:
                self.holding_at = _hold_time(sig, now)
        elif status in (IpnStatus.PAID_OUT, IpnStatus.PAYOUT_FAILED):
            self.payout_outcome = _sticky(self.payout_outcome, status, IpnStatus.PAID_OUT)
        elif status in (IpnStatus.REFUNDED, IpnStatus.RETURN_REJECTED):
            self.return_outcome = _sticky(self.return_outcome, status, IpnStatus.REFUNDED)
            if status is IpnStatus.RETURN_REJECTED and self.return_in_flight:
                self.rejected_in_flight = True
        return True

    def _record_mismatch(
        self, now: datetime, sig: IpnSignal, data: dict[str, Any], evidence: dict[str, Any]
    ) -> None:
        """Record an IPN that failed the checks; keep it for the step it would have moved."""
        self.event(now, "ipn_mismatch", f"{sig.step.value} {evidence['reason']}", data | evidence)
        problem = {"step": sig.step.value, **evidence}
        holding = sig.body.status == IpnStatus.HOLDING
        if holding and self.holding_at is None and self.holding_problem is None:
            self.holding_problem = problem
        refund_open = not self.refunded and self.return_outcome != IpnStatus.REFUNDED
        if not holding and refund_open and self.refund_problem is None:
            self.refund_problem = problem

    def _early(self, status: IpnStatus) -> str | None:
        """The call whose outcome ``status`` would be, when none of that kind was issued yet: a
        PAID_OUT before any payout call, a REFUNDED before any return request."""
        if status is IpnStatus.PAID_OUT and self.payout_called_at is None:
            return EARLY_PAYOUT
        if status is IpnStatus.REFUNDED and self.return_called_at is None:
            return EARLY_RETURN
        return None

    def _record_early(self, now: datetime, sig: IpnSignal, data: dict[str, Any], call: str) -> None:
        """Patch ``early-outcome-ipn``: an outcome IPN that no call of ours can have caused (a
        forged-yet-signed, replayed or misrouted one; Cotpay does not send it) is recorded with
        its evidence and counts as nothing: not as the outcome of a later call, not as money
        moved. The money calls that follow get Cotpay's own answer (findings F2, F3,
        docs/reliability.md)."""
        what = EARLY_LINES[call].format(step=sig.step.value, status=sig.body.status)
        self.event(now, "ipn_early", what, data | {"check": "before_call", "call": call})

    def _untrusted_ipn(self, now: datetime, problem: dict[str, Any]) -> None:
        """The step an IPN would have moved stops at an operator, with both values as evidence."""
        reason = f"{problem['reason']}: not trusted, check the payment at Cotpay"
        self._needs_attention(now, reason, None, IPN_CHECK_STEP, problem)

    def _stale(self, status: IpnStatus, told: datetime | None) -> bool:
        """A failure IPN dated before our latest call answers an earlier call: no effect."""
        if told is None or told.tzinfo is None:
            return False
        if status is IpnStatus.PAYOUT_FAILED and self.payout_called_at is not None:
            return told < self.payout_called_at - STALE_MARGIN
        if status is IpnStatus.RETURN_REJECTED and self.return_called_at is not None:
            return told < self.return_called_at - STALE_MARGIN
        return False


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
