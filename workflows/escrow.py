"""``EscrowOrderWorkflow``: one Cotpay escrow order as one durable workflow (DESIGN.md 5).

The run loop executes one step per status; each step either calls Cotpay (activities) or waits
for a message or its timer, then moves the order on. Message handlers record facts (IPNs) or,
once their validator accepted them, move the status themselves; the waiting step notices.
Every wait races a message against a timer with ``workflow.wait_condition(..., timeout=...)``.

Versioning: any change to the commands this code issues goes behind ``workflow.patched`` and the
replay test over ``tests/replay/histories`` must stay green (docs/workflow.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from activities.models import (
        CallResult,
        CreateOrderInput,
        CustomerCheckInput,
        OrderCallInput,
        SignUpInput,
        VerifyOrderInput,
    )
    from cotpay.payout_window import earliest_payout, next_payout_slot
    from workflows import calls
    from workflows.escrow_messages import EscrowMessages
    from workflows.models import WORKFLOW_TYPE, EscrowStatus, OrderInput, OrderView

S = EscrowStatus
A = TypeVar("A", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)
TOO_EARLY_MIN_WAIT = timedelta(minutes=5)
MAX_TOO_EARLY = 10
AFTER_CLOSE = (
    "a HOLDING IPN after this reaches only the gateway log (ipn.after_close): check Cotpay"
)


@workflow.defn(name=WORKFLOW_TYPE)
class EscrowOrderWorkflow(EscrowMessages):
    @workflow.init
    def __init__(self, inp: OrderInput) -> None:
        super().__init__(inp)

    @workflow.run
    async def run(self, inp: OrderInput) -> OrderView:
        self._started()
        steps: dict[EscrowStatus, Callable[[], Awaitable[bool]]] = {
            S.CREATING: self._creating,
            S.AWAITING_PAYMENT: self._awaiting_payment,
            S.HELD: self._held,
            S.DELIVERED: self._delivered,
            S.PAYING_OUT: self._paying_out,
            S.PAID_OUT: self._paid_out,
            S.RETURN_REQUESTED: self._returning,
            S.NEEDS_ATTENTION: self._needs_attention,
            S.EXPIRED: self._linger,
            S.CANCELLED: self._linger,
        }
        while (step := steps.get(self._o.status)) is not None:
            if await step():
                break
        self._waiting(f"Finished: {self._o.status.value}{self._o.finish_note}")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._o.view()

    # --- helpers ---------------------------------------------------------------------------

    async def _wait(self, done: Callable[[], bool], until: datetime | None) -> bool:
        """Wait until ``done()`` or the deadline; True when ``done()`` holds."""
        if until is None:
            await workflow.wait_condition(done)
            return True
        remaining = until - workflow.now()
        if remaining > timedelta(0):
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(done, timeout=remaining)
        return done()

    def _left(self, status: EscrowStatus) -> Callable[[], bool]:
        return lambda: self._o.status is not status

    async def _call(self, call: calls.Call[A, R], arg: A) -> R | calls.Failure:
        try:
            return await workflow.execute_activity_method(
                call.activity,
                arg,
                start_to_close_timeout=calls.START_TO_CLOSE,
                schedule_to_close_timeout=call.schedule_to_close,
                retry_policy=calls.RETRY,
            )
        except ActivityError as err:
            failure = calls.failure_of(call, err)
            self._event("activity_failed", failure.reason, self._failure_data(failure))
            return failure

    @staticmethod
    def _failure_data(failure: calls.Failure) -> dict[str, Any]:
        return {"step": failure.step, "type": failure.type, "code": failure.code, **failure.data}

    def _order_call(self) -> OrderCallInput:
        o = self._o
        assert o.cotpay_order_id is not None
        return OrderCallInput(
            order_ref=o.inp.order_ref,
            id_order=o.cotpay_order_id,
            seller_id=o.inp.seller_id,
            buyer_id=o.inp.buyer_id,
        )

    def _failed(self, failure: calls.Failure) -> None:
        self._o.attention = self._attention_for(failure.reason, failure.code, failure.step)
        self._transition(S.FAILED, failure.reason)

    def _stuck(self, failure: calls.Failure) -> None:
        self._attention_needed(
            failure.reason, failure.code, failure.step, self._failure_data(failure)
        )

    # --- CREATING --------------------------------------------------------------------------

    async def _creating(self) -> bool:
        o, inp = self._o, self._o.inp
        self._waiting("Creating the order on Cotpay", o.status_since)
        if o.cotpay_order_id is None:
            if not await self._check_users():
                return self._creation_settled()
            created = await self._call(
                calls.CREATE_ORDER,
                CreateOrderInput(
                    order_ref=inp.order_ref,
                    seller_id=inp.seller_id,
                    buyer_id=inp.buyer_id,
                    amount=inp.amount,
                    description=inp.description,
                    agent_id=inp.agent_id,
                    earlier_call_unanswered=o.create_unanswered,
                ),
            )
            if isinstance(created, calls.Failure):
                o.create_unanswered = o.create_unanswered or not created.definite
                self._creation_failed(created)
                return self._creation_settled()
            o.cotpay_order_id = created.id_order
            how = "adopted the order created by an earlier attempt" if created.adopted else ""
            self._event("order_created", how or "order created", {"idOrder": created.id_order})
            self._upsert()
        if o.payment is None and not o.cancel_requested:
            verified = await self._call(
                calls.VERIFY_ORDER,
                VerifyOrderInput(**self._order_call().model_dump(), pay_method=inp.pay_method),
            )
            if isinstance(verified, calls.Failure):
                self._creation_failed(verified)
                return self._creation_settled()
            o.payment = verified.data or ""
            self._event("order_verified", f"payment data ready ({inp.pay_method.value})")
        if o.cancel_requested:
            self._transition(S.CANCELLED, "cancelled while the order was being created")
        else:
            self._transition(S.AWAITING_PAYMENT, "waiting for the buyer to pay")
        return self._creation_settled()

    def _creation_settled(self) -> bool:
        self._o.creation_settled = True
        return False

    async def _customers(self) -> CallResult | calls.Failure:
        inp = self._o.inp
        return await self._call(
            calls.CUSTOMER_ID,
            CustomerCheckInput(
                order_ref=inp.order_ref, seller_id=inp.seller_id, buyer_id=inp.buyer_id
            ),
        )

    async def _check_users(self) -> bool:
        """A sign-up refused with 10500 may mean the buyer exists by now (an unanswered earlier
        attempt registered them, or another order did): check once more before failing."""
        inp = self._o.inp
        checked = await self._customers()
        if not isinstance(checked, calls.Failure):
            return True
        if checked.type == "BuyerNotFound" and inp.buyer is not None:
            signed = await self._call(
                calls.SIGN_UP,
                SignUpInput(
                    order_ref=inp.order_ref,
                    name=inp.buyer.name,
                    email=inp.buyer.email,
                    phone=inp.buyer_id,
                    agent_id=inp.agent_id,
                ),
            )
            if not isinstance(signed, calls.Failure):
                self._event("buyer_signed_up", "buyer signed up on Cotpay")
                return True
            if signed.type == "ValidationFailed" and not isinstance(
                await self._customers(), calls.Failure
            ):
                self._event("buyer_exists", "sign-up refused, but the buyer exists on Cotpay")
                return True
            checked = signed
        self._creation_failed(checked)
        return False

    def _creation_failed(self, failure: calls.Failure) -> None:
        if failure.type in calls.FATAL_AT_CREATE:
            self._failed(failure)
        elif self._o.cancel_requested:
            self._transition(S.CANCELLED, f"cancelled; creation had failed: {failure.reason}")
        else:
            self._stuck(failure)

    # --- AWAITING_PAYMENT, EXPIRED, CANCELLED ------------------------------------------------

    async def _awaiting_payment(self) -> bool:
        o = self._o
        until = o.deadline_override or o.status_since + o.inp.timers.payment_window
        o.deadline_override = None
        self._waiting("Waiting for buyer payment", o.status_since, until)
        paid = await self._wait(
            lambda: o.holding_at is not None or o.status is not S.AWAITING_PAYMENT, until
        )
        if o.status is not S.AWAITING_PAYMENT:
            return False
        if paid and o.holding_at is not None:
            o.held_at = o.holding_at
            self._transition(S.HELD, "the buyer paid; Cotpay holds the money")
        else:
            self._transition(S.EXPIRED, "no payment within the payment window")
        return False

    async def _linger(self) -> bool:
        """After EXPIRED or CANCELLED: money that still arrives is returned, never forgotten."""
        o = self._o
        if o.cotpay_order_id is None:
            return True
        until = o.status_since + o.inp.timers.grace_period
        self._waiting(f"{o.status.value}; watching for a late payment", o.status_since, until)
        if not await self._wait(lambda: o.holding_at is not None, until):
            self._event("watch_ended", f"no HOLDING IPN within the grace period; {AFTER_CLOSE}")
            o.finish_note = f" ({AFTER_CLOSE})"
            return True
        o.held_at = o.holding_at
        self._event("late_payment", f"money held after the order was {o.status.value}")
        o.return_called = False
        self._transition(S.RETURN_REQUESTED, "returning a late payment")
        return False

    # --- HELD, DELIVERED, PAYING_OUT, PAID_OUT -----------------------------------------------

    async def _held(self) -> bool:
        o = self._o
        assert o.held_at is not None
        until = o.deadline_override or o.held_at + o.inp.timers.delivery_deadline
        o.deadline_override = None
        self._waiting("Money held; waiting for delivery confirmation", o.status_since, until)
        if await self._wait(self._left(S.HELD), until):
            return False
        if o.inp.auto_release:
            self._event("auto_release", "delivery deadline passed; releasing automatically")
            self._set_payout_not_before(earliest_payout(o.held_at, rule=o.inp.payout_rule))
            self._transition(S.PAYING_OUT, "automatic release")
        else:
            self._attention_needed(
                "no delivery confirmation within the delivery deadline", None, "delivery"
            )
        return False

    async def _delivered(self) -> bool:
        o = self._o
        assert o.held_at is not None
        not_before = earliest_payout(
            o.held_at,
            rule=o.inp.payout_rule,
            delivered_at=o.delivered_at,
            inspection_period=o.inp.timers.inspection_period,
        )
        self._set_payout_not_before(not_before)
        self._waiting("Delivered; waiting for the payout slot", o.status_since, not_before)
        if await self._wait(self._left(S.DELIVERED), not_before):
            return False
        self._transition(S.PAYING_OUT, "payout slot reached")
        return False

    async def _paying_out(self) -> bool:
        o = self._o
        too_early = 0
        while True:
            o.payout_started = False
            not_before = o.payout_not_before
            if not_before is not None and workflow.now() < not_before:
                self._waiting("Waiting for the payout slot", workflow.now(), not_before)
                if await self._wait(self._left(S.PAYING_OUT), not_before):
                    return False
            o.payout_started = True
            o.payout_live = True
            o.payout_called_at = workflow.now()
            if o.payout_outcome != "PAID_OUT":
                o.payout_outcome = None
            self._waiting("Paying out to the seller", workflow.now())
            paid = await self._call(calls.PAYMENT, self._order_call())
            if not isinstance(paid, calls.Failure):
                o.paid_out_at = workflow.now()
                self._transition(S.PAID_OUT, "Cotpay paid the seller (10100)")
                return False
            o.payout_live = not paid.definite
            too_early += 1
            if paid.type != "PayoutTooEarly" or too_early >= MAX_TOO_EARLY:
                self._stuck(paid)
                return False
            now = workflow.now()
            slot = max(next_payout_slot(now, rule=o.inp.payout_rule), now + TOO_EARLY_MIN_WAIT)
            self._set_payout_not_before(slot)
            self._event("payout_too_early", f"11100: trying again at {slot.isoformat()}")

    async def _paid_out(self) -> bool:
        """Linger for the payout IPN: a PAYOUT_FAILED after the 10100 answer needs an operator."""
        o = self._o
        until = o.status_since + o.inp.timers.grace_period
        self._waiting("Paid out; waiting for Cotpay's confirmation", o.status_since, until)
        await self._wait(lambda: o.payout_outcome is not None, until)
        if o.payout_outcome == "PAYOUT_FAILED":
            o.paid_out_at = None
            self._attention_needed(
                "Cotpay reported PAYOUT_FAILED after paying out", None, "payment"
            )
            return False
        return True

    # --- RETURN_REQUESTED, NEEDS_ATTENTION ---------------------------------------------------

    async def _returning(self) -> bool:
        o = self._o
        if not o.return_called:
            o.return_called_at = workflow.now()
            o.return_live = True
            if o.return_outcome != "REFUNDED":
                o.return_outcome = None
            self._waiting("Requesting a return", workflow.now())
            asked = await self._call(calls.RETURN_REQUEST, self._order_call())
            if isinstance(asked, calls.Failure):
                o.return_live = not asked.definite
                self._stuck(asked)
                return False
            o.return_called = True
            o.return_requested_at = workflow.now()
            self._event("return_requested", "Cotpay accepted the return request")
        assert o.return_requested_at is not None
        until = o.deadline_override or o.return_requested_at + o.inp.timers.return_window
        o.deadline_override = None
        self._waiting("Waiting for the seller to decide the return", o.return_requested_at, until)
        await self._wait(lambda: o.return_outcome is not None, until)
        if o.return_outcome == "REFUNDED":
            o.refunded_at = workflow.now()
            self._transition(S.REFUNDED, "the buyer was refunded")
        elif o.return_outcome == "RETURN_REJECTED":
            self._attention_needed("the seller rejected the return", None, "return_rejected")
        else:
            self._attention_needed(
                "no seller decision within the return window", None, "return_window"
            )
        return False

    async def _needs_attention(self) -> bool:
        o = self._o
        reason = o.attention.reason if o.attention else "unknown"
        self._waiting(f"Needs an operator: {reason}", o.status_since)
        await workflow.wait_condition(
            lambda: o.status is not S.NEEDS_ATTENTION or o.late_outcome() is not None
        )
        outcome = o.late_outcome()
        if o.status is S.NEEDS_ATTENTION and outcome is not None:
            if outcome is S.REFUNDED:
                o.refunded_at = workflow.now()
            else:
                o.paid_out_at = workflow.now()
            self._transition(outcome, f"{outcome.value} IPN while waiting for an operator")
            return True
        return False

    def _resume_after_retry(self) -> None:
        o = self._o
        step = o.attention.step if o.attention else None
        now = workflow.now()
        if step in calls.CREATION_STEPS:
            o.creation_settled = False
            self._transition(S.CREATING, "operator retry")
        elif step == "payment":
            self._transition(S.PAYING_OUT, "operator retry")
        elif step in ("return", "return_rejected", "return_window"):
            o.return_called = False
            self._transition(S.RETURN_REQUESTED, "operator retry")
        elif step == "delivery":
            o.deadline_override = now + o.inp.timers.delivery_deadline
            self._transition(S.HELD, "operator retry: waiting for delivery again")
        else:
            self._transition(o.attention_from or S.CREATING, "operator retry")

    def _release(self) -> None:
        o = self._o
        o.held_at = o.held_at or o.holding_at
        assert o.held_at is not None
        self._set_payout_not_before(earliest_payout(o.held_at, rule=o.inp.payout_rule))
        self._transition(S.PAYING_OUT, "operator release")
