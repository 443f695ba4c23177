"""A pure driver of the order record that mirrors the run loop of ``workflows/escrow.py``.

``EscrowOrderWorkflow.run`` executes one step per status; every ``await`` in it is either a
Cotpay call (``_call``) or a wait (``_wait``: a condition raced against a timer). Here the same
steps are generators that *yield* at each of those points, a ``CallPoint`` or a ``WaitPoint``,
so a test decides what happens there: it answers the call (a result, a definite failure or no
answer), lets messages and IPNs in, or moves the clock past the wait's deadline. The step bodies
are line for line those of ``escrow.py`` with ``workflow.now()`` replaced by ``Driver.now``;
``tests/unit/test_state_machine_properties.py::test_the_driver_mirrors_the_run_loop`` compares
the record methods each step calls here and there, so the two cannot drift apart unnoticed.

What Temporal guarantees and this driver models (docs/workflow.md, "Guarantees"):

* A message handler runs to its end before the run loop continues: the update validator and its
  handler run back to back in one task (the SDK runs the validator, then the ``async`` handler,
  whose ``receive`` comes before any ``await``), and a signal handler is synchronous. Messages
  delivered in one workflow activation all run before the run loop resumes (``deliver`` takes a
  batch).
* A wait whose condition already holds, or whose deadline already passed, does not let new
  messages in: ``settle`` resumes it at once.
* A timer fires at its deadline: ``advance`` resumes a wait at ``until`` exactly.
* Once the run returns, the workflow is closed: messages no longer reach it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from workflows import calls
from workflows.calls import Failure
from workflows.models import EscrowStatus, OrderInput, OrderView
from workflows.state_machine import OrderRecord, Wait

S = EscrowStatus
MAX_RESUMES = 1000


@dataclass(frozen=True)
class CallPoint:
    """The run loop awaits this Cotpay call; answer it with ``Driver.answer``."""

    call: calls.Call[Any, Any]
    arg: BaseModel
    at: datetime


@dataclass(frozen=True)
class WaitPoint:
    """The run loop awaits ``wait.done()`` or ``wait.until``."""

    wait: Wait
    status: EscrowStatus


Point = CallPoint | WaitPoint
Steps = Generator[Point, Any, Any]


class Driver:
    """One order: the record, the clock, and where the run loop stands."""

    def __init__(
        self,
        inp: OrderInput,
        now: datetime,
        on_call: Callable[[CallPoint], None] | None = None,
    ) -> None:
        self.now = now
        self.o = OrderRecord(inp=inp, status=S.CREATING, status_since=now)
        self.on_call = on_call
        self.pending: Point | None = None
        self.finished = False
        self.result: OrderView | None = None
        self.resumes = 0
        self._run_loop = self._run()
        self._resume(None)
        self.settle()

    # --- what a test does ---------------------------------------------------------------------

    def answer(self, outcome: BaseModel | Failure, took: timedelta) -> None:
        """The pending Cotpay call ends after ``took`` with ``outcome``."""
        assert isinstance(self.pending, CallPoint), self.pending
        self.now += took
        self._resume(outcome)
        self.settle()

    def advance(self, delta: timedelta) -> None:
        """Time passes; each timer that falls due fires at its deadline. A Cotpay call that
        starts meanwhile stops the clock there (its duration is ``answer``'s ``took``)."""
        target = self.now + delta
        for _ in range(MAX_RESUMES):
            p = self.pending
            if isinstance(p, WaitPoint) and p.wait.until is not None and p.wait.until <= target:
                self.now = max(self.now, p.wait.until)
                self._resume(None)
                self.settle()
                continue
            if not isinstance(p, CallPoint):
                self.now = target
            return
        raise AssertionError("timers keep firing without end")

    def expire(self, extra: timedelta = timedelta(0)) -> None:
        """The pending wait's timer fires (``extra`` after its deadline)."""
        p = self.pending
        assert isinstance(p, WaitPoint) and p.wait.until is not None, p
        self.now = max(self.now, p.wait.until + extra)
        self._resume(None)
        self.settle()

    def due(self, extra: timedelta = timedelta(0)) -> None:
        """The clock reaches the pending wait's deadline (plus ``extra``); ``settle`` then
        fires the timer, after the messages of the same activation."""
        p = self.pending
        assert isinstance(p, WaitPoint) and p.wait.until is not None, p
        self.now = max(self.now, p.wait.until + extra)

    def settle(self) -> None:
        """Let the run loop go on as far as it can without a new event: a wait whose condition
        holds (or whose deadline passed) returns at once."""
        for _ in range(MAX_RESUMES):
            p = self.pending
            if not isinstance(p, WaitPoint):
                return
            due = p.wait.until is not None and self.now >= p.wait.until
            if not (p.wait.done() or due):
                return
            self._resume(None)
        raise AssertionError("the run loop never comes to rest (a wait that is always done?)")

    def _resume(self, value: Any) -> None:
        self.resumes += 1
        try:
            self.pending = self._run_loop.send(value)
        except StopIteration:
            self.pending = None
            self.finished = True
            return
        if isinstance(self.pending, CallPoint) and self.on_call is not None:
            self.on_call(self.pending)

    # --- EscrowOrderWorkflow.run, step for step ------------------------------------------------

    def _run(self) -> Steps:
        self.o.started(self.now)
        steps: dict[EscrowStatus, Callable[[], Steps]] = {
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
        while (step := steps.get(self.o.status)) is not None:
            if (yield from step()):
                break
        self.o.finished()
        self.result = self.o.view()

    def _wait(self, wait: Wait) -> Steps:
        if wait.until is None:
            yield self._point(wait)
            return True
        remaining = wait.until - self.now
        if remaining > timedelta(0):
            yield self._point(wait)
        return wait.done()

    def _point(self, wait: Wait) -> WaitPoint:
        return WaitPoint(wait, self.o.status)

    def _call(self, call: calls.Call[Any, Any], arg: BaseModel) -> Steps:
        result = yield CallPoint(call, arg, self.now)
        if isinstance(result, Failure):
            self.o.call_failed(self.now, result)
        return result

    def _creating(self) -> Steps:
        o = self.o
        o.creating()
        if o.needs_cotpay_order:
            if not (yield from self._check_users()):
                return False
            created = yield from self._call(calls.CREATE_ORDER, o.create_order_input())
            if isinstance(created, Failure):
                o.create_failed(self.now, created)
                return False
            o.order_created(self.now, created)
        if o.needs_verify:
            verified = yield from self._call(calls.VERIFY_ORDER, o.verify_order_input())
            if isinstance(verified, Failure):
                o.creation_failed(self.now, verified)
                return False
            o.order_verified(self.now, verified)
        o.creation_done(self.now)
        return False

    def _check_users(self) -> Steps:
        o = self.o
        checked = yield from self._call(calls.CUSTOMER_ID, o.customer_check())
        if not isinstance(checked, Failure):
            return True
        if o.should_sign_up(checked):
            signed = yield from self._call(calls.SIGN_UP, o.sign_up_input())
            if not isinstance(signed, Failure):
                o.buyer_signed_up(self.now)
                return True
            if o.should_check_buyer_again(signed) and not isinstance(
                (yield from self._call(calls.CUSTOMER_ID, o.customer_check())), Failure
            ):
                o.buyer_exists(self.now)
                return True
            checked = signed
        o.creation_failed(self.now, checked)
        return False

    def _awaiting_payment(self) -> Steps:
        yield from self._wait(self.o.payment_wait())
        self.o.payment_wait_over(self.now)
        return False

    def _linger(self) -> Steps:
        wait = self.o.linger_wait()
        if wait is None:
            return True
        yield from self._wait(wait)
        return self.o.linger_over(self.now)

    def _held(self) -> Steps:
        yield from self._wait(self.o.held_wait())
        self.o.held_wait_over(self.now)
        return False

    def _delivered(self) -> Steps:
        yield from self._wait(self.o.delivered_wait())
        self.o.delivered_wait_over(self.now)
        return False

    def _paying_out(self) -> Steps:
        o = self.o
        o.paying_out()
        while True:
            slot = o.payout_slot_wait(self.now)
            if slot is not None and (yield from self._wait(slot)):
                return False
            if o.ends_by_ipn(self.now):
                return True
            paid = yield from self._call(calls.PAYMENT, o.payout_call(self.now))
            if not isinstance(paid, Failure):
                o.payout_succeeded(self.now)
                return False
            if not o.payout_failed(self.now, paid):
                return False

    def _paid_out(self) -> Steps:
        yield from self._wait(self.o.paid_out_wait())
        return self.o.paid_out_wait_over(self.now)

    def _returning(self) -> Steps:
        o = self.o
        if o.needs_return_call:
            if o.ends_by_ipn(self.now):
                return True
            asked = yield from self._call(calls.RETURN_REQUEST, o.return_call(self.now))
            if isinstance(asked, Failure):
                o.return_call_failed(self.now, asked)
                return False
            o.return_requested(self.now)
        yield from self._wait(o.return_wait())
        o.return_wait_over(self.now)
        return False

    def _needs_attention(self) -> Steps:
        yield from self._wait(self.o.attention_wait())
        return self.o.attention_wait_over(self.now)
